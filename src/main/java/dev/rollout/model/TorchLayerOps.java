package dev.rollout.model;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.T_TensorTensor_T;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** The layer's small ops in libtorch's ops, computed and rounded as transformers computes them. */
final class TorchLayerOps implements LayerOps {
    private final ModelConfig config;
    private final ScalarType dtype;
    private final RotaryEmbedding rope;

    TorchLayerOps(ModelConfig config, ScalarType dtype, RotaryEmbedding rope) {
        this.config = config;
        this.dtype = dtype;
        this.rope = rope;
    }

    /** RMSNorm over the last dimension, computed in float32 and cast back, as transformers does. */
    @Override
    public Tensor rmsNorm(Tensor x, Tensor weight) {
        Tensor xf = x.to(ScalarType.Float);
        Tensor var = xf.mul(xf).mean(new long[] {-1}, true, new ScalarTypeOptional());
        return weight.mul(xf.mul(var.add(new Scalar(config.rmsNormEps())).rsqrt()).to(dtype));
    }

    @Override
    public Tensor[] addRmsNorm(Tensor h, Tensor delta, Tensor w) {
        Tensor sum = h.add(delta);
        return new Tensor[] {sum, rmsNorm(sum, w)};
    }

    @Override
    public Tensor qkNormRopeAndCache(Tensor qkv, Tensor qNorm, Tensor kNorm, ForwardBatch batch, Tensor kCache, Tensor vCache) {
        int nH = config.numHeads(), nKv = config.numKvHeads(), d = config.headDim();
        long t = qkv.size(0);
        Tensor q = qkv.narrow(1, 0, (long) nH * d).reshape(t, nH, d);                          // (T, nH, d)
        Tensor k = qkv.narrow(1, (long) nH * d, (long) nKv * d).reshape(t, nKv, d);            // (T, nKv, d)
        Tensor v = qkv.narrow(1, (long) (nH + nKv) * d, (long) nKv * d).reshape(t, nKv, d);   // (T, nKv, d)
        if (qNorm != null) {
            q = rmsNorm(q, qNorm);
            k = rmsNorm(k, kNorm);
        }
        q = rope.apply(q, batch.positions());
        k = rope.apply(k, batch.positions());
        kCache.index_copy_(0, batch.slotMapping(), k);
        vCache.index_copy_(0, batch.slotMapping(), v);
        return q;
    }

    @Override
    public Tensor siluAndMul(Tensor gateUp) {
        long inter = gateUp.size(1) / 2;   // a dense MLP's, or an expert's
        return torch.silu(gateUp.narrow(1, 0, inter)).mul(gateUp.narrow(1, inter, inter));
    }

    @Override
    public ExpertRouting route(Tensor logits, Tensor routed, Tensor slots) {
        ModelConfig.Moe moe = config.moe();
        Tensor probs = torch.softmax(logits, -1, new ScalarTypeOptional(ScalarType.Float));  // (T, E) f32
        T_TensorTensor_T top = probs.topk(moe.topK());
        Tensor weights = top.get0();                                                            // (T, k) f32
        if (moe.normTopK()) weights = weights.div(weights.sum(new long[] {-1}, true, new ScalarTypeOptional()));
        // Qwen's router hands its weights back in the model's dtype, Mixtral's in float32
        if (!moe.mixtralNames()) weights = weights.to(dtype);
        if (routed != null) routed.index_copy_(0, slots, top.get1().to(ScalarType.Int));     // (T, k), most probable first
        Tensor chosen = top.get1().reshape(-1);                                                 // (T k) the expert of each copy
        Tensor order = chosen.argsort(true, 0, false);                                          // (T k) the copy of each row, stable
        Tensor rowOf = torch.empty_like(order).index_copy_(0, order, torch.arange(new Scalar(order.size(0)),
                Torch.options(ScalarType.Long, order.device())));                               // (T k) the row of each copy
        Tensor ends = Torch.zeros(Torch.options(ScalarType.Long, order.device()), moe.experts())
                .scatter_add_(0, chosen, torch.ones_like(chosen)).cumsum(0).to(ScalarType.Int);   // (E) int32
        return new ExpertRouting(weights, rowOf, order.floor_divide(new Scalar(moe.topK())), ends);
    }

    /**
     * Each token's k outputs gathered into its own rows, weighted (in the weights' dtype: rounded to
     * bf16 with Qwen's) and summed in float32 in one fixed order: an index_add_ would sum them with
     * atomics on CUDA, in an order that changes from run to run.
     */
    @Override
    public Tensor combine(Tensor ys, ExpertRouting routing) {
        Tensor weights = routing.weights();                                                     // (T, k)
        Tensor scaled = ys.index_select(0, routing.rowOf()).mul(weights.reshape(-1).unsqueeze(1));   // (T k, H), token-major
        return scaled.view(weights.size(0), weights.size(1), ys.size(1))
                .sum(new long[] {1}, false, new ScalarTypeOptional(ScalarType.Float)).to(dtype);  // (T, H)
    }
}
