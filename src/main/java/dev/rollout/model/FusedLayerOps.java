package dev.rollout.model;

import org.bytedeco.pytorch.Tensor;

/**
 * The layer's small ops through our kernels (native-presets/src/fused_ops.cu): each residual add
 * fused with the norm after it, q/k norm + RoPE + the K/V write in one kernel, SiLU-and-mul in
 * another; a mixture's routing in two (native-presets/src/moe.cu) and its combine in one. bf16 on CUDA with the native preset loaded; {@link Kernels} checks that before the model
 * is built, and the native side checks every tensor it is handed.
 */
final class FusedLayerOps implements LayerOps {
    private final ModelConfig config;
    private final RotaryEmbedding rope;

    FusedLayerOps(ModelConfig config, RotaryEmbedding rope) {
        this.config = config;
        this.rope = rope;
    }

    @Override
    public Tensor rmsNorm(Tensor x, Tensor w) {
        return NativeOps.rmsNorm(x, w, config.rmsNormEps());
    }

    @Override
    public Tensor[] addRmsNorm(Tensor h, Tensor delta, Tensor w) {
        return NativeOps.addRmsNorm(h, delta, w, config.rmsNormEps());
    }

    @Override
    public Tensor qkNormRopeAndCache(Tensor qkv, Tensor qNorm, Tensor kNorm, ForwardBatch batch, Tensor kCache, Tensor vCache) {
        return NativeOps.ropeAndCache(qkv, batch, rope, qNorm, kNorm, kCache, vCache, config);
    }

    @Override
    public Tensor siluAndMul(Tensor gateUp) {
        return NativeOps.siluAndMul(gateUp, Math.toIntExact(gateUp.size(1) / 2));   // a dense MLP's, or an expert's
    }

    @Override
    public ExpertRouting route(Tensor logits, Tensor routed, Tensor slots) {
        ModelConfig.Moe moe = config.moe();
        // Qwen's router hands its weights back in the model's dtype, Mixtral's in float32
        return NativeOps.moeRoute(logits, moe.topK(), moe.experts(), moe.normTopK(), !moe.mixtralNames(), routed, slots);
    }

    @Override
    public Tensor combine(Tensor ys, ExpertRouting routing) {
        return NativeOps.moeCombine(ys, routing, !config.moe().mixtralNames());
    }
}
