package dev.rollout.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Our fused per-layer ops ({@code native-presets/src/fused_ops.cu}) on libtorch tensors: bf16,
 * contiguous, on the current CUDA device, each result a fresh tensor from libtorch's allocator
 * (so they join CUDA-graph captures like libtorch's own ops).
 */
public final class NativeOps {
    private NativeOps() {}

    /**
     * Makes {@code model} run through our kernels when {@code enabled}: the fused per-layer ops and
     * the paged decode kernel ({@link PagedDecode}), each where it fits the model. Returns why
     * either is not used, or null when both are.
     */
    public static String useIfPossible(CausalLm model, boolean enabled) {
        if (!enabled) return "turned off";
        String fused = unsupported(model.config(), model.dtype(), model.device());
        if (fused == null) model.setFusedOps(true);
        String paged = PagedDecode.unsupported(model.config(), model.dtype(), model.device());
        if (paged == null) model.setDecodeAttention(DecodeAttention.PAGED_NATIVE);
        if (paged != null) return "paged decode: " + paged;
        return fused == null ? null : "fused ops: " + fused;
    }

    /** Why the fused ops cannot serve this model here, or null if they can. */
    static String unsupported(ModelConfig c, ScalarType dtype, Device device) {
        if (!device.is_cuda()) return "needs CUDA";
        if (dtype != ScalarType.BFloat16) return "needs bfloat16, not " + dtype;
        if (c.headDim() != 64 && c.headDim() != 128) return "needs head_dim 64 or 128, not " + c.headDim();
        if (!RolloutCuda.available()) return "the native preset is not loaded: " + RolloutCuda.whyUnavailable();
        return null;
    }

    /** Why our sampling kernel cannot run on this device, or null if it can. */
    public static String samplingUnsupported(Device device) {
        if (!device.is_cuda()) return "needs CUDA";
        if (!RolloutCuda.available()) return "the native preset is not loaded: " + RolloutCuda.whyUnavailable();
        return null;
    }

    /**
     * One token per row in one kernel ({@code native-presets/src/sampling.cu}): logits (S, V)
     * float32, temperature (S) float32 with 0 for greedy rows, uniform (S) float32 in [0, 1) ->
     * (S, 2) float32 of (token, logprob under softmax(logits / T)).
     */
    public static Tensor sampleRows(Tensor logits, Tensor temperature, Tensor uniform) {
        Tensor l = logits.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.Float, l.device()), l.size(0), 2);
        RolloutCuda.sampleRows(ptr(l), ptr(temperature), ptr(uniform), ptr(out), (int) l.size(0), (int) l.size(1));
        return out;
    }

    /** (T, H) -> (T, H): x / rms(x) * w, rounded as transformers rounds it. */
    static Tensor rmsNorm(Tensor x, Tensor w, double eps) {
        Tensor xc = x.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, x.device()), x.size(0), x.size(1));
        RolloutCuda.rmsNorm(ptr(xc), 0, 0, ptr(w), ptr(out), (int) x.size(0), (int) x.size(1), (float) eps);
        return out;
    }

    /** h (T, H) + delta (T, H), and its norm: {h + delta, rmsNorm(h + delta) * w}. */
    static Tensor[] addRmsNorm(Tensor h, Tensor delta, Tensor w, double eps) {
        Tensor hc = h.contiguous(), dc = delta.contiguous();
        Tensor sum = Torch.empty(Torch.options(ScalarType.BFloat16, h.device()), h.size(0), h.size(1));
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, h.device()), h.size(0), h.size(1));
        RolloutCuda.rmsNorm(ptr(hc), ptr(dc), ptr(sum), ptr(w), ptr(out), (int) h.size(0), (int) h.size(1), (float) eps);
        return new Tensor[] {sum, out};
    }

    /** gateUp (T, 2 * inter) -> (T, inter): silu(gate) * up. */
    static Tensor siluAndMul(Tensor gateUp, int inter) {
        Tensor gu = gateUp.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, gu.device()), gu.size(0), inter);
        RolloutCuda.siluAndMul(ptr(gu), ptr(out), (int) gu.size(0), inter);
        return out;
    }

    /**
     * From qkv (T, (nH + 2 nKv) d): optional per-head q/k norm, RoPE at the batch's positions, K and
     * V written at its slots; returns q (T, nH, d).
     */
    static Tensor ropeAndCache(Tensor qkv, ForwardBatch batch, RotaryEmbedding rope, Tensor qNorm, Tensor kNorm,
                               Tensor kCache, Tensor vCache, ModelConfig c) {
        Tensor in = qkv.contiguous();
        long t = in.size(0);
        Tensor q = Torch.empty(Torch.options(ScalarType.BFloat16, in.device()), t, c.numHeads(), c.headDim());
        RolloutCuda.ropeAndCache(ptr(in), ptr(batch.positions()), ptr(batch.slotMapping()), ptr(rope.cos()), ptr(rope.sin()),
                qNorm == null ? 0 : ptr(qNorm), kNorm == null ? 0 : ptr(kNorm), ptr(q), ptr(kCache), ptr(vCache), (int) t,
                c.numHeads(), c.numKvHeads(), c.headDim(), (float) c.rmsNormEps());
        return q;
    }

    private static long ptr(Tensor t) {
        return t.data_ptr().address();
    }
}
