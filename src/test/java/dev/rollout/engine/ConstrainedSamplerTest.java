package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.constrain.Constraint;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.constrain.Vocabulary;
import dev.rollout.model.Torch;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The sampler's constraint masks (issue #22) on CPU libtorch with known logits: a vocabulary of
 * 70 ids (two mask words) whose last ids have no bytes, as a model's logits are wider than its
 * tokenizer; the most likely tokens are always ones the constraint forbids, so a mask that did not
 * reach a way of picking would show.
 */
class ConstrainedSamplerTest {
    static final Device CPU = new Device("cpu");
    static final int V = 70, EOS = 7, STOP = 8;
    /** Ids 0-6 are text; 7 is EOS; 8 a special token (no bytes); 9-69 past the tokenizer's entries. */
    static final String[] TEXT = {"a", "b", "c", "ab", "{", "}", "x"};
    static final Vocabulary VOCAB;
    static {
        byte[][] bytes = new byte[9][];
        for (int i = 0; i < TEXT.length; i++) bytes[i] = TEXT[i].getBytes(StandardCharsets.UTF_8);
        VOCAB = Vocabulary.of(bytes, V, EOS);
    }
    static final Sampler SAMPLER = new Sampler(CPU, List.of(EOS));

    /** x (id 6) most likely, then the ids past the tokenizer (9-69), then the rest; EOS and STOP the least. */
    static float[] row() {
        float[] r = new float[V];
        for (int i = 0; i < V; i++) r[i] = i >= 9 ? 2f : 0f;
        r[6] = 5f;
        r[0] = 1f;
        r[1] = 0.5f;
        r[3] = 0.2f;
        r[EOS] = -1f;
        r[STOP] = -1f;
        return r;
    }

    static TokenIndex regex(String rx) {
        return Constraint.regex(rx, ConstraintLimits.DEFAULT).index(VOCAB);
    }

    static Sequence seq(SamplingParams p, long seed, LogprobsMode mode) {
        return new Sequence("s", 0, new int[] {0}, p, new LogprobOptions(true, -1, 3, new int[] {6, 0, EOS}, mode), null, o -> {}, false, seed);
    }

    static Tensor logits(int rows) {
        float[] all = new float[rows * V];
        for (int r = 0; r < rows; r++) System.arraycopy(row(), 0, all, r * V, V);
        return Torch.floats(all, CPU).view(rows, V);
    }

    @Test
    void everyWayOfPickingKeepsToTheConstraint() {
        TokenIndex ab = regex("[ab]+");
        List<SamplingParams> kinds = List.of(SamplingParams.builder().temperature(0).build(),
                SamplingParams.builder().temperature(1.0).build(),
                SamplingParams.builder().temperature(2.0).topK(2).build(),
                SamplingParams.builder().temperature(1.0).topP(0.9).build(),
                SamplingParams.builder().temperature(1.0).minP(0.2).build(),
                SamplingParams.builder().temperature(1.0).repetitionPenalty(1.5).frequencyPenalty(0.5).build());
        List<Sequence> rows = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            SamplingParams p = kinds.get(i % kinds.size()).toBuilder().constraint(ab).build();
            rows.add(seq(p, 100 + i, LogprobsMode.values()[i % LogprobsMode.values().length]));
        }
        Sampler.Result r = SAMPLER.sample(logits(rows.size()), rows);
        int[] seen = new int[V];
        for (int t : r.tokens()) seen[t]++;
        for (int t = 0; t < V; t++)
            if (t != 0 && t != 1 && t != 3) assertEquals(0, seen[t], "token " + t + " is not in [ab]+ but was drawn " + seen[t] + " times");
        assertEquals(0, r.tokens()[0], "greedy takes the best allowed token (a), not x or an id past the tokenizer");
        assertTrue(seen[1] > 0 && seen[3] > 0, "sampling still draws among the allowed tokens: " + Arrays.toString(seen));
    }

    /**
     * SGLang's mode and the processed ones report the masked distribution (forbidden tokens −∞,
     * the rest renormalised), the raw ones the model's own: what a trainer compares its
     * recompute with.
     */
    @Test
    void logprobsAreOfTheMaskedDistributionExceptInTheRawModes() {
        TokenIndex ab = regex("[ab]+");
        SamplingParams greedy = SamplingParams.builder().temperature(0).constraint(ab).build();
        List<Sequence> rows = new ArrayList<>();
        for (LogprobsMode m : LogprobsMode.values()) rows.add(seq(greedy, 1, m));
        Sampler.Result r = SAMPLER.sample(logits(rows.size()), rows);
        double[] raw = logSoftmax(row());
        double maskedNorm = Math.log(Math.exp(1) + Math.exp(0.5) + Math.exp(0.2));
        for (int i = 0; i < rows.size(); i++) {
            LogprobsMode m = LogprobsMode.values()[i];
            TokenLogprob lp = r.logprobs()[i];
            assertEquals(0, lp.tokenId(), m.wireName());
            switch (m) {
                case RAW_LOGPROBS -> {
                    assertEquals(raw[0], lp.logprob(), 1e-5, "raw: the model's own logprob of a");
                    assertEquals(6, lp.topIds()[0], "raw: x is still the model's top token");
                }
                case RAW_LOGITS -> assertEquals(1f, lp.logprob(), 1e-6);
                case PROCESSED_LOGITS -> {
                    assertEquals(1f, lp.logprob(), 1e-6);
                    assertEquals(Float.NEGATIVE_INFINITY, lp.idsLogprobs()[0], "x is masked");
                }
                default -> {   // sglang and processed_logprobs: renormalised over a, b, ab
                    assertEquals(1 - maskedNorm, lp.logprob(), 1e-5, m.wireName());
                    assertEquals(Float.NEGATIVE_INFINITY, lp.idsLogprobs()[0], m.wireName() + ": x is masked");
                    assertEquals(Float.NEGATIVE_INFINITY, lp.idsLogprobs()[2], m.wireName() + ": EOS is masked where the text may not end");
                    assertEquals(List.of(0, 1, 3), List.of(lp.topIds()[0], lp.topIds()[1], lp.topIds()[2]), m.wireName());
                }
            }
        }
    }

    /** EOS only where the text may end; only EOS once it must; stop_token_ids count as EOS; the minimum yields to the constraint's end. */
    @Test
    void eosAndStopTokensOnlyWhereTheTextMayEnd() {
        TokenIndex ab = regex("ab?");   // after "a": may end or take b; after "ab": must end
        SamplingParams p = SamplingParams.builder().temperature(1.0).stopTokenIds(List.of(STOP)).constraint(ab).build();
        Sequence start = seq(p, 1, LogprobsMode.SGLANG);
        Sequence mayEnd = seq(p, 2, LogprobsMode.SGLANG);
        assertTrue(mayEnd.constraint.advance(0));
        Sequence mustEnd = seq(SamplingParams.builder().temperature(1.0).minNewTokens(50).constraint(ab).build(), 3, LogprobsMode.SGLANG);
        assertTrue(mustEnd.constraint.advance(3));
        assertTrue(mustEnd.constraint.mustEnd());
        List<Sequence> rows = List.of(start, mayEnd, mustEnd);
        int[] seenStart = new int[V], seenMay = new int[V];
        for (int k = 0; k < 400; k++) {
            Sampler.Result r = SAMPLER.sample(logits(3), rows);
            seenStart[r.tokens()[0]]++;
            seenMay[r.tokens()[1]]++;
            assertEquals(EOS, r.tokens()[2], "once the text is complete only EOS is allowed, min_new_tokens or not");
        }
        for (int t = 0; t < V; t++) {
            if (t != 0 && t != 3) assertEquals(0, seenStart[t], "at the start only a or ab, not " + t);
            if (t != 1 && t != EOS && t != STOP) assertEquals(0, seenMay[t], "after a only b, EOS or the stop token, not " + t);
        }
        assertTrue(seenMay[EOS] > 0 && seenMay[STOP] > 0 && seenMay[1] > 0, Arrays.toString(seenMay));
    }

    /** Rows without a constraint are not touched: the same tokens and logprob bits beside constrained rows as alone. */
    @Test
    void unconstrainedRowsAreBitForBitTheSame() {
        TokenIndex ab = regex("[ab]+");
        List<SamplingParams> plain = List.of(SamplingParams.builder().temperature(0).build(),
                SamplingParams.builder().temperature(1.0).build(), SamplingParams.builder().temperature(0.7).topK(20).topP(0.9).build());
        List<Sequence> alone = new ArrayList<>(), mixed = new ArrayList<>();
        for (int i = 0; i < plain.size(); i++) alone.add(seq(plain.get(i), 10 + i, LogprobsMode.PROCESSED_LOGPROBS));
        for (int i = 0; i < plain.size(); i++) {
            mixed.add(seq(plain.get(i).toBuilder().constraint(ab).build(), 50 + i, LogprobsMode.SGLANG));
            mixed.add(seq(plain.get(i), 10 + i, LogprobsMode.PROCESSED_LOGPROBS));
        }
        Tensor random = Torch.floats(randomRows(plain.size()), CPU).view(plain.size(), V);
        Sampler.Result a = SAMPLER.sample(random.clone(), alone);
        float[] interleaved = new float[2 * plain.size() * V];
        float[] rows = randomRows(plain.size());
        for (int i = 0; i < plain.size(); i++) {
            System.arraycopy(row(), 0, interleaved, 2 * i * V, V);
            System.arraycopy(rows, i * V, interleaved, (2 * i + 1) * V, V);
        }
        Sampler.Result m = SAMPLER.sample(Torch.floats(interleaved, CPU).view(2L * plain.size(), V), mixed);
        for (int i = 0; i < plain.size(); i++) {
            assertEquals(a.tokens()[i], m.tokens()[2 * i + 1], "row " + i);
            TokenLogprob x = a.logprobs()[i], y = m.logprobs()[2 * i + 1];
            assertEquals(Float.floatToIntBits(x.logprob()), Float.floatToIntBits(y.logprob()), "row " + i);
            assertEquals(Arrays.toString(x.topLogprobs()), Arrays.toString(y.topLogprobs()), "row " + i);
            assertEquals(Arrays.toString(x.idsLogprobs()), Arrays.toString(y.idsLogprobs()), "row " + i);
            assertTrue(m.tokens()[2 * i] == 0 || m.tokens()[2 * i] == 1 || m.tokens()[2 * i] == 3, "constrained row " + i);
        }
    }

    /** The same draws with a constraint that allows everything: the mask costs nothing in the result. */
    @Test
    void aMaskThatAllowsEveryTextTokenChangesNothingAmongThem() {
        TokenIndex any = regex("[abcx{}]*");
        float[] r = row();
        for (int i = 9; i < V; i++) r[i] = -50f;  // ids without bytes out of the way
        r[EOS] = -50f;
        r[STOP] = -50f;
        List<Sequence> free = new ArrayList<>(), masked = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            free.add(seq(SamplingParams.builder().temperature(1.0).build(), 300 + i, LogprobsMode.SGLANG));
            masked.add(seq(SamplingParams.builder().temperature(1.0).constraint(any).build(), 300 + i, LogprobsMode.SGLANG));
        }
        float[] all = new float[50 * V];
        for (int i = 0; i < 50; i++) System.arraycopy(r, 0, all, i * V, V);
        int[] a = SAMPLER.sample(Torch.floats(all, CPU).view(50, V), free).tokens();
        int[] b = SAMPLER.sample(Torch.floats(all, CPU).view(50, V), masked).tokens();
        assertEquals(Arrays.toString(a), Arrays.toString(b));
    }

    static float[] randomRows(int rows) {
        SplittableRandom rnd = new SplittableRandom(3);
        float[] out = new float[rows * V];
        for (int i = 0; i < out.length; i++) out[i] = (float) (rnd.nextGaussian() * 2);
        return out;
    }

    static double[] logSoftmax(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) d[i] = x[i];
        return SamplerTest.logSoftmax(d);
    }
}
