package dev.rollout.model;

import org.bytedeco.pytorch.Scalar;
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
}
