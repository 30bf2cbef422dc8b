package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Our paged decode kernel against its libtorch reference, on the GPU with the native preset built
 * (bench/gpu-bench.sh test): shuffled blocks, contexts of 1 token to many tiles, a block boundary
 * either side, and a padding row of length 0 (which must come out as zeros). The batches are
 * chosen so that the grid has several splits (a small batch: each context past 256 tokens is cut
 * into blocks that the last one to finish merges) and few (a batch that fills the card: one block
 * streams each context of up to 2,048 tokens, and a longer one is still cut); the split counters
 * must be zero again after every call.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class PagedDecodeKernelTest {
    static final int BLOCK = 16;
    static final long[] LENS = {1, 15, 16, 17, 700, 0, 1500, 513};

    /** A batch of contexts in a shuffled cache, with q: everything one call of the kernel reads. */
    private record Batch(ModelConfig c, Tensor q, Tensor kCache, Tensor vCache, long[] table, long[] lens, int maxBlocks) {
        ForwardBatch.DecodeGroup group(Device cuda) {
            int b = lens.length;
            return new ForwardBatch.DecodeGroup(null, null, b, maxBlocks * BLOCK, null, Torch.longs(table, b, maxBlocks, cuda),
                    Torch.longs(lens, cuda), maxBlocks, PagedDecode.splitCounters(b, c.numKvHeads(), cuda));
        }

        /** Sequence s alone, same cache, same blocks. */
        Batch alone(int s) {
            long[] row = Arrays.copyOfRange(table, s * maxBlocks, (s + 1) * maxBlocks);
            return new Batch(c, q.narrow(0, s, 1), kCache, vCache, row, new long[] {lens[s]}, maxBlocks);
        }
    }

    private static Batch batch(long[] lens, int nH, int nKv, int d, long seed, Device cuda) {
        ModelConfig c = new ModelConfig("Qwen2ForCausalLM", 1000, nH * d, 4 * nH * d, 1, nH, nKv, d, 1e-6,
                new ModelConfig.Rope("default", 1e6, 1, 0, 0, 0), 4096, true, false, false, "bfloat16", List.of(0));
        int b = lens.length, maxBlocks = 1, total = 0;
        for (long len : lens) {
            maxBlocks = (int) Math.max(maxBlocks, (len + BLOCK - 1) / BLOCK);
            total += (int) ((len + BLOCK - 1) / BLOCK);
        }
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < total + 5; i++) ids.add(i);
        Collections.shuffle(ids, new Random(seed));  // a sequence's blocks lie anywhere in the cache
        long[] table = new long[b * maxBlocks];
        int next = 0;
        for (int s = 0; s < b; s++)
            for (int k = 0; k * BLOCK < lens[s]; k++) table[s * maxBlocks + k] = ids.get(next++);
        torch.manual_seed(seed);
        Tensor q = torch.randn(new long[] {b, nH, d}, Torch.options(ScalarType.BFloat16, cuda));                 // (B, nH, d)
        Tensor kCache = torch.randn(new long[] {(total + 5L) * BLOCK, nKv, d}, Torch.options(ScalarType.BFloat16, cuda));
        Tensor vCache = torch.randn(new long[] {(total + 5L) * BLOCK, nKv, d}, Torch.options(ScalarType.BFloat16, cuda));
        return new Batch(c, q, kCache, vCache, table, lens, maxBlocks);
    }

    /** The kernel's output (B, nH, d) as floats, after checking that it left its counters at zero. */
    private static float[] kernel(Batch x, int partitionTokens, Device cuda) {
        ForwardBatch.DecodeGroup dec = x.group(cuda);
        float[] out = Torch.toFloats(PagedDecode.attend(x.q(), x.kCache(), x.vCache(), dec, BLOCK, x.c(), partitionTokens));
        long[] counters = Torch.toLongs(dec.splitCounters().to(ScalarType.Long));
        assertTrue(Arrays.stream(counters).allMatch(v -> v == 0), "split counters left at " + Arrays.toString(counters));
        return out;
    }

    /** The largest |kernel - reference| over the real rows; padding rows must be exact zeros. */
    private static double worst(Batch x, float[] mine, Device cuda) {
        ForwardBatch.DecodeGroup dec = x.group(cuda);
        float[] ref = Torch.toFloats(PagedDecode.reference(x.q(), x.kCache(), x.vCache(), dec, BLOCK, x.c()));
        int row = x.c().numHeads() * x.c().headDim();
        double worst = 0;
        for (int s = 0; s < x.lens().length; s++) {
            for (int i = s * row; i < (s + 1) * row; i++) {
                if (x.lens()[s] == 0) assertEquals(0f, mine[i], "a padding row is zeros");
                else worst = Math.max(worst, Math.abs(mine[i] - ref[i]));
            }
        }
        return worst;
    }

    @ParameterizedTest
    @CsvSource({"14, 2, 64", "16, 8, 128", "28, 4, 128", "32, 32, 128"})
    void kernelMatchesReference(int nH, int nKv, int d) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        try (PointerScope scope = new PointerScope()) {
            Batch x = batch(LENS, nH, nKv, d, 11, cuda);
            System.out.printf("paged decode kernel, nH %d nKv %d d %d, batch %d: %d splits%n", nH, nKv, d, LENS.length,
                    RolloutCuda.pagedDecodeSplits(LENS.length, nKv, d, x.maxBlocks(), BLOCK, 0));
            float[] mine = kernel(x, 0, cuda);
            double worst = worst(x, mine, cuda);
            System.out.printf("paged decode kernel, nH %d nKv %d d %d: max |kernel - reference| = %.2e%n", nH, nKv, d, worst);
            assertTrue(worst < 2e-2, "kernel differs from the reference by " + worst);  // outputs are O(1) in bf16
            // the merge adds the splits in their order, whichever block finishes last
            assertArrayEquals(mine, kernel(x, 0, cuda), "a second call gives the same bits");
        }
    }

    /**
     * A batch large enough to fill the card: one block streams each context of up to 2,048 tokens,
     * and the one longer context is cut in three all the same.
     */
    @ParameterizedTest
    @CsvSource({"14, 2, 64", "28, 4, 128"})
    void fullBatchMatchesReference(int nH, int nKv, int d) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        try (PointerScope scope = new PointerScope()) {
            Random random = new Random(5);
            long[] lens = new long[160];
            for (int s = 0; s < lens.length; s++) lens[s] = 1 + random.nextInt(2048);
            lens[7] = 5000;
            Batch x = batch(lens, nH, nKv, d, 13, cuda);
            assertEquals(3, RolloutCuda.pagedDecodeSplits(lens.length, nKv, d, x.maxBlocks(), BLOCK, 0),
                    "160 sequences fill the card: only the 5,000-token context is split, in chunks of 2,048");
            double worst = worst(x, kernel(x, 0, cuda), cuda);
            System.out.printf("paged decode kernel, one split, nH %d nKv %d d %d: max |kernel - reference| = %.2e%n", nH, nKv, d, worst);
            assertTrue(worst < 2e-2, "kernel differs from the reference by " + worst);
        }
    }

    /**
     * With fixed partitions (deterministic mode's configuration) a sequence's output is the same
     * bits alone as in the batch, though the batch changes the grid; without them, alone it gets
     * many more splits, and still matches the reference.
     */
    @ParameterizedTest
    @CsvSource({"14, 2, 64", "28, 4, 128"})
    void fixedPartitionsDoNotDependOnTheBatch(int nH, int nKv, int d) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        try (PointerScope scope = new PointerScope()) {
            Batch x = batch(LENS, nH, nKv, d, 17, cuda);
            float[] together = kernel(x, 128, cuda);
            assertTrue(worst(x, together, cuda) < 2e-2, "fixed partitions against the reference");
            int row = nH * d;
            for (int s = 0; s < LENS.length; s++) {
                Batch one = x.alone(s);
                float[] alone = kernel(one, 128, cuda);
                assertArrayEquals(Arrays.copyOfRange(together, s * row, (s + 1) * row), alone,
                        "sequence " + s + " (" + LENS[s] + " tokens): alone, the same bits as in the batch");
                double worst = worst(one, kernel(one, 0, cuda), cuda);
                assertTrue(worst < 2e-2, "sequence " + s + " alone, split by the grid: " + worst + " from the reference");
            }
        }
    }
}
