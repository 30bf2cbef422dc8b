package dev.rollout.model;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The Llama-family decoder (Llama 2/3, Qwen2/2.5, Qwen3) over libtorch, working on the flattened
 * tokens of a whole continuous batch. q/k/v and gate/up are fused into one matrix each, so a
 * layer runs two projections in and two out; {@link #parameters()} still addresses every weight
 * by its Hugging Face name.
 */
public final class CausalLm {
    private final ModelConfig config;
    private final Device device;
    private final ScalarType dtype;
    private final RotaryEmbedding rope;
    private final Kernels kernels;
    private final LayerOps ops;       // the layer's small ops: libtorch's, or our fused kernels (kernels.fusedOps())
    private PhaseTimer phases = PhaseTimer.OFF;
    private Weights weights;   // null while released

    /**
     * @param qkv     ((heads + 2 * kvHeads) * headDim, hidden)
     * @param qkvBias ((heads + 2 * kvHeads) * headDim) or null
     * @param qNorm   (headDim) or null; Qwen3 normalises each head's q and k before RoPE
     * @param gateUp  (2 * intermediate, hidden)
     */
    record Layer(Tensor inputNorm, Tensor qkv, Tensor qkvBias, Tensor qNorm, Tensor kNorm, Tensor o,
                 Tensor postNorm, Tensor gateUp, Tensor down) {}

    /** @param embed (vocab, hidden); lmHead the same tensor when tied */
    private record Weights(Tensor embed, Tensor lmHead, Tensor finalNorm, Layer[] layers, ParameterTable table,
                           List<Tensor> owned) {}

    private CausalLm(ModelConfig config, ScalarType dtype, Device device, Kernels kernels) {
        kernels.requireUsable(config, dtype, device);  // before anything is allocated
        this.config = config;
        this.device = device;
        this.dtype = dtype;
        this.kernels = kernels;
        this.rope = new RotaryEmbedding(config, dtype, device);
        this.ops = kernels.fusedOps() ? new FusedLayerOps(config, rope) : new TorchLayerOps(config, dtype, rope);
        this.weights = allocate();
        // Prefill attention goes to libtorch's SDPA with a mask whose shape follows the step's
        // prompts. Its cuDNN backend compiles a kernel for every new shape and keeps each one
        // loaded: under a GPU soak the driver's host memory grew by 2.9 GB in 400 pushes and 92k
        // requests (a jemalloc heap profile, docs/benchmarks-log.md, "The GPU soak complete"). The memory-efficient backend,
        // which takes the same masks, is compiled ahead of time.
        if (device.is_cuda()) torch.globalContext().setSDPUseCuDNN(false);
    }

    /** Reads {@code config.json} and every weight of the checkpoint in {@code dir}; libtorch's ops only. */
    public static CausalLm load(Path dir, ScalarType dtype, Device device) throws IOException {
        return load(dir, dtype, device, Kernels.LIBTORCH);
    }

    /**
     * Reads {@code config.json} and every weight of the checkpoint in {@code dir}, to run with
     * {@code kernels}; throws an IllegalArgumentException if they cannot serve the model here.
     */
    public static CausalLm load(Path dir, ScalarType dtype, Device device, Kernels kernels) throws IOException {
        CausalLm lm = new CausalLm(ModelConfig.read(dir), dtype, device, kernels);
        lm.loadCheckpoint(Checkpoint.open(dir));
        return lm;
    }

    /**
     * A model of the architecture in {@code dir/config.json} with random weights made on the
     * device itself, with no checkpoint (SGLang's and vLLM's {@code load_format=dummy}): for
     * benchmarks of large shapes whose weights need not exist on disk. Norm weights are 1, every
     * other parameter is normal(0, {@code std}); the same seed gives the same weights on the same device.
     */
    public static CausalLm random(Path dir, ScalarType dtype, Device device, long seed, double std) throws IOException {
        return random(dir, dtype, device, seed, std, Kernels.LIBTORCH);
    }

    /** {@link #random(Path, ScalarType, Device, long, double)}, to run with {@code kernels}. */
    public static CausalLm random(Path dir, ScalarType dtype, Device device, long seed, double std, Kernels kernels)
            throws IOException {
        CausalLm lm = new CausalLm(ModelConfig.read(dir), dtype, device, kernels);
        torch.manual_seed(seed);
        ParameterTable table = lm.parameters();
        try (PointerScope scope = new PointerScope()) {
            for (String name : new java.util.TreeSet<>(table.names())) {  // a fixed order: the same seed, the same weights
                Tensor p = table.get(name);
                if (name.endsWith("norm.weight")) p.fill_(new Scalar(1.0));
                else p.normal_(0.0, std, new GeneratorOptional());
            }
        }
        return lm;
    }

    /**
     * Copies every parameter from {@code ckpt} (same architecture and shapes) into the model.
     * Everything is checked before anything is written, so a bad checkpoint changes nothing.
     */
    public void loadCheckpoint(Checkpoint ckpt) throws IOException {
        ParameterTable table = parameters();
        List<String> problems = new ArrayList<>();
        for (String name : table.names()) {
            if (!ckpt.contains(name)) problems.add("missing " + name);
            else {
                String m = table.mismatch(name, ckpt.shape(name));
                if (m != null) problems.add(m);
            }
        }
        for (String name : ckpt.names())
            if (!table.contains(name) && !ParameterTable.ignorable(name) && !(name.equals("lm_head.weight") && config.tieWordEmbeddings()))
                problems.add("unexpected " + name);
        if (!problems.isEmpty())
            throw new IOException(ckpt.dir() + " does not fit this model: " + String.join("; ", problems.subList(0, Math.min(5, problems.size())))
                    + (problems.size() > 5 ? " (and " + (problems.size() - 5) + " more)" : ""));
        long total = 0;
        for (String name : table.names()) total += ckpt.byteSize(name);
        LoadProgress progress = new LoadProgress(ckpt.dir().toString(), table.names().size(), total);
        try (PointerScope scope = new PointerScope()) {
            for (String name : table.names()) {
                ckpt.copyInto(name, table.get(name));
                progress.advance(ckpt.byteSize(name));
            }
        }
        progress.done();
    }

    /** Allocates the fused tensors (zeros) and the name table over them. */
    private Weights allocate() {
        int h = config.hiddenSize(), d = config.headDim(), nH = config.numHeads(), nKv = config.numKvHeads();
        int inter = config.intermediateSize(), v = config.vocabSize();
        List<Tensor> owned = new ArrayList<>();
        ParameterTable table = new ParameterTable();
        Tensor embed = zeros(owned, v, h);
        table.put("model.embed_tokens.weight", embed);
        Tensor lmHead = embed;
        if (!config.tieWordEmbeddings()) {
            lmHead = zeros(owned, v, h);
            table.put("lm_head.weight", lmHead);
        }
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".", a = p + "self_attn.";
            Tensor qkv = zeros(owned, (long) (nH + 2 * nKv) * d, h);
            table.put(a + "q_proj.weight", qkv.narrow(0, 0, (long) nH * d));
            table.put(a + "k_proj.weight", qkv.narrow(0, (long) nH * d, (long) nKv * d));
            table.put(a + "v_proj.weight", qkv.narrow(0, (long) (nH + nKv) * d, (long) nKv * d));
            Tensor qkvBias = null;
            if (config.qkvBias()) {
                qkvBias = zeros(owned, (long) (nH + 2 * nKv) * d);
                table.put(a + "q_proj.bias", qkvBias.narrow(0, 0, (long) nH * d));
                table.put(a + "k_proj.bias", qkvBias.narrow(0, (long) nH * d, (long) nKv * d));
                table.put(a + "v_proj.bias", qkvBias.narrow(0, (long) (nH + nKv) * d, (long) nKv * d));
            }
            Tensor qNorm = null, kNorm = null;
            if (config.qkNorm()) {
                table.put(a + "q_norm.weight", qNorm = zeros(owned, d));
                table.put(a + "k_norm.weight", kNorm = zeros(owned, d));
            }
            Tensor o = zeros(owned, h, (long) nH * d);
            table.put(a + "o_proj.weight", o);
            Tensor inNorm = zeros(owned, h), postNorm = zeros(owned, h);
            table.put(p + "input_layernorm.weight", inNorm);
            table.put(p + "post_attention_layernorm.weight", postNorm);
            Tensor gateUp = zeros(owned, 2L * inter, h);
            table.put(p + "mlp.gate_proj.weight", gateUp.narrow(0, 0, inter));
            table.put(p + "mlp.up_proj.weight", gateUp.narrow(0, inter, inter));
            Tensor down = zeros(owned, h, inter);
            table.put(p + "mlp.down_proj.weight", down);
            layers[i] = new Layer(inNorm, qkv, qkvBias, qNorm, kNorm, o, postNorm, gateUp, down);
        }
        Tensor finalNorm = zeros(owned, h);
        table.put("model.norm.weight", finalNorm);
        return new Weights(embed, lmHead, finalNorm, layers, table, owned);
    }

    private Tensor zeros(List<Tensor> owned, long... shape) {
        Tensor t = Torch.zeros(Torch.options(dtype, device), shape);
        owned.add(t);
        return t;
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

    /** The kernels this model runs with, chosen when it was built; the engine over it takes its sampling and graph choices from here. */
    public Kernels kernels() {
        return kernels;
    }

    /** Every parameter by its Hugging Face name; throws while the weights are released. */
    public ParameterTable parameters() {
        return live().table();
    }

    public boolean weightsReleased() {
        return weights == null;
    }

    /** Frees the weight memory now; returns the bytes given back. */
    public long releaseWeights() {
        if (weights == null) return 0;
        long bytes = weightBytes();
        weights.table().close();
        for (Tensor t : weights.owned()) t.close();
        weights = null;
        return bytes;
    }

    /** Allocates the weights again (zeros); they must be loaded or pushed before serving. */
    public void reallocateWeights() {
        if (weights == null) weights = allocate();
    }

    /**
     * Runs every layer over the batch, writing its K/V into the cache; returns (T, hidden), normed.
     * One skeleton for every choice of kernels: the small ops between the GEMMs are {@link #ops}'s
     * (libtorch's, or our fused kernels), decode attention is {@link Kernels#decodeAttention()}'s.
     * Each layer hands the next its residual stream and that stream already normed by the next
     * layer's input norm (the last layer: by the final norm), so that every residual add is one
     * call with the norm after it, fused or not.
     */
    public Tensor forward(ForwardBatch batch, KvCache cache) {
        Weights w = live();
        Layer[] layers = w.layers();
        Tensor h = torch.embedding(w.embed(), batch.inputIds());                            // (T, hidden)
        if (batch.embeds() != null)                                                          // given rows replace the lookup
            h.index_copy_(0, batch.embeds().rows(), batch.embeds().values().to(h.device(), h.scalar_type()));
        LayerCarry carry = new LayerCarry(h, ops.rmsNorm(h, layers[0].inputNorm()));       // (residual, normed)
        phases.mark("inputs_embed_norm");
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            Tensor nextNorm = l + 1 < layers.length ? layers[l + 1].inputNorm() : w.finalNorm();
            Tensor kCache = cache.keys(l), vCache = cache.values(l);
            carry.next(in -> {
                // 1. attention block: q/k/v, RoPE and the K/V write, attention, the residual add
                Tensor qkv = layer.qkvBias() == null ? torch.linear(in[1], layer.qkv())
                        : torch.linear(in[1], layer.qkv(), new TensorOptional(layer.qkvBias()));  // (T, (nH + 2nKv) * d)
                phases.mark("qkv_gemm");
                Tensor q = ops.qkNormRopeAndCache(qkv, layer.qNorm(), layer.kNorm(), batch, kCache, vCache); // (T, nH, d)
                phases.mark("rope_kv_write");
                Tensor a = attend(q, batch, kCache, vCache, cache.blockSize());                 // (T, nH * d)
                phases.mark("attention");
                Tensor o = torch.linear(a, layer.o());
                phases.mark("o_gemm");
                Tensor[] hx = ops.addRmsNorm(in[0], o, layer.postNorm());                       // (h, post-attention norm)
                phases.mark("add_rms_norm");
                // 2. MLP block: down(silu(gate) * up), the residual add and the next layer's norm
                Tensor gateUp = torch.linear(hx[1], layer.gateUp());                            // (T, 2 * inter)
                phases.mark("gate_up_gemm");
                Tensor act = ops.siluAndMul(gateUp);                                            // (T, inter)
                phases.mark("silu_mul");
                Tensor down = torch.linear(act, layer.down());
                phases.mark("down_gemm");
                Tensor[] next = ops.addRmsNorm(hx[0], down, nextNorm);
                phases.mark("add_rms_norm");
                return next;
            });
        }
        return carry.finish(carry.get(1));
    }

    /**
     * The tensors one layer hands the next (the residual stream, and its norm).
     * Each layer runs in a PointerScope of its own, so that its intermediates (the MLP's
     * (T, 2 * inter) activations, attention's gathered K/V) go back to libtorch's allocator when
     * the layer ends, as Python's reference counting would free them, and not when the step does:
     * a step that held every layer's activations at once needed some 30 GB for a 7B prefill of 8,192 tokens.
     */
    private static final class LayerCarry {
        private final PointerScope outer = PointerScope.getInnerScope();
        private Tensor[] carried;
        private boolean owned;  // false while `carried` are the caller's (the first layer's input)

        LayerCarry(Tensor... first) {
            carried = first;
        }

        Tensor get(int i) {
            return carried[i];
        }

        /** Runs a layer on what the last one carried; keeps only what it returns. */
        void next(UnaryOperator<Tensor[]> layer) {
            Tensor[] out;
            try (PointerScope scope = new PointerScope()) {
                out = layer.apply(carried);
                for (Tensor t : out) t.retainReference();  // outlives the layer's scope, until the next layer is done
            } catch (RuntimeException e) {
                release(null);
                throw e;
            }
            release(null);
            carried = out;
            owned = true;
        }

        /** Lets the carried tensors go, except {@code result}, which goes to the caller's scope; returns it. */
        Tensor finish(Tensor result) {
            boolean carriedResult = false;
            for (Tensor c : carried) carriedResult |= c == result;
            if (carriedResult && outer != null) outer.attach(result);  // the caller's scope takes a reference of its own
            release(outer == null ? result : null);
            return result;
        }

        private void release(Tensor keep) {
            if (owned) for (Tensor t : carried) if (t != keep) t.releaseReference();
            owned = false;
        }
    }

    /**
     * Logits in float32 for the given rows of the final hidden states: (rows, vocab). By default
     * the LM head's GEMM returns the model's dtype and the logits are rounded to it before the
     * float32 softmax, as transformers, SGLang and RL trainers compute them (a trainer's logprobs
     * come from bf16 logits too). With {@link Kernels#fp32LmHead()} the GEMM, which accumulates in
     * float32 anyway, hands back float32 (SGLang's --enable-fp32-lm-head): a logit of 4 then keeps
     * the up to 0.016 that bf16 rounding moves it by.
     */
    public Tensor logits(Tensor hidden) {
        Tensor head = live().lmHead();                                       // (vocab, hidden)
        if (!kernels.fp32LmHead()) return torch.linear(hidden, head).to(ScalarType.Float);
        return torch.mm(hidden, head.t(), ScalarType.Float);
    }

    private Weights live() {
        Weights w = weights;
        if (w == null) throw new IllegalStateException("the model's weights are released");
        return w;
    }

    /** Every token's attention over its sequence's cached context: q (T, nH, d) -> (T, nH * d). */
    private Tensor attend(Tensor q, ForwardBatch batch, Tensor kCache, Tensor vCache, int blockSize) {
        int nH = config.numHeads(), nKv = config.numKvHeads(), d = config.headDim(), g = config.queryGroupSize();
        long t = q.size(0);
        ForwardBatch.DecodeGroup dec = batch.decode();
        // a decode-only step (every step replayed as a CUDA graph) has its tokens in order, one per
        // sequence: no select and scatter around the attention, two kernels a layer fewer
        boolean decodeOnly = dec != null && batch.prefills().isEmpty() && dec.batch() == t;
        Tensor out = decodeOnly ? null : Torch.empty(Torch.options(dtype, device), t, nH, d); // (T, nH, d)
        if (dec != null) {
            Tensor qd = decodeOnly ? q : q.index_select(0, dec.tokenIndex());                  // (B, nH, d)
            Tensor o = kernels.decodeAttention().attend(qd, kCache, vCache, dec, blockSize, config);   // (B, nH, d)
            if (decodeOnly) return o.reshape(t, (long) nH * d);
            out.index_copy_(0, dec.tokenIndex(), o);
        }
        for (ForwardBatch.PrefillGroup pg : batch.prefills()) {
            int p = pg.chunks(), mq = pg.maxQuery();
            long mc = pg.maxContext();
            // (P * maxQ, nH, d) -> (P, nKv, g * maxQ, d): rows are (group member, query position)
            Tensor qb = q.index_select(0, pg.rows()).view(p, mq, nKv, g, d).permute(0, 2, 3, 1, 4)
                    .reshape(p, nKv, (long) g * mq, d);
            Tensor kb = kCache.index_select(0, pg.slots()).view(p, mc, nKv, d).permute(0, 2, 1, 3); // (P, nKv, maxCtx, d)
            Tensor vb = vCache.index_select(0, pg.slots()).view(p, mc, nKv, d).permute(0, 2, 1, 3);
            // query at position i sees keys 0 .. i; padded keys sit past every real query
            Tensor keyPos = torch.arange(new Scalar(mc), Torch.options(ScalarType.Long, device)).view(1, 1, mc);
            Tensor mask = torch.le(keyPos, pg.queryPos().unsqueeze(2))                           // (P, maxQ, maxCtx)
                    .unsqueeze(1).expand(p, g, mq, mc).reshape(p, 1, (long) g * mq, mc);        // (P, 1, g * maxQ, maxCtx)
            Tensor o = sdpa(qb, kb, vb, mask)                                                   // (P, nKv, g * maxQ, d)
                    .view(p, nKv, g, mq, d).permute(0, 3, 1, 2, 4).reshape((long) p * mq, (long) nH * d);
            out.view(t, (long) nH * d).index_copy_(0, pg.targets(), o.index_select(0, pg.valid()));
        }
        return out.view(t, (long) nH * d);
    }

    /** Times the phases of eager steps (benchmarks); {@link PhaseTimer#OFF} by default. An instrument: it changes no result. */
    public void setPhaseTimer(PhaseTimer timer) {
        phases = timer;
    }

    public PhaseTimer phaseTimer() {
        return phases;
    }

    private static Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor mask) {
        return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(mask), 0.0, false, new DoubleOptional(), false);
    }

    /** Parameters of the model, from the parameter table's shapes (a tied head counted once). */
    public long parameterCount() {
        ParameterTable table = parameters();
        long total = 0;
        for (String name : table.names()) {
            long n = 1;
            for (long d : table.shape(name)) n *= d;
            total += n;
        }
        return total;
    }

    /** Bytes held by the weights (a tied head counted once); 0 while released. */
    public long weightBytes() {
        Weights w = weights;
        if (w == null) return 0;
        long total = 0;
        for (Tensor t : w.owned()) total += t.nbytes();
        return total;
    }
}
