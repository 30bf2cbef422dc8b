package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
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
 * (bench/gpu-bench.sh test): shuffled blocks, contexts of 1 token to several partitions, a block
 * boundary either side, and a padding row of length 0 (which must come out as zeros).
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class PagedDecodeKernelTest {
    static final int BLOCK = 16;
    static final long[] LENS = {1, 15, 16, 17, 700, 0, 1500, 513};

    @ParameterizedTest
    @CsvSource({"14, 2, 64", "16, 8, 128", "28, 4, 128", "32, 32, 128"})
    void kernelMatchesReference(int nH, int nKv, int d) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        ModelConfig c = new ModelConfig("Qwen2ForCausalLM", 1000, nH * d, 4 * nH * d, 1, nH, nKv, d, 1e-6,
                new ModelConfig.Rope("default", 1e6, 1, 0, 0, 0), 4096, true, false, false, "bfloat16", List.of(0));
        try (PointerScope scope = new PointerScope()) {
            int b = LENS.length, maxBlocks = 0, total = 0;
            for (long len : LENS) {
                maxBlocks = (int) Math.max(maxBlocks, (len + BLOCK - 1) / BLOCK);
                total += (int) ((len + BLOCK - 1) / BLOCK);
            }
            List<Integer> ids = new ArrayList<>();
            for (int i = 0; i < total + 5; i++) ids.add(i);
            Collections.shuffle(ids, new Random(7));  // a sequence's blocks lie anywhere in the cache
            long[] table = new long[b * maxBlocks];
            int next = 0;
            for (int s = 0; s < b; s++)
                for (int k = 0; k * BLOCK < LENS[s]; k++) table[s * maxBlocks + k] = ids.get(next++);
            torch.manual_seed(11);
            Tensor q = torch.randn(new long[] {b, nH, d}, Torch.options(ScalarType.BFloat16, cuda));                 // (B, nH, d)
            Tensor kCache = torch.randn(new long[] {(total + 5L) * BLOCK, nKv, d}, Torch.options(ScalarType.BFloat16, cuda));
            Tensor vCache = torch.randn(new long[] {(total + 5L) * BLOCK, nKv, d}, Torch.options(ScalarType.BFloat16, cuda));
            ForwardBatch.DecodeGroup dec = new ForwardBatch.DecodeGroup(null, null, b, maxBlocks * BLOCK, null,
                    Torch.longs(table, b, maxBlocks, cuda), Torch.longs(LENS, cuda), maxBlocks);

            float[] mine = Torch.toFloats(PagedDecode.attend(q, kCache, vCache, dec, BLOCK, c));
            float[] ref = Torch.toFloats(PagedDecode.reference(q, kCache, vCache, dec, BLOCK, c));
            double worst = 0;
            for (int s = 0; s < b; s++) {
                for (int i = s * nH * d; i < (s + 1) * nH * d; i++) {
                    if (LENS[s] == 0) assertEquals(0f, mine[i], "a padding row is zeros");
                    else worst = Math.max(worst, Math.abs(mine[i] - ref[i]));
                }
            }
            System.out.printf("paged decode kernel, nH %d nKv %d d %d: max |kernel - reference| = %.2e%n", nH, nKv, d, worst);
            assertTrue(worst < 2e-2, "kernel differs from the reference by " + worst);  // outputs are O(1) in bf16
        }
    }
}
