package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.ModelConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Issue #21 in CI (the CPU, float32): with the deterministic arithmetic ({@link Kernels#deterministic()},
 * ADR 0026) a request's tokens and logprobs depend on its own prompt, sampling parameters and seed
 * alone. Three target requests on one prompt, greedy, seeded and seeded with min-p/top-k/top-p,
 * are run alone; beside 63 others of random lengths, their prompt prefilled in chunks that the
 * others cut and its first blocks from the prefix cache; and in a cache so small that they are
 * preempted and computed again. Every token, logprob, top logprob and token_ids_logprob must be
 * the same bits in all three, and each decoded token's values the same bits as when prompt and
 * output are scored together as one prompt (a trainer's recompute). Each target reports in one
 * {@link LogprobsMode}, another per architecture, so that every target meets every mode (ADR 0028).
 * The default arithmetic fails the same comparison (the last test), so the test can.
 */
class DeterministicModeTest {
    static final int PROMPT = 40, NEW = 24, TOP = 3, SHARED = 24;
    static final List<String> ARCHS = List.of("qwen2", "qwen3", "llama", "qwen3_moe", "qwen2_moe", "mixtral");
    static final Map<String, SamplingParams> TARGETS = new LinkedHashMap<>();
    static {
        TARGETS.put("greedy", SamplingParams.builder().temperature(0).maxNewTokens(NEW).ignoreEos(true).build());
        TARGETS.put("seeded", SamplingParams.builder().temperature(1.0).seed(Long.valueOf(1234L)).maxNewTokens(NEW).ignoreEos(true).build());
        TARGETS.put("filtered", SamplingParams.builder().temperature(0.8).topK(8).topP(0.9).minP(0.05).seed(Long.valueOf(4321L))
                .maxNewTokens(NEW).ignoreEos(true).build());
    }
    /** Values at every position beside the top ones: where the filtered target's mask drops them, −∞. */
    static final int[] IDS = {0, 1, 2, 3, 511};

    /** The target's mode on this architecture: over the six, each target reports in all five. */
    static LogprobOptions logprobs(String arch, String target) {
        int t = new ArrayList<>(TARGETS.keySet()).indexOf(target);
        LogprobsMode mode = LogprobsMode.values()[(Math.max(0, ARCHS.indexOf(arch)) + t) % LogprobsMode.values().length];
        return new LogprobOptions(true, -1, TOP, IDS, mode);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"qwen2", "qwen3", "llama", "qwen3_moe", "qwen2_moe", "mixtral"})
    void aRequestsNumbersDependOnItsOwnInputsAlone(String arch) throws Exception {
        Path dir = Path.of("src/test/resources/fixtures", arch);
        int vocab = ModelConfig.read(dir).vocabSize();
        int[] prompt = new SplittableRandom(7).ints(PROMPT, 2, vocab).toArray();
        // the targets on the same prompt, in every run
        Map<String, SequenceOutput> alone = alone(dir, true, prompt, arch), crowded = crowded(dir, true, prompt, vocab, arch),
                preempted = preempted(dir, prompt, vocab, arch);
        for (String target : TARGETS.keySet()) {
            LogprobOptions lp = logprobs(arch, target);
            String what = arch + ", " + target + ", " + lp.mode().wireName();
            assertTrue(crowded.get(target).cachedTokens() >= SHARED - 4, what + ": its first blocks came from the prefix cache");
            assertTrue(preempted.get(target).numRetractions() > 0, what + ": it was preempted");
            sameBits(what + ", beside 63 others", alone.get(target), crowded.get(target));
            sameBits(what + ", preempted", alone.get(target), preempted.get(target));

            // decode = re-score: the prompt and the output scored as one prompt
            int[] whole = Arrays.copyOf(prompt, PROMPT + NEW);
            System.arraycopy(alone.get(target).outputIds(), 0, whole, PROMPT, NEW);
            SequenceOutput rescored = rescore(dir, whole, TARGETS.get(target), lp);
            for (int i = 0; i < NEW; i++)
                sameBits(what + ": output token " + i + " against its re-score", alone.get(target).outputLogprobs().get(i),
                        rescored.inputLogprobs().get(PROMPT + i));
        }
        // the filter reached the values: in a processed mode ids outside the kept eight are -inf, elsewhere never
        LogprobOptions filtered = logprobs(arch, "filtered");
        boolean anyDropped = alone.get("filtered").outputLogprobs().stream()
                .anyMatch(t -> Arrays.toString(t.idsLogprobs()).contains("-Infinity"));
        assertEquals(filtered.mode().processed(), anyDropped, arch + ", filtered, " + filtered.mode().wireName() + ": -inf among the ids' values");
    }

    @Test
    void theDefaultArithmeticMovesWithTheBatch() throws Exception {
        Path dir = Path.of("src/test/resources/fixtures", "qwen3");
        int vocab = ModelConfig.read(dir).vocabSize();
        int[] prompt = new SplittableRandom(7).ints(PROMPT, 2, vocab).toArray();
        SequenceOutput alone = alone(dir, false, prompt, "").get("greedy"), crowded = crowded(dir, false, prompt, vocab, "").get("greedy");
        int same = 0;
        for (int i = 0; i < NEW; i++)
            if (Float.floatToIntBits(alone.outputLogprobs().get(i).logprob()) == Float.floatToIntBits(crowded.outputLogprobs().get(i).logprob()))
                same++;
        assertTrue(same < NEW, "libtorch's own GEMMs and SDPA give other bits beside other requests; here all " + NEW + " logprobs matched");
    }

    private static EngineHarness harness(Path dir, boolean deterministic, int kvBlocks, int batchedTokens) throws Exception {
        ModelConfig c = ModelConfig.read(dir);
        Device cpu = new Device(EngineHarness.DEVICE);
        Kernels kernels = deterministic ? Kernels.resolve(new Kernels.Wanted(false, false, false, false, false, false, false, true), c, ScalarType.Float, cpu)
                : Kernels.LIBTORCH;
        return new EngineHarness(CausalLm.load(dir, ScalarType.Float, cpu, kernels),
                new EngineConfig(EngineHarness.DEVICE, "float32", 4, kvBlocks, 64, batchedTokens, 0, 0.8), null);
    }

    /** Each target by itself, in an engine of its own. */
    private static Map<String, SequenceOutput> alone(Path dir, boolean deterministic, int[] prompt, String arch) throws Exception {
        Map<String, SequenceOutput> out = new HashMap<>();
        for (var t : TARGETS.entrySet()) {
            EngineHarness h = harness(dir, deterministic, 256, 256);
            h.add(t.getKey(), prompt, t.getValue(), logprobs(arch, t.getKey()));
            h.runToCompletion();
            out.put(t.getKey(), h.finished.get(t.getKey()));
        }
        return out;
    }

    private static void addTargets(EngineHarness h, int[] prompt, String arch) {
        for (var t : TARGETS.entrySet()) h.add(t.getKey(), prompt, t.getValue(), logprobs(arch, t.getKey()));
    }

    private static Map<String, SequenceOutput> targets(EngineHarness h) {
        Map<String, SequenceOutput> out = new HashMap<>();
        for (String t : TARGETS.keySet()) out.put(t, h.finished.get(t));
        return out;
    }

    /**
     * Beside 63 others (the other target among them): one shares the targets' first {@link #SHARED}
     * tokens and is prefilled first, so that they find them in the prefix cache; the other 61
     * arrive with them, of random lengths, greedy and sampled (some with top-k, which sorts the
     * batch in the default arithmetic), some asking for logprobs in each mode, 48 tokens a step
     * cutting every prefill in chunks.
     */
    private static Map<String, SequenceOutput> crowded(Path dir, boolean deterministic, int[] prompt, int vocab, String arch) throws Exception {
        EngineHarness h = harness(dir, deterministic, 4096, 48);
        SplittableRandom r = new SplittableRandom(99);
        int[] leader = Arrays.copyOf(prompt, SHARED + 10);
        for (int i = SHARED; i < leader.length; i++) leader[i] = r.nextInt(2, vocab);
        h.add("leader", leader, SamplingParams.builder().temperature(0).maxNewTokens(30).ignoreEos(true).build(), LogprobOptions.NONE);
        h.engine.step();   // the leader's prompt in one step, its blocks now cached
        addTargets(h, prompt, arch);
        for (int i = 0; i < 61; i++) {
            int[] p = r.ints(r.nextInt(1, 90), 2, vocab).toArray();
            SamplingParams sp = SamplingParams.builder().temperature(i % 2 == 0 ? 0 : 0.8).topK(i % 4 == 1 ? 20 : Integer.MAX_VALUE)
                    .seed(Long.valueOf(i)).maxNewTokens(r.nextInt(1, 40)).ignoreEos(true).build();
            LogprobOptions lp = new LogprobOptions(true, -1, TOP + i % 2, null, LogprobsMode.values()[i % LogprobsMode.values().length]);
            h.add("c" + i, p, sp, i % 3 == 0 ? lp : LogprobOptions.NONE);
        }
        h.runToCompletion();
        return targets(h);
    }

    /** In 40 KV blocks of 4 with seven long companions ahead of them, the targets (the latest) are preempted and recomputed. */
    private static Map<String, SequenceOutput> preempted(Path dir, int[] prompt, int vocab, String arch) throws Exception {
        EngineHarness h = harness(dir, true, 40, 64);
        SplittableRandom r = new SplittableRandom(5);
        for (int i = 0; i < 7; i++)
            h.add("c" + i, r.ints(12, 2, vocab).toArray(), SamplingParams.builder().temperature(0).maxNewTokens(40).ignoreEos(true).build(),
                    LogprobOptions.NONE);
        addTargets(h, prompt, arch);
        h.runToCompletion();
        return targets(h);
    }

    /** Scores {@code whole} as a prompt from its first position (logprob_start_len 0), with the target's sampling parameters and logprob options. */
    private static SequenceOutput rescore(Path dir, int[] whole, SamplingParams params, LogprobOptions lp) throws Exception {
        EngineHarness h = harness(dir, true, 256, 32);
        SamplingParams one = params.toBuilder().maxNewTokens(1).build();
        h.add("rescore", whole, one, new LogprobOptions(true, 0, lp.topLogprobsNum(), lp.tokenIds(), lp.mode()));
        h.runToCompletion();
        return h.finished.get("rescore");
    }

    private static void sameBits(String what, SequenceOutput a, SequenceOutput b) {
        assertArrayEquals(a.outputIds(), b.outputIds(), what + ": tokens");
        for (int i = 0; i < a.outputIds().length; i++) sameBits(what + ", token " + i, a.outputLogprobs().get(i), b.outputLogprobs().get(i));
    }

    private static void sameBits(String what, TokenLogprob a, TokenLogprob b) {
        assertEquals(a.tokenId(), b.tokenId(), what + ": token");
        assertEquals(Float.floatToIntBits(a.logprob()), Float.floatToIntBits(b.logprob()), what + ": logprob " + a.logprob() + " vs " + b.logprob());
        assertArrayEquals(a.topIds(), b.topIds(), what + ": top ids");
        List<Integer> x = new ArrayList<>(), y = new ArrayList<>();
        for (float f : a.topLogprobs()) x.add(Float.floatToIntBits(f));
        for (float f : b.topLogprobs()) y.add(Float.floatToIntBits(f));
        assertEquals(x, y, what + ": top logprobs");
        assertEquals(bits(a.idsLogprobs()), bits(b.idsLogprobs()), what + ": token_ids_logprob");
    }

    private static List<Integer> bits(float[] values) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; values != null && i < values.length; i++) out.add(Float.floatToIntBits(values[i]));
        return out;
    }
}
