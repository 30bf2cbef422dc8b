package dev.rollout.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.bytedeco.pytorch.global.torch;

/**
 * Rotary position embedding as transformers computes it: inverse frequencies in float32
 * (optionally with Llama 3's wavelength-dependent scaling), cos/sin tables indexed by position,
 * and the rotate-half formulation.
 */
public final class RotaryEmbedding {
    private final Tensor cos; // (maxPositions, headDim), float32 until cast
    private final Tensor sin; // (maxPositions, headDim)

    public RotaryEmbedding(ModelConfig config, ScalarType dtype, Device device) {
        int dim = config.headDim();
        float[] invFreq = inverseFrequencies(config.rope(), dim);
        long[] pos = new long[config.maxPositionEmbeddings()];
        for (int i = 0; i < pos.length; i++) pos[i] = i;
        Tensor p = Torch.longs(pos, device).to(ScalarType.Float);                 // (P)
        Tensor freqs = torch.outer(p, Torch.floats(invFreq, device));              // (P, dim/2)
        Tensor emb = torch.cat(new TensorVector(freqs, freqs), 1); // (P, dim)
        cos = emb.cos().to(dtype);
        sin = emb.sin().to(dtype);
    }

    static float[] inverseFrequencies(ModelConfig.Rope rope, int dim) {
        float[] inv = new float[dim / 2];
        for (int i = 0; i < inv.length; i++)
            inv[i] = (float) (1.0 / Math.pow((float) rope.theta(), (float) (2 * i) / dim));
        if (rope.type().equals("llama3")) {
            double lowWavelen = rope.originalMaxPositions() / rope.lowFreqFactor();
            double highWavelen = rope.originalMaxPositions() / rope.highFreqFactor();
            for (int i = 0; i < inv.length; i++) {
                double wavelen = 2 * Math.PI / inv[i];
                if (wavelen > lowWavelen) {
                    inv[i] = (float) (inv[i] / rope.factor());
                } else if (wavelen >= highWavelen) {
                    // between the two: interpolate between scaled and unscaled frequency
                    double smooth = (rope.originalMaxPositions() / wavelen - rope.lowFreqFactor())
                            / (rope.highFreqFactor() - rope.lowFreqFactor());
                    inv[i] = (float) ((1 - smooth) * inv[i] / rope.factor() + smooth * inv[i]);
                }
            }
        }
        return inv;
    }

    /** (maxPositions, headDim) in the model's dtype: the table our fused RoPE kernel reads. */
    Tensor cos() {
        return cos;
    }

    Tensor sin() {
        return sin;
    }

    /** Rotates {@code x} (T, heads, headDim) at {@code positions} (T). */
    public Tensor apply(Tensor x, Tensor positions) {
        long half = x.size(2) / 2;
        Tensor c = cos.index_select(0, positions).unsqueeze(1);  // (T, 1, headDim)
        Tensor s = sin.index_select(0, positions).unsqueeze(1);
        Tensor x1 = x.narrow(2, 0, half);
        Tensor x2 = x.narrow(2, half, half);
        Tensor rotated = torch.cat(new TensorVector(x2.neg(), x1), 2);
        return x.mul(c).add(rotated.mul(s));
    }
}
