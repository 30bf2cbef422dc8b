package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * dense_gemv.cu's projections at decode's few rows against the libtorch ops they replace (the
 * norm kernel, cuBLAS's GEMM, the residual add, SiLU-and-mul), on the GPU with the native preset
 * built (bench/gpu-bench.sh test): one bf16 step apart at most, where a float32 sum was taken in
 * another order. And each row's bits depend on that row alone: the same alone as beside seven others.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class DenseGemvTest {
    static final double EPS = 1e-6;

    /**
     * Qwen2.5-0.5B's projections (q/k/v with its bias, o, gate-up, down), 7B's down, and odd sizes:
     * 1154 x 904 for the CUDA-core form's edges (K not a multiple of 32, which the tensor-core form
     * leaves to it), 1156 x 1024 for the tensor-core form's last, partial tile of 4 rows.
     */
    @ParameterizedTest
    @CsvSource({"1152, 896", "896, 4864", "3584, 18944", "1154, 904", "1156, 1024", "9728, 896"})
    void everyEpilogueMatchesTheOpsItReplaces(int n, int k) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(11);
            Tensor w = FusedOpsTest.randn(cuda, n, k).mul(new Scalar(1.0 / Math.sqrt(k)));     // (N, K)
            Tensor bias = FusedOpsTest.randn(cuda, n).mul(new Scalar(0.1));                      // (N)
            Tensor g = FusedOpsTest.randn(cuda, k).mul(new Scalar(0.1)).add(new Scalar(1.0));    // (K), a norm's weight
            for (int rows = 1; rows <= Kernels.GEMV_ROWS; rows++) {
                Tensor x = FusedOpsTest.randn(cuda, rows, k);                                      // (rows, K)
                String at = " at " + rows + " rows of " + n + " x " + k;

                // a norm's row is staged in shared memory: the kernel norms hidden sizes up to 8192, not
                // the intermediate size of 7B's down projection, which the model never norms
                boolean normed = k <= 8192;
                if (normed)
                    FusedOpsTest.check("store + norm + bias" + at, torch.linear(normed(x, g), w, new TensorOptional(bias)),
                            NativeOps.normGemv(x, g, w, bias, EPS));
                Tensor plain = Torch.empty(Torch.options(x.scalar_type(), cuda), rows, n);
                RolloutCuda.denseGemv(x, null, w, null, plain, 0, 0f);
                FusedOpsTest.check("store" + at, torch.linear(x, w), plain);

                Tensor h = FusedOpsTest.randn(cuda, rows, n);
                Tensor expected = h.add(torch.linear(x, w));                                       // bf16(h + bf16(x w^T))
                NativeOps.gemvResidual(x, w, h);
                FusedOpsTest.check("residual" + at, expected, h);

                if (normed && n % 4 == 0) {
                    Tensor gateUp = torch.linear(normed(x, g), w);                                       // (rows, N): gate then up
                    FusedOpsTest.check("silu_mul + norm" + at, NativeOps.siluAndMul(gateUp, n / 2),
                            NativeOps.normGemvSiluMul(x, g, w, EPS));
                }
            }
        }
    }

    private static Tensor normed(Tensor x, Tensor g) {
        return NativeOps.rmsNorm(x, g, EPS);
    }

    /** The sums run lane, warp, split in a fixed order per row: a row's bits do not depend on the others, nor on the call. */
    @Test
    void aRowsBitsAreTheSameAloneAsBesideOthers() {
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(5);
            int n = 9728, k = 896;
            Tensor w = FusedOpsTest.randn(cuda, n, k).mul(new Scalar(0.03));
            Tensor g = FusedOpsTest.randn(cuda, k).mul(new Scalar(0.1)).add(new Scalar(1.0));
            Tensor x = FusedOpsTest.randn(cuda, Kernels.GEMV_ROWS, k);
            Tensor all = NativeOps.normGemvSiluMul(x, g, w, EPS);
            assertEquals(0.0, FusedOpsTest.maxDiff(all, NativeOps.normGemvSiluMul(x, g, w, EPS)), "a second call");
            for (int r = 0; r < Kernels.GEMV_ROWS; r++) {
                Tensor alone = NativeOps.normGemvSiluMul(x.narrow(0, r, 1), g, w, EPS);
                assertEquals(0.0, FusedOpsTest.maxDiff(all.narrow(0, r, 1), alone), "row " + r + " alone");
            }
        }
    }

    /** What the kernel cannot take is refused with a message, before any launch. */
    @Test
    void wrongTensorsAreRefusedByName() {
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        try (PointerScope scope = new PointerScope()) {
            Tensor w = FusedOpsTest.randn(cuda, 64, 128), x9 = FusedOpsTest.randn(cuda, Kernels.GEMV_ROWS + 1, 128);
            RuntimeException many = assertThrows(RuntimeException.class,
                    () -> RolloutCuda.denseGemv(x9, null, w, null, FusedOpsTest.randn(cuda, 9, 64), 0, 0f));
            assertTrue(many.getMessage().contains("denseGemv: x has shape [9, 128]: 1 to 8 rows"), many.getMessage());
            Tensor x = FusedOpsTest.randn(cuda, 2, 128);
            RuntimeException self = assertThrows(RuntimeException.class, () -> RolloutCuda.denseGemv(x, null,
                    FusedOpsTest.randn(cuda, 128, 128), null, x, 1, 0f));
            assertTrue(self.getMessage().contains("denseGemv: out is x"), self.getMessage());
            RuntimeException odd = assertThrows(RuntimeException.class, () -> RolloutCuda.denseGemv(x, null,
                    FusedOpsTest.randn(cuda, 66, 128), null, FusedOpsTest.randn(cuda, 2, 33), 2, 0f));
            assertTrue(odd.getMessage().contains("gate then up, of an even intermediate size"), odd.getMessage());
            assertEquals(Kernels.GEMV_ROWS, RolloutCuda.gemvMaxRows(), "Kernels.GEMV_ROWS is the native side's limit");
        }
    }
}
