package dev.rollout.model;

import org.bytedeco.pytorch.Tensor;

/**
 * The small ops of a decoder layer between its GEMMs: where fusing changes the work, and nothing
 * else does. {@link CausalLm}'s one layer skeleton calls them; {@link TorchLayerOps} composes
 * libtorch's ops (any device and dtype, transformers' rounding), {@link FusedLayerOps} launches our
 * kernels (CUDA, bf16), about ten kernels a layer instead of forty to sixty. Chosen once, when the
 * model is built ({@link Kernels#fusedOps()}), as nano-vllm's RMSNorm picks its fused add+norm
 * inside one forward.
 */
interface LayerOps {
    /** (T, H) -> (T, H): RMSNorm of {@code x} with weight {@code w}. */
    Tensor rmsNorm(Tensor x, Tensor w);

    /** The residual add and the norm after it: {h + delta, rmsNorm(h + delta, w)}, each (T, H). */
    Tensor[] addRmsNorm(Tensor h, Tensor delta, Tensor w);

    /**
     * From the fused projection qkv (T, (nH + 2 nKv) d): the per-head RMSNorm of q and k where
     * {@code qNorm} and {@code kNorm} (d) are given (Qwen3; both null otherwise), RoPE at the batch's
     * positions, K and V written into the caches at the batch's slots. Returns q (T, nH, d).
     */
    Tensor qkNormRopeAndCache(Tensor qkv, Tensor qNorm, Tensor kNorm, ForwardBatch batch, Tensor kCache, Tensor vCache);

    /** gateUp (T, 2 inter) -> (T, inter): silu(gate) * up. */
    Tensor siluAndMul(Tensor gateUp);

    /**
     * A mixture of experts' routing from its router's logits (T, E): softmax in float32, each
     * token's top k (renormalised over the k where the model says so), the copies sorted by expert.
     * Where {@code routed} ((slots, k) int32, the layer's routed-experts record) is given, each
     * token's experts are written at its slot of {@code slots} (T).
     */
    ExpertRouting route(Tensor logits, Tensor routed, Tensor slots);

    /** The experts' outputs ys (T k, H), in the routing's sorted rows -> (T, H): each token's k weighted and summed. */
    Tensor combine(Tensor ys, ExpertRouting routing);
}
