package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Our fused per-layer ops against the libtorch ops they replace, on the GPU with the native preset
 * built (bench/gpu-bench.sh test): equal, or one bf16 rounding step apart where a float32 sum
 * was taken in another order.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class FusedOpsTest {
    static final double EPS = 1e-6;

    @ParameterizedTest
    @CsvSource({"14, 2, 64, false", "16, 8, 128, true"})
    void fusedOpsMatchLibtorch(int nH, int nKv, int d, boolean qkNorm) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        int hidden = nH * d, inter = 3 * hidden, t = 37;
        ModelConfig c = new ModelConfig("Qwen3ForCausalLM", 1000, hidden, inter, 1, nH, nKv, d, EPS,
                new ModelConfig.Rope("default", 1e6, 1, 0, 0, 0), 4096, true, false, qkNorm, "bfloat16", List.of(0));
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(3);
            Tensor x = randn(cuda, t, hidden), delta = randn(cuda, t, hidden);
            Tensor w = randn(cuda, hidden).mul(new Scalar(0.1)).add(new Scalar(1.0));

            // rms_norm and add_rms_norm
            check("rms_norm", ref(x, w), NativeOps.rmsNorm(x, w, EPS));
            Tensor[] hx = NativeOps.addRmsNorm(x, delta, w, EPS);
            Tensor sum = x.add(delta);
            assertEquals(0.0, maxDiff(sum, hx[0]), "the residual sum is one bf16 add, as libtorch's");
            check("add_rms_norm", ref(sum, w), hx[1]);

            // silu_and_mul
            Tensor gu = randn(cuda, t, 2 * inter);
            check("silu_and_mul", torch.silu(gu.narrow(1, 0, inter)).mul(gu.narrow(1, inter, inter)), NativeOps.siluAndMul(gu, inter));

            // rope_and_cache: q/k norm, RoPE, the K/V write
            RotaryEmbedding rope = new RotaryEmbedding(c, ScalarType.BFloat16, cuda);
            Tensor qkv = randn(cuda, t, (nH + 2L * nKv) * d);
            long[] pos = new long[t], slots = new long[t];
            for (int i = 0; i < t; i++) {
                pos[i] = 3L * i + 1;
                slots[i] = 100L - 2 * i;  // any order: each token has its own slot
            }
            ForwardBatch fb = new ForwardBatch(null, Torch.longs(pos, cuda), Torch.longs(slots, cuda), null, List.of());
            Tensor qn = qkNorm ? randn(cuda, d).mul(new Scalar(0.1)).add(new Scalar(1.0)) : null;
            Tensor kn = qkNorm ? randn(cuda, d).mul(new Scalar(0.1)).add(new Scalar(1.0)) : null;
            Tensor kCache = Torch.zeros(Torch.options(ScalarType.BFloat16, cuda), 128, nKv, d);
            Tensor vCache = Torch.zeros(Torch.options(ScalarType.BFloat16, cuda), 128, nKv, d);
            Tensor q = NativeOps.ropeAndCache(qkv, fb, rope, qn, kn, kCache, vCache, c);

            Tensor q0 = qkv.narrow(1, 0, (long) nH * d).reshape(t, nH, d);
            Tensor k0 = qkv.narrow(1, (long) nH * d, (long) nKv * d).reshape(t, nKv, d);
            Tensor v0 = qkv.narrow(1, (long) (nH + nKv) * d, (long) nKv * d).reshape(t, nKv, d);
            if (qkNorm) {
                q0 = ref(q0, qn);
                k0 = ref(k0, kn);
            }
            Tensor slotIdx = Torch.longs(slots, cuda);
            check("rope q", rope.apply(q0, fb.positions()), q);
            check("rope k in the cache", rope.apply(k0, fb.positions()), kCache.index_select(0, slotIdx));
            assertEquals(0.0, maxDiff(v0, vCache.index_select(0, slotIdx)), "v is copied as it is");
        }
    }

    /** transformers' RMSNorm over the last dimension, in libtorch's ops (as CausalLm's own path). */
    static Tensor ref(Tensor x, Tensor w) {
        Tensor xf = x.to(ScalarType.Float);
        Tensor var = xf.mul(xf).mean(new long[] {-1}, true, new ScalarTypeOptional());
        return w.mul(xf.mul(var.add(new Scalar(EPS)).rsqrt()).to(ScalarType.BFloat16));
    }

    static Tensor randn(Device device, long... shape) {
        return torch.randn(shape, Torch.options(ScalarType.BFloat16, device));
    }

    static double maxDiff(Tensor a, Tensor b) {
        return torch.max(torch.abs(a.to(ScalarType.Float).sub(b.to(ScalarType.Float)))).item_double();
    }

    /** Equal up to one bf16 rounding step of the result's size. */
    static void check(String what, Tensor expected, Tensor actual) {
        assertEquals(expected.numel(), actual.numel(), what);
        double diff = maxDiff(expected.reshape(-1), actual.reshape(-1));
        double scale = torch.max(torch.abs(expected.to(ScalarType.Float))).item_double();
        System.out.printf("%s: max |fused - libtorch| = %.3e (largest value %.2f)%n", what, diff, scale);
        assertTrue(diff <= Math.max(1e-3, scale / 128), what + " differs by " + diff);
    }
}
