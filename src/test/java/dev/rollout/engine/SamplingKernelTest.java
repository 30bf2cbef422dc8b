package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Our sampling kernel (native-presets/src/sampling.cu) against exact float64 arithmetic on the
 * host, on the GPU with the native preset built (bench/gpu-bench.sh test). A flat distribution
 * over 151,936 tokens gives each token a CDF step of about 1e-5, below what float32 running sums
 * (libtorch's cumsum or ours) resolve, so a draw is checked against the exact CDF within a
 * tolerance, not against libtorch's token.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class SamplingKernelTest {
    static final Device CUDA = new Device(System.getProperty("rollout.test.device", "cuda"));
    static final LogprobOptions LOGPROB = new LogprobOptions(true, -1, 0, null);

    static Sampler kernelSampler() {
        return new Sampler(CUDA, List.of(), true);  // throws, saying why, without the native preset
    }

    static Sequence seq(SamplingParams p, long seed) {
        return new Sequence("s" + seed, 0, new int[] {0}, p, LOGPROB, null, o -> {}, false, seed);
    }

    /** The uniform draw a fresh sequence of this seed makes first (the sampler's own source). */
    static double firstDraw(long seed) {
        return seq(SamplingParams.GREEDY, seed).rng.nextDouble();
    }

    /**
     * Qwen's vocabulary, read 16 bytes a lane, and an odd one, read a float at a time; the last
     * row has a single token that is not banned, in the last of the kernel's 32 chunks.
     */
    @ParameterizedTest
    @ValueSource(ints = {151_936, 50_001})
    void drawsInvertTheExactCdfAndReportExactLogprobs(int vocab) {
        int rows = 48;
        Random r = new Random(7);
        float[] logits = new float[rows * vocab];
        for (int i = 0; i < logits.length; i++) logits[i] = (float) (r.nextGaussian() * 3);
        for (int row = 0; row < rows; row += 5) logits[row * vocab + r.nextInt(vocab)] = Float.NEGATIVE_INFINITY;  // a ban
        java.util.Arrays.fill(logits, (rows - 1) * vocab, rows * vocab - 1, Float.NEGATIVE_INFINITY);
        List<Sequence> seqs = new ArrayList<>();
        double[] temps = new double[rows];
        for (int i = 0; i < rows; i++) {
            temps[i] = i % 4 == 0 ? 0 : i % 4 == 1 ? 1.0 : i % 4 == 2 ? 0.7 : 1.6;
            SamplingParams p = temps[i] == 0 ? SamplingParams.GREEDY : SamplingParams.builder().temperature(temps[i]).build();
            seqs.add(seq(p, 100 + i));
        }
        try (PointerScope scope = new PointerScope()) {
            Sampler.Result res = kernelSampler().sample(Torch.floats(logits, CUDA).view(rows, vocab), seqs);
            for (int i = 0; i < rows; i++) {
                double t = temps[i] == 0 ? 1 : temps[i], max = Double.NEGATIVE_INFINITY, sum = 0;
                int argmax = 0;
                for (int v = 0; v < vocab; v++) {
                    double y = logits[i * vocab + v] / t;
                    if (y > max) {
                        max = y;
                        argmax = v;
                    }
                }
                for (int v = 0; v < vocab; v++) sum += Math.exp(logits[i * vocab + v] / t - max);
                int tok = res.tokens()[i];
                if (i == rows - 1) assertEquals(vocab - 1, tok, "the only token not banned");
                assertEquals(logits[i * vocab + tok] / t - max - Math.log(sum), res.logprobs()[i].logprob(), 2e-4, "row " + i);
                if (temps[i] == 0) {
                    assertEquals(argmax, tok, "greedy row " + i);
                    continue;
                }
                double below = 0;  // exact CDF just below the drawn token
                for (int v = 0; v < tok; v++) below += Math.exp(logits[i * vocab + v] / t - max) / sum;
                double at = below + Math.exp(logits[i * vocab + tok] / t - max) / sum, u = firstDraw(100 + i);
                assertTrue(below - 1e-4 <= u && u <= at + 1e-4,
                        "row " + i + ": u " + u + " outside the drawn token's CDF step [" + below + ", " + at + "]");
            }
        }
    }

    /**
     * bf16 logits, as the LM head gives them, draw the same tokens with the same logprobs, bit for
     * bit, as their float32 copy: plain rows go to the kernel as they are, and a batch with one row
     * that needs float32 (a penalty) is copied whole. Qwen's vocabulary (16 bytes a lane) and an odd
     * one (a value at a time).
     */
    @ParameterizedTest
    @ValueSource(ints = {151_936, 50_001})
    void bf16LogitsDrawWhatTheirFloat32CopyDraws(int vocab) {
        int rows = 16;
        try (PointerScope scope = new PointerScope()) {
            org.bytedeco.pytorch.global.torch.manual_seed(vocab);
            Tensor bf16 = org.bytedeco.pytorch.global.torch.randn(new long[] {rows, vocab},
                    Torch.options(org.bytedeco.pytorch.global.torch.ScalarType.BFloat16, CUDA)).mul_(new org.bytedeco.pytorch.Scalar(3));
            for (boolean penalised : new boolean[] {false, true}) {
                List<Sequence> a = new ArrayList<>(), b = new ArrayList<>();
                for (int i = 0; i < rows; i++) {
                    SamplingParams.Builder p = SamplingParams.builder().temperature(i % 3 == 0 ? 0 : 0.8 + 0.1 * i);
                    if (penalised && i == 5) p.frequencyPenalty(0.5);
                    a.add(seq(p.build(), 300 + i));
                    b.add(seq(p.build(), 300 + i));
                }
                Sampler s = kernelSampler();
                Sampler.Result fromBf16 = s.sample(bf16.clone(), a);
                Sampler.Result fromF32 = s.sample(bf16.to(org.bytedeco.pytorch.global.torch.ScalarType.Float), b);
                assertArrayEquals(fromF32.tokens(), fromBf16.tokens(), "penalised " + penalised);
                for (int i = 0; i < rows; i++)
                    assertEquals(Float.floatToIntBits(fromF32.logprobs()[i].logprob()), Float.floatToIntBits(fromBf16.logprobs()[i].logprob()),
                            "row " + i + ", penalised " + penalised);
            }
        }
    }

    /**
     * Constrained rows (issue #22): in a step of plain rows the kernel reads their packed masks
     * itself, from bf16 logits; with one penalised row in the step the masks are written into a
     * float32 copy of the logits instead. Both draw the same tokens with the same logprobs, bit for
     * bit, and only tokens the constraint allows.
     */
    @Test
    void constrainedRowsDrawTheSameWhetherTheKernelReadsTheMaskOrTheLogitsHoldIt() {
        int rows = 64, vocab = ConstrainedSamplerTest.V;
        dev.rollout.constrain.TokenIndex ab = ConstrainedSamplerTest.regex("[ab]+");
        try (PointerScope scope = new PointerScope()) {
            org.bytedeco.pytorch.global.torch.manual_seed(7);
            Tensor bf16 = org.bytedeco.pytorch.global.torch.randn(new long[] {rows, vocab},
                    Torch.options(org.bytedeco.pytorch.global.torch.ScalarType.BFloat16, CUDA)).mul_(new org.bytedeco.pytorch.Scalar(3));
            List<Sequence> inKernel = new ArrayList<>(), inLogits = new ArrayList<>();
            for (int i = 0; i < rows; i++) {
                SamplingParams.Builder p = SamplingParams.builder().temperature(i % 4 == 0 ? 0 : 1.0);
                if (i % 2 == 0) p.constraint(ab);
                inKernel.add(seq(p.build(), 700 + i));
                // a frequency penalty with no output yet changes no logit, but makes the step write its masks
                if (i == 1) p.frequencyPenalty(0.5);
                inLogits.add(seq(p.build(), 700 + i));
            }
            // row 2's output has ended ("a", then EOS): its mask allows nothing, and both ways give token 0
            // and the masked logits' logprob (NaN), not the raw logit's
            for (List<Sequence> batch : List.of(inKernel, inLogits)) {
                batch.get(2).constraint.advance(0);
                batch.get(2).constraint.advance(ConstrainedSamplerTest.EOS);
                assertTrue(batch.get(2).constraint.ended());
            }
            Sampler s = kernelSampler();
            Sampler.Result a = s.sample(bf16.clone(), inKernel);
            Sampler.Result b = s.sample(bf16.clone(), inLogits);
            assertArrayEquals(b.tokens(), a.tokens());
            assertEquals(0, a.tokens()[2]);
            assertTrue(Float.isNaN(a.logprobs()[2].logprob()), "row 2: " + a.logprobs()[2].logprob());
            for (int i = 0; i < rows; i++) {
                assertEquals(Float.floatToIntBits(b.logprobs()[i].logprob()), Float.floatToIntBits(a.logprobs()[i].logprob()), "row " + i);
                if (i % 2 == 0 && i != 2) assertTrue(inKernel.get(i).constraint.allowed().allows(a.tokens()[i]),
                        "row " + i + " drew " + a.tokens()[i] + ", which [ab]+ does not allow first");
            }
        }
    }

    @Test
    void followsTheDistributionAndNeverDrawsABannedToken() {
        int draws = 4000;
        float[] row = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05),
                Float.NEGATIVE_INFINITY};
        float[] all = new float[draws * row.length];
        List<Sequence> seqs = new ArrayList<>();
        for (int i = 0; i < draws; i++) {
            System.arraycopy(row, 0, all, i * row.length, row.length);
            seqs.add(seq(SamplingParams.builder().temperature(1.0).build(), 1000 + i));
        }
        int[] c = new int[row.length];
        try (PointerScope scope = new PointerScope()) {
            for (int t : kernelSampler().sample(Torch.floats(all, CUDA).view(draws, row.length), seqs).tokens()) c[t]++;
        }
        double[] expected = {0.5, 0.3, 0.15, 0.05};
        for (int i = 0; i < 4; i++) assertEquals(expected[i], c[i] / (double) draws, 0.03, "token " + i);
        assertEquals(0, c[4], "a banned token");
    }

    /** A seeded row draws the same token whether or not a top-p row shares its batch. */
    @Test
    void plainRowsDoNotDependOnFilteredBatchMates() {
        int vocab = 5000;
        Random r = new Random(11);
        float[] row = new float[vocab];
        for (int v = 0; v < vocab; v++) row[v] = (float) (r.nextGaussian() * 2);
        SamplingParams plain = SamplingParams.builder().temperature(1.0).build();
        SamplingParams nucleus = SamplingParams.builder().temperature(1.0).topP(0.5).build();
        try (PointerScope scope = new PointerScope()) {
            Sampler s = kernelSampler();
            int[] alone = s.sample(Torch.floats(concat(row, 3), CUDA).view(3, vocab),
                    List.of(seq(plain, 1), seq(plain, 2), seq(plain, 3))).tokens();
            Sampler.Result mixed = s.sample(Torch.floats(concat(row, 4), CUDA).view(4, vocab),
                    List.of(seq(plain, 1), seq(nucleus, 9), seq(plain, 2), seq(plain, 3)));
            int[] m = mixed.tokens();
            assertArrayEquals(alone, new int[] {m[0], m[2], m[3]});
            // the top-p row keeps to the smallest set of most likely tokens that reaches 0.5
            float[] sorted = row.clone();
            java.util.Arrays.sort(sorted);
            double z = 0, kept = 0;
            for (float x : row) z += Math.exp(x);
            float cut = sorted[vocab - 1];
            for (int k = vocab - 1; k >= 0 && kept < 0.5; k--) {
                kept += Math.exp(sorted[k]) / z;
                cut = sorted[k];
            }
            assertTrue(row[m[1]] >= cut, "the top-p row drew a token outside its nucleus");
        }
    }

    static float[] concat(float[] row, int times) {
        float[] all = new float[row.length * times];
        for (int i = 0; i < times; i++) System.arraycopy(row, 0, all, i * row.length, row.length);
        return all;
    }

    /**
     * logit_bias reaches the kernel's rows (greedy and plain sampling) and the filtered rows that
     * libtorch redraws: the bias is written into the logits on the device before either picks.
     */
    @Test
    void logitBiasForcesAndBansOnTheKernelPath() {
        int rows = 24, vocab = 151_936, forced = 12_345;
        Random r = new Random(11);
        float[] logits = new float[rows * vocab];
        for (int i = 0; i < logits.length; i++) logits[i] = (float) (r.nextGaussian() * 3);
        List<Sequence> seqs = new ArrayList<>();
        for (int i = 0; i < rows; i++) {
            SamplingParams.Builder b = i % 3 == 0 ? SamplingParams.builder().temperature(0)
                    : i % 3 == 1 ? SamplingParams.builder().temperature(1.0) : SamplingParams.builder().temperature(1.0).topK(50).topP(0.9);
            seqs.add(seq(b.logitBias(LogitBias.of(java.util.Map.of(forced, 100.0))).build(), 500 + i));
        }
        try (PointerScope scope = new PointerScope()) {
            Sampler.Result res = kernelSampler().sample(Torch.floats(logits, CUDA).view(rows, vocab), seqs);
            for (int i = 0; i < rows; i++) assertEquals(forced, res.tokens()[i], "row " + i);
            assertEquals(0.0, res.logprobs()[0].logprob(), 1e-3, "the biased logits' logprob");
        }
        // ban each greedy row's argmax: the kernel must pick another token
        int[] argmax = new int[rows];
        for (int i = 0; i < rows; i++) {
            int best = 0;
            for (int v = 1; v < vocab; v++) if (logits[i * vocab + v] > logits[i * vocab + best]) best = v;
            argmax[i] = best;
        }
        List<Sequence> banned = new ArrayList<>();
        for (int i = 0; i < rows; i++)
            banned.add(seq(SamplingParams.builder().temperature(0).logitBias(LogitBias.of(java.util.Map.of(argmax[i], -1000.0))).build(), 900 + i));
        try (PointerScope scope = new PointerScope()) {
            Sampler.Result res = kernelSampler().sample(Torch.floats(logits, CUDA).view(rows, vocab), banned);
            for (int i = 0; i < rows; i++) assertTrue(res.tokens()[i] != argmax[i], "row " + i + " took its banned argmax");
        }
    }

    /**
     * A row in another logprob mode (ADR 0028) leaves the kernel's draws as they are and takes its
     * values from libtorch: raw_logits reports the drawn token's logit; the SGLang rows beside it
     * report what the kernel reports alone.
     */
    @Test
    void aRowInAnotherModeKeepsTheKernelsDrawsAndReportsItsMode() {
        int rows = 4, vocab = 151_936;
        Random r = new Random(13);
        float[] logits = new float[rows * vocab];
        for (int i = 0; i < logits.length; i++) logits[i] = (float) (r.nextGaussian() * 3);
        SamplingParams p = SamplingParams.builder().temperature(0.9).build();
        List<Sequence> plain = new ArrayList<>(), mixed = new ArrayList<>();
        for (int i = 0; i < rows; i++) {
            plain.add(seq(p, 40 + i));
            mixed.add(i != 2 ? seq(p, 40 + i) : new Sequence("raw", 0, new int[] {0}, p,
                    new LogprobOptions(true, -1, 0, null, LogprobsMode.RAW_LOGITS), null, o -> {}, false, 40 + i));
        }
        try (PointerScope scope = new PointerScope()) {
            Sampler s = kernelSampler();
            Sampler.Result alone = s.sample(Torch.floats(logits, CUDA).view(rows, vocab), plain);
            Sampler.Result together = s.sample(Torch.floats(logits, CUDA).view(rows, vocab), mixed);
            assertArrayEquals(alone.tokens(), together.tokens(), "the kernel draws every row either way");
            int tok = together.tokens()[2];
            assertEquals(logits[2 * vocab + tok], together.logprobs()[2].logprob(), "raw_logits: the drawn token's logit");
            for (int i : new int[] {0, 1, 3})
                assertEquals(alone.logprobs()[i].logprob(), together.logprobs()[i].logprob(), 2e-4, "row " + i + ": SGLang's logprob");
        }
    }
}
