package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

/** The batched sampler on CPU tensors. */
class SamplerTest {
    static final Device CPU = new Device("cpu");
    static final Sampler SAMPLER = new Sampler(CPU, List.of(3));
    /** softmax of these is about [0.5, 0.3, 0.15, 0.05] */
    static final float[] LOGITS = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};

    static Sequence seq(SamplingParams p, long seed, int... prompt) {
        return new Sequence("s", 0, prompt.length == 0 ? new int[] {0} : prompt, p, new LogprobOptions(true, -1, 2, new int[] {1}),
                null, o -> {}, false, seed);
    }

    static Tensor logits(int rows, float[] row) {
        float[] all = new float[rows * row.length];
        for (int r = 0; r < rows; r++) System.arraycopy(row, 0, all, r * row.length, row.length);
        return Torch.floats(all, CPU).view(rows, row.length);
    }

    static int[] counts(SamplingParams p, int draws) {
        List<Sequence> seqs = new ArrayList<>();
        for (int i = 0; i < draws; i++) seqs.add(seq(p, 1000 + i));
        int[] c = new int[LOGITS.length];
        for (int t : SAMPLER.sample(logits(draws, LOGITS), seqs).tokens()) c[t]++;
        return c;
    }

    /** The sampling kernel is chosen when the sampler is built, and refused there, with the reason, where it cannot run. */
    @Test
    void theSamplingKernelIsRefusedOffCuda() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Sampler(CPU, List.of(3), true));
        assertTrue(e.getMessage().startsWith("sampling kernel: needs CUDA"), e.getMessage());
    }

    @Test
    void greedyTakesTheArgmaxAndReportsRawLogprobs() {
        Sampler.Result r = SAMPLER.sample(logits(1, LOGITS), List.of(seq(SamplingParams.GREEDY, 1)));
        assertEquals(0, r.tokens()[0]);
        TokenLogprob lp = r.logprobs()[0];
        assertEquals(Math.log(0.5), lp.logprob(), 1e-5);
        assertEquals(0, lp.topIds()[0]);
        assertEquals(1, lp.topIds()[1]);
        assertEquals(Math.log(0.3), lp.idsLogprobs()[0], 1e-5);
    }

    @Test
    void temperatureSamplingFollowsTheDistribution() {
        int[] c = counts(SamplingParams.builder().temperature(1.0).build(), 4000);
        double[] expected = {0.5, 0.3, 0.15, 0.05};
        for (int i = 0; i < 4; i++) assertEquals(expected[i], c[i] / 4000.0, 0.03, "token " + i);
    }

    @Test
    void topKTopPAndMinPCutTheTail() {
        int[] k = counts(SamplingParams.builder().temperature(1.0).topK(2).build(), 2000);
        assertEquals(0, k[2] + k[3], "top_k=2 keeps two tokens");
        assertTrue(k[1] > 400, "and renormalises over them");
        int[] p = counts(SamplingParams.builder().temperature(1.0).topP(0.6).build(), 2000);
        assertEquals(0, p[2] + p[3], "top_p=0.6 keeps the smallest set reaching 0.6: 0.5 + 0.3");
        int[] m = counts(SamplingParams.builder().temperature(1.0).minP(0.4).build(), 2000);
        assertEquals(0, m[2] + m[3], "min_p=0.4 drops tokens under 0.4 * 0.5");
        int[] one = counts(SamplingParams.builder().temperature(1.0).topP(0.1).build(), 500);
        assertEquals(500, one[0], "top_p below the top token's mass keeps only it");
    }

    /**
     * With a large vocabulary, top-k/top-p rows sample among the most likely candidates instead of a
     * sorted vocabulary when the nucleus fits in them: the same tokens as the full sort, which a
     * batch runs when one of its rows has neither limit. Flat rows whose nucleus is wider fall back.
     */
    @Test
    void candidateSamplingEqualsTheFullSort() {
        int vocab = 6000, rows = 40;
        float[] peaked = randomLogits(rows + 1, vocab, 4.0);
        List<Sequence> seqs = new ArrayList<>();
        for (int i = 0; i < rows; i++) {
            SamplingParams.Builder p = SamplingParams.builder().temperature(1.0);
            if (i % 2 == 0) p.topP(i % 4 == 0 ? 0.9 : 0.99);
            else p.topK(i % 4 == 1 ? 40 : 2000).topP(0.95);
            seqs.add(seq(p.build(), 500 + i));
        }
        Tensor limited = Torch.floats(Arrays.copyOf(peaked, rows * vocab), CPU).view(rows, vocab);
        assertTrue(candidatesFit(limited, seqs), "peaked rows: the nucleus fits in the candidates");
        int[] fast = SAMPLER.sample(limited, seqs).tokens();

        List<Sequence> again = new ArrayList<>();
        for (int i = 0; i < rows; i++) again.add(seq(seqs.get(i).params, 500 + i));
        again.add(seq(SamplingParams.builder().temperature(1.0).build(), 9));  // no limit: the whole vocabulary is sorted
        Tensor all = Torch.floats(peaked, CPU).view(rows + 1, vocab);
        assertTrue(!candidatesFit(all, again), "a row without limits needs the full sort");
        int[] full = SAMPLER.sample(all, again).tokens();
        for (int i = 0; i < rows; i++) assertEquals(full[i], fast[i], "row " + i);
        assertTrue(Arrays.stream(fast).distinct().count() > 10, "rows sampled different tokens");

        Tensor flat = Torch.floats(randomLogits(1, vocab, 0.1), CPU).view(1, vocab);
        List<Sequence> wide = List.of(seq(SamplingParams.builder().temperature(1.0).topP(0.99).build(), 1));
        assertTrue(!candidatesFit(flat, wide), "a flat row's nucleus is wider than the candidates");
    }

    /**
     * The default arithmetic's shortcut (top-k among the {@link Sampler#CANDIDATES} most likely
     * tokens of a 6,000-token vocabulary) with processed_logprobs: exactly the 40 tokens top_k
     * keeps are finite, they sum to 1, and each drawn token is one of them. Beside a row in
     * SGLang's mode, which stays unmasked.
     */
    @Test
    void processedModesMaskWhatTheCandidateShortcutDrops() {
        int vocab = 6000;
        SamplingParams p = SamplingParams.builder().temperature(1.0).topK(40).build();
        for (long seed = 1; seed <= 5; seed++) {
            Sequence processed = new Sequence("p", 0, new int[] {1}, p, new LogprobOptions(true, -1, 41, null, LogprobsMode.PROCESSED_LOGPROBS),
                    null, o -> {}, false, seed);
            Sequence sglang = new Sequence("g", 0, new int[] {1}, p, new LogprobOptions(true, -1, 41, null, LogprobsMode.SGLANG),
                    null, o -> {}, false, seed);
            Tensor logits = Torch.floats(randomLogits(2, vocab, 3.0), CPU).view(2, vocab);
            assertTrue(candidatesFit(logits, List.of(processed, sglang)), "the shortcut serves these rows");
            Sampler.Result r = SAMPLER.sample(logits, List.of(processed, sglang));
            TokenLogprob lp = r.logprobs()[0];
            double mass = 0;
            for (int j = 0; j < 40; j++) {
                assertTrue(Float.isFinite(lp.topLogprobs()[j]), "kept token " + j + " is finite");
                mass += Math.exp(lp.topLogprobs()[j]);
            }
            assertEquals(1.0, mass, 1e-4, "the kept 40 hold all the mass");
            assertEquals(Float.NEGATIVE_INFINITY, lp.topLogprobs()[40], "the 41st is dropped");
            assertTrue(Float.isFinite(lp.logprob()), "the drawn token " + r.tokens()[0] + " is one of the kept");
            assertTrue(Float.isFinite(r.logprobs()[1].topLogprobs()[40]), "SGLang's row is not masked");
        }
    }

    static float[] randomLogits(int rows, int vocab, double scale) {
        Random r = new Random(5);
        float[] out = new float[rows * vocab];
        for (int i = 0; i < out.length; i++) out[i] = (float) (r.nextGaussian() * scale);
        return out;
    }

    static boolean candidatesFit(Tensor logits, List<Sequence> seqs) {
        int n = seqs.size();
        boolean[] greedy = new boolean[n];
        long[] topK = new long[n];
        float[] topP = new float[n];
        for (int i = 0; i < n; i++) {
            topK[i] = Math.min(seqs.get(i).params.topK(), logits.size(1));
            topP[i] = (float) seqs.get(i).params.topP();
        }
        return SAMPLER.candidates(org.bytedeco.pytorch.global.torch.softmax(logits, 1), greedy, topK, topP, logits.size(1)) != null;
    }

    @Test
    void theSameSeedSamplesTheSameTokenWhateverTheBatch() {
        SamplingParams p = SamplingParams.builder().temperature(1.5).build();
        int alone = SAMPLER.sample(logits(1, LOGITS), List.of(seq(p, 77))).tokens()[0];
        List<Sequence> batch = new ArrayList<>();
        for (int i = 0; i < 16; i++) batch.add(seq(p, i == 9 ? 77 : i));
        assertEquals(alone, SAMPLER.sample(logits(16, LOGITS), batch).tokens()[9]);
    }

    @Test
    void logprobsAreTemperatureScaled() {
        Sampler.Result r = SAMPLER.sample(logits(1, LOGITS), List.of(seq(SamplingParams.builder().temperature(2.0).build(), 5)));
        double z = 0;
        for (float l : LOGITS) z += Math.exp(l / 2.0);
        int t = r.tokens()[0];
        assertEquals(LOGITS[t] / 2.0 - Math.log(z), r.logprobs()[0].logprob(), 1e-5);
    }

    @Test
    void repetitionPenaltyAvoidsSeenTokens() {
        float[] flat = {1f, 1f, 0.99f, 0f};
        SamplingParams rep = SamplingParams.builder().temperature(0).repetitionPenalty(2.0).build();
        // tokens 0 and 1 are in the prompt, so their positive logits are halved
        assertEquals(2, SAMPLER.sample(logits(1, flat), List.of(seq(rep, 1, 0, 1))).tokens()[0]);
        SamplingParams freq = SamplingParams.builder().temperature(0).frequencyPenalty(1.5).build();
        Sequence s = seq(freq, 1, 3);
        s.tokens.add(0);  // generated once: only output tokens count for frequency
        assertEquals(1, SAMPLER.sample(logits(1, flat), List.of(s)).tokens()[0]);
    }

    @Test
    void minNewTokensBansEos() {
        float[] eosFirst = {0f, 0f, 0f, 5f};  // token 3 is EOS here
        SamplingParams p = SamplingParams.builder().temperature(0).minNewTokens(2).build();
        assertNotEquals(3, SAMPLER.sample(logits(1, eosFirst), List.of(seq(p, 1))).tokens()[0]);
        SamplingParams ignore = SamplingParams.builder().temperature(0).build();
        assertEquals(3, SAMPLER.sample(logits(1, eosFirst), List.of(seq(ignore, 1))).tokens()[0]);
    }

    /** All four tokens' values (token_ids_logprob 0..3) and the top two, in {@code mode}. */
    static Sequence inMode(SamplingParams p, LogprobsMode mode, long seed, int... prompt) {
        return new Sequence("s", 0, prompt, p, new LogprobOptions(true, -1, 2, new int[] {0, 1, 2, 3}, mode), null, o -> {}, false, seed);
    }

    static double[] logSoftmax(double... x) {
        double max = Double.NEGATIVE_INFINITY, z = 0;
        for (double v : x) max = Math.max(max, v);
        for (double v : x) z += Math.exp(v - max);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = x[i] - max - Math.log(z);
        return out;
    }

    static void assertValues(double[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] == Double.NEGATIVE_INFINITY) assertEquals(Float.NEGATIVE_INFINITY, actual[i], what + ", token " + i);
            else assertEquals(expected[i], actual[i], 1e-5, what + ", token " + i);
        }
    }

    /**
     * One row with temperature 2, top_k 2 and a repetition penalty of 2 on token 0 (in the
     * prompt), in every mode: the raw modes see neither penalty nor temperature; the processed
     * ones see both and the top-k mask, −∞ outside the kept two; SGLang's sees penalty and
     * temperature but no mask. Each row reports the same in one batch with the other modes as alone.
     */
    @Test
    void eachModeReportsItsOwnFunctionOfTheLogits() {
        SamplingParams p = SamplingParams.builder().temperature(2.0).topK(2).repetitionPenalty(2.0).build();
        double[] pen = new double[4];
        for (int i = 0; i < 4; i++) pen[i] = i == 0 ? LOGITS[0] * 2.0 : LOGITS[i];   // negative logits are multiplied
        double[] raw = {LOGITS[0], LOGITS[1], LOGITS[2], LOGITS[3]};
        double[] scaled = {pen[0] / 2, pen[1] / 2, pen[2] / 2, pen[3] / 2};
        double[] processed = {scaled[0], scaled[1], Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY};  // tokens 1 and 0 are the top two
        double[] kept = logSoftmax(scaled[0], scaled[1]);
        Map<LogprobsMode, double[]> expected = Map.of(
                LogprobsMode.RAW_LOGITS, raw,
                LogprobsMode.RAW_LOGPROBS, logSoftmax(raw),
                LogprobsMode.SGLANG, logSoftmax(scaled),
                LogprobsMode.PROCESSED_LOGITS, processed,
                LogprobsMode.PROCESSED_LOGPROBS, new double[] {kept[0], kept[1], Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY});

        List<Sequence> batch = new ArrayList<>();
        for (LogprobsMode m : LogprobsMode.values()) batch.add(inMode(p, m, 31, 0));
        Sampler.Result together = SAMPLER.sample(logits(batch.size(), LOGITS), batch);
        for (int r = 0; r < batch.size(); r++) {
            LogprobsMode m = LogprobsMode.values()[r];
            TokenLogprob lp = together.logprobs()[r];
            assertValues(expected.get(m), lp.idsLogprobs(), m.wireName());
            assertTrue(lp.tokenId() == 0 || lp.tokenId() == 1, m + ": top_k 2 keeps tokens 0 and 1, drew " + lp.tokenId());
            assertEquals(lp.idsLogprobs()[lp.tokenId()], lp.logprob(), m + ": the drawn token's value");
            // the penalty halves token 0's odds: first in the raw logits, second after the penalty
            assertEquals(m.raw() ? List.of(0, 1) : List.of(1, 0), List.of(lp.topIds()[0], lp.topIds()[1]), m + ": the top two");

            Sampler.Result alone = SAMPLER.sample(logits(1, LOGITS), List.of(inMode(p, m, 31, 0)));
            assertEquals(together.tokens()[r], alone.tokens()[0], m + ": the same draw alone");
            assertEquals(Arrays.toString(lp.idsLogprobs()), Arrays.toString(alone.logprobs()[0].idsLogprobs()),
                    m + ": the same values alone");
        }
        float[] pl = together.logprobs()[LogprobsMode.PROCESSED_LOGPROBS.ordinal()].idsLogprobs();
        assertEquals(1.0, Math.exp(pl[0]) + Math.exp(pl[1]), 1e-6, "processed_logprobs sum to 1 over the kept tokens");
        assertEquals(LogprobsMode.SGLANG, new LogprobOptions(true, -1, 0, null).mode(), "a request that names no mode gets SGLang's");
    }

    /**
     * A prompt row (logprob_start_len) in every mode: the request's temperature and top-k mask
     * apply, its repetition penalty does not (prompt rows have never had penalties).
     */
    @Test
    void promptRowsTakeTheTemperatureAndTheMaskButNoPenalty() {
        SamplingParams p = SamplingParams.builder().temperature(2.0).topK(2).repetitionPenalty(2.0).build();
        double[] raw = {LOGITS[0], LOGITS[1], LOGITS[2], LOGITS[3]};
        double[] scaled = {raw[0] / 2, raw[1] / 2, raw[2] / 2, raw[3] / 2};
        double[] kept = logSoftmax(scaled[0], scaled[1]);
        Map<LogprobsMode, double[]> expected = Map.of(
                LogprobsMode.RAW_LOGITS, raw,
                LogprobsMode.RAW_LOGPROBS, logSoftmax(raw),
                LogprobsMode.SGLANG, logSoftmax(scaled),
                LogprobsMode.PROCESSED_LOGITS, new double[] {scaled[0], scaled[1], Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY},
                LogprobsMode.PROCESSED_LOGPROBS, new double[] {kept[0], kept[1], Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY});
        List<Sequence> owners = new ArrayList<>();
        for (LogprobsMode m : LogprobsMode.values()) owners.add(inMode(p, m, 1, 0, 2, 0));
        int[] targets = new int[owners.size()];
        Arrays.fill(targets, 2);
        TokenLogprob[] scored = SAMPLER.score(logits(owners.size(), LOGITS), targets, owners);
        for (LogprobsMode m : LogprobsMode.values()) {
            TokenLogprob lp = scored[m.ordinal()];
            assertValues(expected.get(m), lp.idsLogprobs(), m.wireName());
            assertEquals(lp.idsLogprobs()[2], lp.logprob(), m + ": the target's value");
        }
        assertEquals(Float.NEGATIVE_INFINITY, scored[LogprobsMode.PROCESSED_LOGPROBS.ordinal()].logprob(), "top_k 2 drops the target");
    }

    /**
     * In the deterministic arithmetic a seeded row draws the same token, and reports the same
     * values, whatever its neighbours filter: the lookup always runs over one stable sort of the
     * vocabulary. In the default arithmetic a plain row is looked up in vocabulary order unless a
     * neighbour's top-k sorts the batch (so its token may move), which this test also shows.
     */
    @Test
    void theDeterministicSamplerDrawsARowTheSameWhateverItsNeighboursFilter() {
        Sampler deterministic = new Sampler(CPU, List.of(3), false, true);
        int vocab = 6000;
        float[] row = Arrays.copyOf(randomLogits(1, vocab, 2.0), vocab);
        SamplingParams plain = SamplingParams.builder().temperature(1.0).build();
        SamplingParams nucleus = SamplingParams.builder().temperature(0.9).topK(40).topP(0.9).build();
        SamplingParams wideK = SamplingParams.builder().temperature(1.0).topK(2000).build();  // past the candidates
        int moved = 0;
        for (int seed = 0; seed < 12; seed++) {
            for (SamplingParams target : List.of(plain, nucleus)) {
                for (LogprobsMode m : List.of(LogprobsMode.SGLANG, LogprobsMode.PROCESSED_LOGPROBS)) {
                    Sampler.Result alone = deterministic.sample(logits(1, row), List.of(inMode(target, m, seed)));
                    List<Sequence> crowd = List.of(inMode(wideK, LogprobsMode.RAW_LOGITS, 5), inMode(target, m, seed),
                            inMode(nucleus, LogprobsMode.PROCESSED_LOGITS, 6));
                    Sampler.Result crowded = deterministic.sample(logits(3, row), crowd);
                    String what = "seed " + seed + ", " + (target == plain ? "plain" : "nucleus") + ", " + m.wireName();
                    assertEquals(alone.tokens()[0], crowded.tokens()[1], what + ": the token");
                    assertEquals(Arrays.toString(alone.logprobs()[0].idsLogprobs()),
                            Arrays.toString(crowded.logprobs()[1].idsLogprobs()), what + ": the values");
                    assertEquals(Arrays.toString(alone.logprobs()[0].topIds()),
                            Arrays.toString(crowded.logprobs()[1].topIds()), what + ": the top ids");
                }
            }
            int a = SAMPLER.sample(logits(1, row), List.of(seq(plain, seed))).tokens()[0];
            int c = SAMPLER.sample(logits(2, row), List.of(seq(wideK, 5), seq(plain, seed))).tokens()[1];
            if (a != c) moved++;
        }
        assertTrue(moved > 0, "the default arithmetic's plain row drew the same token beside a top-k row for all 12 seeds");
    }
}
