package dev.rollout.model;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Our fused per-layer ops ({@code native-presets/src/fused_ops.cu}) and sampling kernel on
 * libtorch tensors: each result a fresh tensor from libtorch's allocator (so they join CUDA-graph
 * captures like libtorch's own ops), written by the kernel. Inputs are made contiguous here; the
 * native side checks every tensor's device, dtype and shape and throws a RuntimeException naming
 * the op and the argument where one is wrong ({@link RolloutCuda}). Callers get here only with
 * {@link Kernels} that chose our kernels, so with the native preset loaded.
 */
public final class NativeOps {
    private NativeOps() {}

    /**
     * One token per row in one kernel ({@code native-presets/src/sampling.cu}): logits (S, V)
     * float32 or bf16, temperature (S) float32 with 0 for greedy rows, uniform (S) float32 in [0, 1) ->
     * (S, 2) float32 of (token, logprob under softmax(logits / T)).
     */
    public static Tensor sampleRows(Tensor logits, Tensor temperature, Tensor uniform) {
        return sampleRows(logits, temperature, uniform, null, null);
    }

    /**
     * The same, each row taking only the tokens its mask allows: {@code maskWords} (T, ceil(V / 64))
     * int64, bit t of a row set where token t is allowed; {@code maskRow} (S) int64, each row's
     * row of maskWords or -1. Both null for none.
     */
    public static Tensor sampleRows(Tensor logits, Tensor temperature, Tensor uniform, Tensor maskWords, Tensor maskRow) {
        Tensor l = logits.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.Float, l.device()), l.size(0), 2);
        RolloutCuda.sampleRows(l, temperature, uniform, out, maskWords, maskRow);
        return out;
    }

    /** (T, H) -> (T, H): x / rms(x) * w, rounded as transformers rounds it. */
    static Tensor rmsNorm(Tensor x, Tensor w, double eps) {
        Tensor xc = x.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, x.device()), x.size(0), x.size(1));
        RolloutCuda.rmsNorm(xc, w, out, (float) eps);
        return out;
    }

    /** h (T, H) + delta (T, H), and its norm: {h + delta, rmsNorm(h + delta) * w}. */
    static Tensor[] addRmsNorm(Tensor h, Tensor delta, Tensor w, double eps) {
        Tensor hc = h.contiguous(), dc = delta.contiguous();
        Tensor sum = Torch.empty(Torch.options(ScalarType.BFloat16, h.device()), h.size(0), h.size(1));
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, h.device()), h.size(0), h.size(1));
        RolloutCuda.addRmsNorm(hc, dc, sum, w, out, (float) eps);
        return new Tensor[] {sum, out};
    }

    /**
     * Decode's few rows through a projection (dense_gemv.cu): x (T, K), the residual stream,
     * RMSNorm'd by {@code normW} (K) inside the kernel -> (T, N) = norm(x) w^T (+ bias (N)).
     */
    static Tensor normGemv(Tensor x, Tensor normW, Tensor w, Tensor bias, double eps) {
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, x.device()), x.size(0), w.size(0));
        RolloutCuda.denseGemv(x.contiguous(), normW, w, bias, out, 0, (float) eps);
        return out;
    }

    /** h (T, N) += x (T, K) w^T, in place, each sum rounded to bf16 before the add as a GEMM's output is. */
    static void gemvResidual(Tensor x, Tensor w, Tensor h) {
        RolloutCuda.denseGemv(x.contiguous(), null, w, null, h, 1, 0f);
    }

    /** x (T, K) normed by {@code normW} -> (T, inter) = silu(g) * u of g|u = norm(x) gateUp^T; gateUp (2 inter, K). */
    static Tensor normGemvSiluMul(Tensor x, Tensor normW, Tensor gateUp, double eps) {
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, x.device()), x.size(0), gateUp.size(0) / 2);
        RolloutCuda.denseGemv(x.contiguous(), normW, gateUp, null, out, 2, (float) eps);
        return out;
    }

    /** gateUp (T, 2 * inter) -> (T, inter): silu(gate) * up. */
    static Tensor siluAndMul(Tensor gateUp, int inter) {
        Tensor gu = gateUp.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, gu.device()), gu.size(0), inter);
        RolloutCuda.siluAndMul(gu, out);
        return out;
    }

    /**
     * A mixture's routing from its router's logits (T, E) bf16 in two kernels: the top k of each
     * token (weights float32, rounded to bf16 where {@code roundWeights}), then the copies sorted by
     * expert. {@code routed} and {@code slots}: the routed-experts record and each token's slot, or both null.
     */
    static ExpertRouting moeRoute(Tensor logits, int k, int experts, boolean renormalize, boolean roundWeights,
                                  Tensor routed, Tensor slots) {
        Tensor l = logits.contiguous();
        long t = l.size(0);
        Tensor weights = Torch.empty(Torch.options(ScalarType.Float, l.device()), t, k);      // (T, k)
        Tensor chosen = Torch.empty(Torch.options(ScalarType.Int, l.device()), t, k);         // (T, k) int32
        RolloutCuda.moeRoute(l, weights, chosen, routed, routed == null ? null : slots, renormalize, roundWeights);
        Tensor rowOf = Torch.empty(Torch.options(ScalarType.Long, l.device()), t * k);        // (T k)
        Tensor tokenOf = Torch.empty(Torch.options(ScalarType.Long, l.device()), t * k);      // (T k)
        Tensor ends = Torch.empty(Torch.options(ScalarType.Int, l.device()), experts);        // (E) int32
        RolloutCuda.moeAlign(chosen, rowOf, tokenOf, ends);
        return new ExpertRouting(weights, rowOf, tokenOf, ends);
    }

    /** ys (T k, H) bf16 in the routing's sorted rows -> (T, H) bf16; products rounded to bf16 where {@code roundProducts}. */
    static Tensor moeCombine(Tensor ys, ExpertRouting routing, boolean roundProducts) {
        Tensor y = ys.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, y.device()), routing.weights().size(0), y.size(1));
        RolloutCuda.moeCombine(y, routing.rowOf(), routing.weights(), out, roundProducts);
        return out;
    }

    /**
     * From qkv (T, (nH + 2 nKv) d): optional per-head q/k norm (both null without it), RoPE at the
     * batch's positions, K and V written at its slots; returns q (T, nH, d).
     */
    static Tensor ropeAndCache(Tensor qkv, ForwardBatch batch, RotaryEmbedding rope, Tensor qNorm, Tensor kNorm,
                               Tensor kCache, Tensor vCache, ModelConfig c) {
        Tensor in = qkv.contiguous();
        Tensor q = Torch.empty(Torch.options(ScalarType.BFloat16, in.device()), in.size(0), c.numHeads(), c.headDim());
        RolloutCuda.ropeAndCache(in, batch.positions(), batch.slotMapping(), rope.cos(), rope.sin(), qNorm, kNorm, q,
                kCache, vCache, (float) c.rmsNormEps());
        return q;
    }
}
