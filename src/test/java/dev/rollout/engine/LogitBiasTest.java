package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;

/**
 * {@code logit_bias} as SGLang applies it: added to the logits after the penalties and before any
 * token is picked, so that it reaches every way of picking (greedy, libtorch's draw, filtered
 * rows), and the reported logprobs are those of the biased logits. On the sampler with known
 * logits, then through the engine with the small random Qwen3 (its text means nothing, so the
 * checks are structural: a forced token is all there is, a banned one never appears).
 */
class LogitBiasTest {
    static final Device CPU = new Device("cpu");
    static final Sampler SAMPLER = new Sampler(CPU, List.of(3));

    static SamplingParams biased(SamplingParams.Builder b, Map<Integer, Double> bias) {
        return b.logitBias(LogitBias.of(bias)).build();
    }

    @Test
    void aPositiveBiasForcesATokenInGreedyRandomAndFilteredRows() {
        List<Sequence> rows = new ArrayList<>();
        Map<Integer, Double> force2 = Map.of(2, 100.0);
        rows.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(0), force2), 1));
        for (int i = 0; i < 20; i++) rows.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(1.0), force2), 10 + i));
        for (int i = 0; i < 20; i++)
            rows.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(1.0).topK(2).topP(0.9), force2), 50 + i));
        Sampler.Result r = SAMPLER.sample(SamplerTest.logits(rows.size(), SamplerTest.LOGITS), rows);
        for (int t : r.tokens()) assertEquals(2, t, "token 2 (p = 0.15 unbiased) is forced in every row");
        assertEquals(0.0, r.logprobs()[0].logprob(), 1e-4, "SGLang's logprobs are of the biased logits: the forced token has p ~ 1");
    }

    @Test
    void aNegativeBiasBansATokenAndOnlyItsOwnRowIsChanged() {
        SamplingParams ban0 = biased(SamplingParams.builder().temperature(0), Map.of(0, -100.0));
        Sampler.Result r = SAMPLER.sample(SamplerTest.logits(2, SamplerTest.LOGITS),
                List.of(SamplerTest.seq(ban0, 1), SamplerTest.seq(SamplingParams.GREEDY, 1)));
        assertEquals(1, r.tokens()[0], "with the argmax banned, greedy takes the next");
        assertEquals(0, r.tokens()[1], "the bias of one row leaves the other alone");
        assertEquals(Math.log(0.5), r.logprobs()[1].logprob(), 1e-5);
        List<Sequence> many = new ArrayList<>();
        for (int i = 0; i < 2000; i++)
            many.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(1.0), Map.of(0, -100.0, 1, -100.0)), i));
        for (int t : SAMPLER.sample(SamplerTest.logits(many.size(), SamplerTest.LOGITS), many).tokens())
            assertTrue(t == 2 || t == 3, "banned tokens are never drawn, got " + t);
    }

    @Test
    void aSmallBiasShiftsTheDistributionAsSoftmaxSays() {
        // +ln(3) on token 3 turns its 0.05 into 0.15 of a mass of 1.1: p = 0.136, the others scaled by 1/1.1
        double bias = Math.log(3);
        int draws = 6000;
        List<Sequence> rows = new ArrayList<>();
        for (int i = 0; i < draws; i++) rows.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(1.0), Map.of(3, bias)), 7000 + i));
        int[] c = new int[4];
        for (int t : SAMPLER.sample(SamplerTest.logits(draws, SamplerTest.LOGITS), rows).tokens()) c[t]++;
        assertEquals(0.15 / 1.1, c[3] / (double) draws, 0.02);
        assertEquals(0.5 / 1.1, c[0] / (double) draws, 0.03);
    }

    @Test
    void throughTheEngineAForcedTokenIsAllThereIsAndABannedOneNeverAppears() throws Exception {
        EngineHarness h = EngineHarness.fixture("qwen3", EngineHarness.smallConfig());
        int[] prompt = {5, 6, 7, 8};
        SamplingParams plain = SamplingParams.builder().temperature(0).maxNewTokens(12).ignoreEos(true).build();
        h.add("plain", prompt, plain, LogprobOptions.NONE);
        h.add("forced", prompt, plain.toBuilder().logitBias(LogitBias.of(Map.of(77, 100.0))).build(), LogprobOptions.NONE);
        h.runToCompletion();
        int[] greedy = h.finished.get("plain").outputIds();
        for (int t : h.finished.get("forced").outputIds()) assertEquals(77, t);

        // ban every token the unbiased greedy run produced, sampling at temperature 1 too
        Map<Integer, Double> ban = new java.util.HashMap<>();
        for (int t : greedy) ban.put(t, -100.0);
        h.add("banned-greedy", prompt, plain.toBuilder().logitBias(LogitBias.of(ban)).build(), LogprobOptions.NONE);
        for (int i = 0; i < 4; i++)
            h.add("banned-sampled-" + i, prompt, plain.toBuilder().temperature(1.0).seed((long) i).logitBias(LogitBias.of(ban)).build(),
                    LogprobOptions.NONE);
        h.runToCompletion();
        Set<Integer> seen = new HashSet<>();
        for (String rid : List.of("banned-greedy", "banned-sampled-0", "banned-sampled-1", "banned-sampled-2", "banned-sampled-3"))
            for (int t : h.finished.get(rid).outputIds()) seen.add(t);
        for (int t : greedy) assertTrue(!seen.contains(t), "banned token " + t + " appeared: " + seen);
        assertEquals(12, h.finished.get("banned-greedy").outputIds().length);
    }

    /**
     * The API takes any finite bias; divided by a temperature below 1, a bias near float's largest
     * overflowed to infinity and the softmax to NaN, so the draw picked an arbitrary token. Biases
     * are held within {@link LogitBias#MAX_MAGNITUDE}, past which every bias already forces or bans.
     */
    @Test
    void theLargestFiniteBiasStillForcesAndBansAtLowTemperatures() {
        for (double t : new double[] {0, 1e-6 * 1.5, 0.5, 1.0}) {
            List<Sequence> rows = new ArrayList<>();
            for (int i = 0; i < 20; i++) rows.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(t), Map.of(1, 3.4e38)), 300 + i));
            for (int i = 0; i < 20; i++)
                rows.add(SamplerTest.seq(biased(SamplingParams.builder().temperature(t), Map.of(2, -3.4e38, 3, -Double.MAX_VALUE)), 400 + i));
            Sampler.Result r = SAMPLER.sample(SamplerTest.logits(rows.size(), SamplerTest.LOGITS), rows);
            // not the last token: a NaN draw lands on the last one
            for (int i = 0; i < 20; i++) assertEquals(1, r.tokens()[i], "temperature " + t + ": forced");
            for (int i = 20; i < 40; i++) assertTrue(r.tokens()[i] == 0 || r.tokens()[i] == 1, "temperature " + t + ": banned, got " + r.tokens()[i]);
        }
        assertEquals(LogitBias.MAX_MAGNITUDE, LogitBias.of(Map.of(1, 3.4e38)).biases()[0]);
        assertEquals(-LogitBias.MAX_MAGNITUDE, LogitBias.of(Map.of(1, -3.4e38)).biases()[0]);
        assertEquals(-100f, LogitBias.of(Map.of(1, -100.0)).biases()[0]);
    }

    @Test
    void biasesAreSortedAndCompared() {
        LogitBias b = LogitBias.of(Map.of(9, 1.0, 2, -3.5));
        assertEquals(2, b.tokenIds()[0]);
        assertEquals(-3.5f, b.biases()[0]);
        assertEquals(b, LogitBias.of(Map.of(2, -3.5, 9, 1.0)));
        assertTrue(LogitBias.of(Map.of()).isEmpty());
    }
}
