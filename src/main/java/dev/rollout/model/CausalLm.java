package dev.rollout.model;

import java.io.IOException;
import java.nio.file.Path;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.bytedeco.pytorch.global.torch;

/**
 * The Llama-family decoder (Llama 2/3, Qwen2/2.5, Qwen3) over libtorch, working on the flattened
 * tokens of a whole continuous batch. q/k/v and gate/up are fused into one matrix each at load
 * time, so a layer runs two projections in and two out.
 */
public final class CausalLm {
    private final ModelConfig config;
    private final Device device;
    private final ScalarType dtype;
    private final Tensor embed;    // (vocab, hidden)
    private final Tensor lmHead;   // (vocab, hidden); the same tensor as embed when tied
    private final Tensor finalNorm; // (hidden)
    private final Layer[] layers;
    private final RotaryEmbedding rope;

    /**
     * @param qkv    ((heads + 2 * kvHeads) * headDim, hidden)
     * @param qkvBias ((heads + 2 * kvHeads) * headDim) or null
     * @param qNorm  (headDim) or null; Qwen3 normalises each head's q and k before RoPE
     * @param gateUp (2 * intermediate, hidden)
     */
    record Layer(Tensor inputNorm, Tensor qkv, Tensor qkvBias, Tensor qNorm, Tensor kNorm, Tensor o,
                 Tensor postNorm, Tensor gateUp, Tensor down) {}

    private CausalLm(ModelConfig config, Device device, ScalarType dtype, Tensor embed, Tensor lmHead,
                     Tensor finalNorm, Layer[] layers) {
        this.config = config;
        this.device = device;
        this.dtype = dtype;
        this.embed = embed;
        this.lmHead = lmHead;
        this.finalNorm = finalNorm;
        this.layers = layers;
        this.rope = new RotaryEmbedding(config, dtype, device);
    }

    public static CausalLm load(Path dir, ScalarType dtype, Device device) throws IOException {
        ModelConfig config = ModelConfig.read(dir);
        Checkpoint ckpt = Checkpoint.open(dir);
        Tensor embed = ckpt.load("model.embed_tokens.weight", dtype, device);
        Tensor lmHead = config.tieWordEmbeddings() || !ckpt.contains("lm_head.weight")
                ? embed : ckpt.load("lm_head.weight", dtype, device);
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            String a = p + "self_attn.";
            Tensor qkv = cat(ckpt.load(a + "q_proj.weight", dtype, device), ckpt.load(a + "k_proj.weight", dtype, device),
                    ckpt.load(a + "v_proj.weight", dtype, device));
            Tensor qkvBias = config.qkvBias()
                    ? cat(ckpt.load(a + "q_proj.bias", dtype, device), ckpt.load(a + "k_proj.bias", dtype, device),
                          ckpt.load(a + "v_proj.bias", dtype, device))
                    : null;
            layers[i] = new Layer(
                    ckpt.load(p + "input_layernorm.weight", dtype, device),
                    qkv, qkvBias,
                    config.qkNorm() ? ckpt.load(a + "q_norm.weight", dtype, device) : null,
                    config.qkNorm() ? ckpt.load(a + "k_norm.weight", dtype, device) : null,
                    ckpt.load(a + "o_proj.weight", dtype, device),
                    ckpt.load(p + "post_attention_layernorm.weight", dtype, device),
                    cat(ckpt.load(p + "mlp.gate_proj.weight", dtype, device), ckpt.load(p + "mlp.up_proj.weight", dtype, device)),
                    ckpt.load(p + "mlp.down_proj.weight", dtype, device));
        }
        return new CausalLm(config, device, dtype, embed, lmHead, ckpt.load("model.norm.weight", dtype, device), layers);
    }

    public ModelConfig config() {
        return config;
    }

    public Device device() {
        return device;
    }

    public ScalarType dtype() {
        return dtype;
    }

    /** Runs every layer over the batch, writing its K/V into the cache; returns (T, hidden), normed. */
    public Tensor forward(ForwardBatch batch, KvCache cache) {
        Tensor h = torch.embedding(embed, batch.inputIds());                  // (T, hidden)
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            // 1. attention block, pre-norm and residual
            h = h.add(attention(layer, rmsNorm(h, layer.inputNorm()), batch, cache.keys(l), cache.values(l)));
            // 2. MLP block: down(silu(gate) * up)
            Tensor gateUp = torch.linear(rmsNorm(h, layer.postNorm()), layer.gateUp()); // (T, 2 * inter)
            Tensor act = torch.silu(gateUp.narrow(1, 0, config.intermediateSize()))
                    .mul(gateUp.narrow(1, config.intermediateSize(), config.intermediateSize()));
            h = h.add(torch.linear(act, layer.down()));
        }
        return rmsNorm(h, finalNorm);
    }

    /** Logits in float32 for the given rows of the final hidden states: (rows, vocab). */
    public Tensor logits(Tensor hidden) {
        return torch.linear(hidden, lmHead).to(ScalarType.Float);
    }

    private Tensor attention(Layer layer, Tensor x, ForwardBatch batch, Tensor kCache, Tensor vCache) {
        int nH = config.numHeads(), nKv = config.numKvHeads(), d = config.headDim(), g = config.queryGroupSize();
        long t = x.size(0);
        Tensor qkv = layer.qkvBias() == null ? torch.linear(x, layer.qkv())
                : torch.linear(x, layer.qkv(), new TensorOptional(layer.qkvBias()));          // (T, (nH + 2nKv) * d)
        Tensor q = qkv.narrow(1, 0, (long) nH * d).reshape(t, nH, d);                          // (T, nH, d)
        Tensor k = qkv.narrow(1, (long) nH * d, (long) nKv * d).reshape(t, nKv, d);            // (T, nKv, d)
        Tensor v = qkv.narrow(1, (long) (nH + nKv) * d, (long) nKv * d).reshape(t, nKv, d);   // (T, nKv, d)
        if (layer.qNorm() != null) {
            q = rmsNorm(q, layer.qNorm());
            k = rmsNorm(k, layer.kNorm());
        }
        q = rope.apply(q, batch.positions());
        k = rope.apply(k, batch.positions());
        kCache.index_copy_(0, batch.slotMapping(), k);
        vCache.index_copy_(0, batch.slotMapping(), v);

        Tensor out = Torch.empty(Torch.options(dtype, device), t, nH, d);                      // (T, nH, d)
        ForwardBatch.DecodeGroup dec = batch.decode();
        if (dec != null) {
            // One query per sequence; the query heads that share a KV head attend as a group.
            Tensor qd = q.index_select(0, dec.tokenIndex()).view(dec.batch(), nKv, g, d);       // (B, nKv, g, d)
            Tensor kd = kCache.index_select(0, dec.slots()).view(dec.batch(), dec.maxContext(), nKv, d).permute(0, 2, 1, 3);
            Tensor vd = vCache.index_select(0, dec.slots()).view(dec.batch(), dec.maxContext(), nKv, d).permute(0, 2, 1, 3);
            Tensor o = sdpa(qd, kd, vd, dec.mask());                                           // (B, nKv, g, d)
            out.index_copy_(0, dec.tokenIndex(), o.reshape(dec.batch(), nH, d));
        }
        for (ForwardBatch.PrefillChunk c : batch.prefills()) {
            // (qLen, nH, d) -> (nKv, g * qLen, d): rows are (group member, query position)
            Tensor qc = q.narrow(0, c.queryStart(), c.queryLen()).view(c.queryLen(), nKv, g, d)
                    .permute(1, 2, 0, 3).reshape(nKv, (long) g * c.queryLen(), d);
            Tensor kc = kCache.index_select(0, c.slots()).permute(1, 0, 2);                    // (nKv, ctx, d)
            Tensor vc = vCache.index_select(0, c.slots()).permute(1, 0, 2);
            Tensor mask = c.mask().unsqueeze(0).expand(g, c.queryLen(), c.contextLen())
                    .reshape((long) g * c.queryLen(), c.contextLen());                        // (g * qLen, ctx)
            Tensor o = sdpa(qc, kc, vc, mask)                                                   // (nKv, g * qLen, d)
                    .view(nKv, g, c.queryLen(), d).permute(2, 0, 1, 3).reshape(c.queryLen(), nH, d);
            out.narrow(0, c.queryStart(), c.queryLen()).copy_(o);
        }
        return torch.linear(out.view(t, (long) nH * d), layer.o());
    }

    private static Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor mask) {
        return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(mask), 0.0, false, new DoubleOptional(), false);
    }

    /** RMSNorm over the last dimension, computed in float32 and cast back, as transformers does. */
    private Tensor rmsNorm(Tensor x, Tensor weight) {
        Tensor xf = x.to(ScalarType.Float);
        Tensor var = xf.mul(xf).mean(new long[] {-1}, true, new ScalarTypeOptional());
        return weight.mul(xf.mul(var.add(new Scalar(config.rmsNormEps())).rsqrt()).to(dtype));
    }

    private static Tensor cat(Tensor... parts) {
        return torch.cat(new TensorVector(parts), 0);
    }

    /** Bytes held by the weights (a tied head counted once). */
    public long weightBytes() {
        long total = embed.nbytes() + finalNorm.nbytes() + (lmHead == embed ? 0 : lmHead.nbytes());
        for (Layer l : layers) {
            for (Tensor t : new Tensor[] {l.inputNorm(), l.qkv(), l.qkvBias(), l.qNorm(), l.kNorm(), l.o(), l.postNorm(), l.gateUp(), l.down()})
                if (t != null) total += t.nbytes();
        }
        return total;
    }
}
