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
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The Llama-family decoder (Llama 2/3, Qwen2/2.5, Qwen3) over libtorch, working on the flattened
 * tokens of a whole continuous batch. q/k/v and gate/up are fused into one matrix each, so a
 * layer runs two projections in and two out; {@link #parameters()} still addresses every weight
 * by its Hugging Face name.
 *
 * <p>Under tensor parallelism ({@link TpGroup} of more than one rank) each rank holds its part of
 * the model in Megatron's layout ({@link TpLayout}, docs/adr/0020-tensor-parallel-sharding-layout.md):
 * q/k/v by heads and gate/up by the intermediate dimension (column-parallel), o and down on the
 * matching input columns (row-parallel, each followed by an all-reduce), and the embedding and LM
 * head by vocabulary rows. Every rank runs the same forward on the same batch and ends with the
 * same full logits. At one rank none of this code runs: the tensors, kernels and results are
 * those of the unsharded model.
 */
public final class CausalLm {
    private final ModelConfig config;
    private final TpGroup tp;
    private final TpLayout layout;
    private final ModelConfig shard;  // the rank's heads, KV heads and intermediate size; `config` itself at one rank
    private final Device device;
    private final ScalarType dtype;
    private final RotaryEmbedding rope;
    private final Kernels kernels;
    private final boolean groupedExperts;   // kernels.groupedExperts(), where this rank's expert slices allow it
    /**
     * Up to this many token copies a step, the grouped experts run as our matrix-vector kernels
     * instead of libtorch's grouped GEMMs: decode up to batch 16 of top-8 routing. KernelBench's
     * moe30 rows (docs/benchmarks.md, an H100): the kernels take 58%, 76%, 81% and 89% of the
     * grouped GEMMs' time at 1, 4, 8 and 16 tokens, the same at 32, and 140% at 64.
     */
    static final int GEMV_COPIES = 128;
    private final LayerOps ops;       // the layer's small ops: libtorch's, or our fused kernels (kernels.fusedOps())
    private PhaseTimer phases = PhaseTimer.OFF;
    private Weights weights;   // null while released

    /**
     * @param qkv     ((heads + 2 * kvHeads) * headDim, hidden)
     * @param qkvBias ((heads + 2 * kvHeads) * headDim) or null
     * @param qNorm   (headDim) or null; Qwen3 normalises each head's q and k before RoPE
     * @param gateUp  (2 * intermediate, hidden); null in a mixture-of-experts layer
     * @param experts the mixture of experts in place of gateUp and down, or null in a dense layer
     */
    record Layer(Tensor inputNorm, Tensor qkv, Tensor qkvBias, Tensor qNorm, Tensor kNorm, Tensor o,
                 Tensor postNorm, Tensor gateUp, Tensor down, Experts experts) {}

    /**
     * A mixture-of-experts MLP, each expert's weights stacked so that the experts are rows of one
     * tensor (the checkpoint's per-expert names are views of them).
     *
     * @param router       (experts, hidden): whole on every rank
     * @param gateUp       (experts, 2 * intermediate, hidden): each expert's gate then up
     * @param down         (experts, hidden, intermediate)
     * @param sharedGateUp Qwen2-MoE's shared expert, (2 * sharedIntermediate, hidden), or null
     * @param sharedDown   (hidden, sharedIntermediate), or null
     * @param sharedGate   (1, hidden): the shared expert's output is scaled by sigmoid of it; or null
     */
    record Experts(Tensor router, Tensor gateUp, Tensor down, Tensor sharedGateUp, Tensor sharedDown, Tensor sharedGate) {}

    /** @param embed (vocab, hidden); lmHead the same tensor when tied */
    private record Weights(Tensor embed, Tensor lmHead, Tensor finalNorm, Layer[] layers, ParameterTable table,
                           List<Tensor> owned) {}

    private CausalLm(ModelConfig config, ScalarType dtype, Device device, Kernels kernels, TpGroup tp) {
        if (tp.size() > 1 && kernels.cudaGraphs())
            throw new IllegalArgumentException("CUDA graphs are not supported with tp_size " + tp.size()
                    + " yet: the decode step's all-reduces would have to be captured without a host wait (see C10dTpGroup)");
        kernels.requireUsable(config, dtype, device);  // before anything is allocated
        this.layout = new TpLayout(config, tp.rank(), tp.size());
        this.config = config;
        this.tp = tp;
        this.shard = layout.shardConfig();
        // this rank's slice of each expert feeds the grouped GEMMs: its rows must be whole 16-byte multiples too
        this.groupedExperts = kernels.groupedExperts() && shard.moe() != null && shard.moe().intermediate() % 8 == 0;
        if (kernels.groupedExperts() && shard.moe() != null && !groupedExperts)
            java.util.logging.Logger.getLogger(CausalLm.class.getName()).warning("the grouped expert GEMMs are off on tensor-parallel rank "
                    + tp.rank() + ": its slice of each expert (" + shard.moe().intermediate() + ") is not a multiple of 8");
        if (kernels.cudaGraphs() && config.moe() != null && !groupedExperts)
            throw new IllegalArgumentException("CUDA graphs for a mixture of experts need the grouped expert GEMMs: "
                    + "a GEMM pair per expert reads each expert's rows on the host, which a captured graph cannot");
        this.device = device;
        this.dtype = dtype;
        this.kernels = kernels;
        this.rope = new RotaryEmbedding(config, dtype, device);
        this.ops = kernels.fusedOps() ? new FusedLayerOps(shard, rope) : new TorchLayerOps(shard, dtype, rope);
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
        return load(dir, dtype, device, kernels, TpGroup.SINGLE);
    }

    /**
     * This rank's part of the checkpoint in {@code dir}, for a forward shared with the other ranks
     * of {@code tp}; each rank reads the full tensors and keeps its slice. Throws an
     * IllegalArgumentException if the model cannot be split over {@code tp}'s ranks ({@link TpLayout}).
     */
    public static CausalLm load(Path dir, ScalarType dtype, Device device, Kernels kernels, TpGroup tp) throws IOException {
        CausalLm lm = new CausalLm(ModelConfig.read(dir), dtype, device, kernels, tp);
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
        return random(dir, dtype, device, seed, std, kernels, TpGroup.SINGLE);
    }

    /**
     * This rank's part of the random model: each rank draws every full parameter from the same
     * seed and keeps its slice, so that the shards of every rank make the model that one rank
     * would have drawn.
     */
    public static CausalLm random(Path dir, ScalarType dtype, Device device, long seed, double std, Kernels kernels, TpGroup tp)
            throws IOException {
        CausalLm lm = new CausalLm(ModelConfig.read(dir), dtype, device, kernels, tp);
        torch.manual_seed(seed);
        ParameterTable table = lm.parameters();
        for (String name : new java.util.TreeSet<>(table.names()))   // a fixed order: the same seed, the same weights
            try (PointerScope scope = new PointerScope()) {             // one full parameter at a time
                Tensor full = tp.size() == 1 ? table.get(name) : Torch.empty(Torch.options(dtype, device), table.fullShape(name));
                if (name.endsWith("norm.weight")) full.fill_(new Scalar(1.0));
                else full.normal_(0.0, std, new GeneratorOptional());
                if (tp.size() > 1) table.copyFull(name, full);
            }
        return lm;
    }

    /**
     * Copies every parameter from {@code ckpt} (same architecture and shapes) into the model; each
     * rank of a tensor-parallel group copies its part of the full tensors.
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
                ckpt.copyInto(name, table.get(name), table.shard(name));
                progress.advance(ckpt.byteSize(name));
            }
        }
        progress.done();
    }

    /**
     * Allocates the fused tensors (zeros) and the name table over them: this rank's part of each,
     * and where that part lies in the full parameter.
     */
    private Weights allocate() {
        TpLayout t = layout;
        int h = config.hiddenSize(), d = config.headDim(), nH = t.heads(), nKv = t.kvHeads();
        int inter = t.intermediate(), v = t.vocabPerRank();
        long qRows = (long) nH * d, kvRows = (long) nKv * d;           // this rank's rows of q, and of k and of v
        long qFirst = (long) t.firstHead() * d, kvFirst = (long) t.firstKvHead() * d;
        long qFull = (long) config.numHeads() * d, kvFull = (long) config.numKvHeads() * d;
        List<Tensor> owned = new ArrayList<>();
        ParameterTable table = new ParameterTable();
        // the vocabulary rows past the real vocabulary (padding, on the last ranks) stay zero and out of the table
        Tensor embed = zeros(owned, v, h);
        put(table, "model.embed_tokens.weight", vocabRows(embed), 0, t.firstToken(), config.vocabSize());
        Tensor lmHead = embed;
        if (!config.tieWordEmbeddings()) {
            lmHead = zeros(owned, v, h);
            put(table, "lm_head.weight", vocabRows(lmHead), 0, t.firstToken(), config.vocabSize());
        }
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".", a = p + "self_attn.";
            Tensor qkv = zeros(owned, qRows + 2 * kvRows, h);
            put(table, a + "q_proj.weight", qkv.narrow(0, 0, qRows), 0, qFirst, qFull);
            put(table, a + "k_proj.weight", qkv.narrow(0, qRows, kvRows), 0, kvFirst, kvFull);
            put(table, a + "v_proj.weight", qkv.narrow(0, qRows + kvRows, kvRows), 0, kvFirst, kvFull);
            Tensor qkvBias = null;
            if (config.qkvBias()) {
                qkvBias = zeros(owned, qRows + 2 * kvRows);
                put(table, a + "q_proj.bias", qkvBias.narrow(0, 0, qRows), 0, qFirst, qFull);
                put(table, a + "k_proj.bias", qkvBias.narrow(0, qRows, kvRows), 0, kvFirst, kvFull);
                put(table, a + "v_proj.bias", qkvBias.narrow(0, qRows + kvRows, kvRows), 0, kvFirst, kvFull);
            }
            Tensor qNorm = null, kNorm = null;
            if (config.qkNorm()) {
                put(table, a + "q_norm.weight", qNorm = zeros(owned, d), -1, 0, 0);
                put(table, a + "k_norm.weight", kNorm = zeros(owned, d), -1, 0, 0);
            }
            Tensor o = zeros(owned, h, qRows);                            // row-parallel: the rank's heads' input columns
            put(table, a + "o_proj.weight", o, 1, qFirst, qFull);
            Tensor inNorm = zeros(owned, h), postNorm = zeros(owned, h);
            put(table, p + "input_layernorm.weight", inNorm, -1, 0, 0);
            put(table, p + "post_attention_layernorm.weight", postNorm, -1, 0, 0);
            if (config.sparse(i)) {
                layers[i] = new Layer(inNorm, qkv, qkvBias, qNorm, kNorm, o, postNorm, null, null, allocateExperts(table, owned, p));
                continue;
            }
            Tensor[] mlp = allocateMlp(table, owned, p + "mlp.", "gate_proj", "up_proj", "down_proj", config.intermediateSize(), inter);
            layers[i] = new Layer(inNorm, qkv, qkvBias, qNorm, kNorm, o, postNorm, mlp[0], mlp[1], null);
        }
        Tensor finalNorm = zeros(owned, h);
        put(table, "model.norm.weight", finalNorm, -1, 0, 0);
        return new Weights(embed, lmHead, finalNorm, layers, table, owned);
    }

    /**
     * A gated MLP's fused gate/up (2 * inter, hidden) and its down (hidden, inter), this rank's
     * {@code inter} of the {@code full} intermediate rows, named {@code prefix + gate/up/down + ".weight"}:
     * a dense layer's, a shared expert's.
     */
    private Tensor[] allocateMlp(ParameterTable table, List<Tensor> owned, String prefix, String gate, String up, String down,
                                 int full, int inter) {
        int h = config.hiddenSize();
        long first = (long) layout.rank() * inter;
        Tensor gateUp = zeros(owned, 2L * inter, h);                     // column-parallel
        put(table, prefix + gate + ".weight", gateUp.narrow(0, 0, inter), 0, first, full);
        put(table, prefix + up + ".weight", gateUp.narrow(0, inter, inter), 0, first, full);
        Tensor d = zeros(owned, h, inter);                                // row-parallel
        put(table, prefix + down + ".weight", d, 1, first, full);
        return new Tensor[] {gateUp, d};
    }

    /**
     * A mixture-of-experts layer's tensors, each expert named as its checkpoint names it: Qwen's
     * {@code mlp.experts.E.gate_proj/up_proj/down_proj} and router {@code mlp.gate}, or Mixtral's
     * {@code block_sparse_moe.experts.E.w1/w3/w2} and {@code block_sparse_moe.gate}. Each rank holds
     * its slice of every expert's intermediate rows, and the router whole.
     */
    private Experts allocateExperts(ParameterTable table, List<Tensor> owned, String layer) {
        ModelConfig.Moe full = config.moe(), mine = shard.moe();
        int h = config.hiddenSize(), n = full.experts(), inter = mine.intermediate();
        String block = layer + (full.mixtralNames() ? "block_sparse_moe." : "mlp.");
        String gate = full.mixtralNames() ? "w1" : "gate_proj", up = full.mixtralNames() ? "w3" : "up_proj",
                down = full.mixtralNames() ? "w2" : "down_proj";
        Tensor router = zeros(owned, n, h);
        put(table, block + "gate.weight", router, -1, 0, 0);
        Tensor gateUp = zeros(owned, n, 2L * inter, h), downs = zeros(owned, n, h, inter);
        long first = (long) layout.rank() * inter;
        for (int e = 0; e < n; e++) {
            String expert = block + "experts." + e + ".";
            Tensor gu = gateUp.select(0, e);                                                   // (2 * inter, hidden)
            put(table, expert + gate + ".weight", gu.narrow(0, 0, inter), 0, first, full.intermediate());
            put(table, expert + up + ".weight", gu.narrow(0, inter, inter), 0, first, full.intermediate());
            put(table, expert + down + ".weight", downs.select(0, e), 1, first, full.intermediate());
        }
        if (full.sharedIntermediate() == 0) return new Experts(router, gateUp, downs, null, null, null);
        Tensor[] shared = allocateMlp(table, owned, block + "shared_expert.", "gate_proj", "up_proj", "down_proj",
                full.sharedIntermediate(), mine.sharedIntermediate());
        Tensor sharedGate = zeros(owned, 1, h);
        put(table, block + "shared_expert_gate.weight", sharedGate, -1, 0, 0);
        return new Experts(router, gateUp, downs, shared[0], shared[1], sharedGate);
    }

    /** The real vocabulary rows of an embedding or LM head shard: all of them but on the last ranks. */
    private Tensor vocabRows(Tensor rows) {
        long real = layout.realTokens();
        return real == rows.size(0) ? rows : rows.narrow(0, 0, real);
    }

    /**
     * Names {@code view}: at one rank the whole parameter; otherwise rows or columns
     * {@code [first, first + view.size(dim))} of dim {@code dim} of a parameter {@code full} long
     * there, or ({@code dim} -1) the whole parameter, the same on every rank.
     */
    private void put(ParameterTable table, String name, Tensor view, int dim, long first, long full) {
        if (layout.size() == 1) {
            table.put(name, view);
            return;
        }
        long[] shape = new long[(int) view.dim()];
        for (int i = 0; i < shape.length; i++) shape[i] = view.size(i);
        if (dim < 0) {
            table.put(name, view, TensorShard.whole(shape, layout.rank(), layout.size()));
            return;
        }
        long length = shape[dim];
        shape[dim] = full;
        table.put(name, view, TensorShard.split(shape, dim, first, length, layout.rank(), layout.size()));
    }

    private Tensor zeros(List<Tensor> owned, long... shape) {
        Tensor t = Torch.zeros(Torch.options(dtype, device), shape);
        owned.add(t);
        return t;
    }

    /** The whole model's config, whatever part of it this rank holds. */
    public ModelConfig config() {
        return config;
    }

    /**
     * This rank's part of the model as a config: its query heads, KV heads and intermediate size
     * ({@link TpLayout#shardConfig()}). The KV cache is built from it, so that it holds the rank's
     * KV heads only. At one rank it is {@link #config()} itself.
     */
    public ModelConfig shardConfig() {
        return shard;
    }

    /** How the model is split over the ranks of its group, seen from this rank. */
    public TpLayout layout() {
        return layout;
    }

    /** The ranks this model's forward runs on: {@link TpGroup#SINGLE} unless it was loaded for a tensor-parallel group. */
    public TpGroup tpGroup() {
        return tp;
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
        if (tp.size() > 1) requireShardCache(cache);
        Tensor h = tp.size() == 1 ? torch.embedding(w.embed(), batch.inputIds())            // (T, hidden)
                : embedVocabParallel(w.embed(), batch.inputIds());
        if (batch.embeds() != null)                                                          // given rows replace the lookup
            h.index_copy_(0, batch.embeds().rows(), batch.embeds().values().to(h.device(), h.scalar_type()));
        if (fewRows(h)) return forwardFewRows(h, batch, cache, w);
        LayerCarry carry = new LayerCarry(h, ops.rmsNorm(h, layers[0].inputNorm()));       // (residual, normed)
        phases.mark("inputs_embed_norm");
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            int layerIndex = l;
            Tensor nextNorm = l + 1 < layers.length ? layers[l + 1].inputNorm() : w.finalNorm();
            Tensor kCache = cache.keys(l), vCache = cache.values(l);
            carry.next(in -> {
                // 1. attention block: q/k/v, RoPE and the K/V write, attention, the residual add
                Tensor qkv = linear(in[1], layer.qkv(), layer.qkvBias());                       // (T, (nH + 2nKv) * d)
                phases.mark("qkv_gemm");
                Tensor q = ops.qkNormRopeAndCache(qkv, layer.qNorm(), layer.kNorm(), batch, kCache, vCache); // (T, nH, d)
                phases.mark("rope_kv_write");
                Tensor a = attend(q, batch, kCache, vCache, cache.blockSize());                 // (T, nH * d)
                phases.mark("attention");
                Tensor o = linear(a, layer.o());                                                // (T, hidden); a partial sum above one rank
                if (tp.size() > 1) tp.allReduceSum(o);
                phases.mark("o_gemm");
                Tensor[] hx = ops.addRmsNorm(in[0], o, layer.postNorm());                       // (h, post-attention norm)
                phases.mark("add_rms_norm");
                // 2. MLP block: down(silu(gate) * up), or a mixture of experts; the residual add and the next layer's norm
                Tensor down;                                                                    // (T, hidden); a partial sum above one rank
                if (layer.experts() != null) {
                    down = experts(hx[1], layer.experts(), cache.routing(layerIndex), batch.slotMapping());
                    phases.mark("experts");
                } else {
                    Tensor gateUp = linear(hx[1], layer.gateUp());                              // (T, 2 * inter)
                    phases.mark("gate_up_gemm");
                    Tensor act = ops.siluAndMul(gateUp);                                        // (T, inter)
                    phases.mark("silu_mul");
                    down = linear(act, layer.down());
                    phases.mark("down_gemm");
                }
                if (tp.size() > 1) tp.allReduceSum(down);
                Tensor[] next = ops.addRmsNorm(hx[0], down, nextNorm);
                phases.mark("add_rms_norm");
                return next;
            });
        }
        return carry.finish(carry.get(1));
    }

    /** Whether a step of these tokens runs {@link #forwardFewRows}: decode's few rows of a dense model at one rank. */
    private boolean fewRows(Tensor h) {
        return kernels.denseGemv() && tp.size() == 1 && config.moe() == null && h.size(0) >= 1 && h.size(0) <= Kernels.GEMV_STEP_ROWS;
    }

    /**
     * {@link #forward}'s layers for up to {@link Kernels#GEMV_STEP_ROWS} tokens, through dense_gemv.cu:
     * each norm runs inside the projection after it and each residual add inside the one before
     * it (the residual stream {@code h} is updated in place), SiLU-and-mul inside gate-up. Six
     * kernels a layer with RoPE + the K/V write and the attention, where the GEMM path runs ten
     * (issue #20); the same roundings, the float32 sums in another order.
     *
     * @param h (T, hidden), the embedded tokens; the residual stream from then on
     */
    private Tensor forwardFewRows(Tensor h, ForwardBatch batch, KvCache cache, Weights w) {
        Layer[] layers = w.layers();
        double eps = config.rmsNormEps();
        Tensor residual = h.contiguous();
        phases.mark("inputs_embed_norm");   // the embedding alone: each norm runs inside the projection after it
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            Tensor kCache = cache.keys(l), vCache = cache.values(l);
            try (PointerScope scope = new PointerScope()) {                                      // the layer's intermediates
                Tensor qkv = NativeOps.normGemv(residual, layer.inputNorm(), layer.qkv(), layer.qkvBias(), eps); // (T, (nH + 2nKv) * d)
                phases.mark("qkv_gemm");
                Tensor q = ops.qkNormRopeAndCache(qkv, layer.qNorm(), layer.kNorm(), batch, kCache, vCache);   // (T, nH, d)
                phases.mark("rope_kv_write");
                Tensor a = attend(q, batch, kCache, vCache, cache.blockSize());                 // (T, nH * d)
                phases.mark("attention");
                NativeOps.gemvResidual(a, layer.o(), residual);                                 // residual += o(a)
                phases.mark("o_gemm");
                Tensor act = NativeOps.normGemvSiluMul(residual, layer.postNorm(), layer.gateUp(), eps); // (T, inter)
                phases.mark("gate_up_gemm");
                NativeOps.gemvResidual(act, layer.down(), residual);                            // residual += down(act)
                phases.mark("down_gemm");
            }
        }
        Tensor out = ops.rmsNorm(residual, w.finalNorm());                                      // (T, hidden)
        phases.mark("add_rms_norm");   // SiLU-and-mul has no phase of its own here: it is gate-up's epilogue
        return out;
    }

    /**
     * A mixture of experts over {@code x} (T, hidden) -> (T, hidden), as transformers computes it:
     * the router's softmax in float32, each token's top-k experts (their probabilities scaled to
     * sum to 1 where the model says so), each expert's gated MLP over the tokens routed to it, and
     * the outputs summed, weighted by those probabilities, each token's in the order of its choices
     * (deterministic on every device); Qwen2-MoE adds its shared expert, gated by a sigmoid. The
     * token copies are sorted by expert ({@link LayerOps#route}) so that each expert runs one GEMM
     * pair over a contiguous block. Above one rank each expert is this rank's slice, and the result
     * a partial sum that the caller all-reduces.
     *
     * @param routed the layer's record of routed experts by slot, (numSlots, topK) int32, where each
     *               token's experts are written at its slot (of {@code slots}); null when none is kept
     */
    private Tensor experts(Tensor x, Experts m, Tensor routed, Tensor slots) {
        ExpertRouting routing = ops.route(linear(x, m.router()), routed, slots);                // logits (T, E)
        Tensor ys;                                                                              // (T k, hidden)
        if (groupedExperts && routing.tokenOf().size(0) <= GEMV_COPIES) {
            ys = expertGemv(x, routing, m);                                                     // reads x in place
        } else {
            Tensor xs = x.index_select(0, routing.tokenOf());                                   // (T k, hidden), sorted by expert
            ys = groupedExperts ? groupedExperts(xs, routing.ends(), m) : expertByExpert(xs, routing.ends(), m);
        }
        Tensor out = ops.combine(ys, routing);                                                  // (T, hidden)
        if (m.sharedGateUp() == null) return out;
        Tensor shared = linear(ops.siluAndMul(linear(x, m.sharedGateUp())), m.sharedDown());    // (T, hidden)
        Tensor gate = linear(x, m.sharedGate());                                                // (T, 1)
        return out.add(shared.mul(kernels.deterministic() ? BatchInvariantOps.sigmoid(gate) : torch.sigmoid(gate)));
    }

    /**
     * The same for a few copies (decode at small batches) as matrix-vector kernels of ours, each
     * reading its expert's rows once per run of copies at nearly the card's bandwidth, where the
     * grouped GEMMs' tensor-core tiles would run nearly empty (moe_gemv.cu, ADR 0027); no gathered
     * copies of x, and SiLU-and-mul fused into the gate-up product.
     */
    private Tensor expertGemv(Tensor x, ExpertRouting routing, Experts m) {
        long copies = routing.tokenOf().size(0);
        Tensor act = Torch.empty(Torch.options(dtype, device), copies, m.down().size(2));        // (T k, inter)
        RolloutCuda.moeGateUp(x, routing.tokenOf(), m.gateUp(), routing.ends(), act);
        Tensor ys = Torch.empty(Torch.options(dtype, device), copies, x.size(1));               // (T k, hidden)
        RolloutCuda.moeDown(act, m.down(), routing.ends(), ys);
        return ys;
    }

    /**
     * Each expert's gated MLP over its block of {@code xs} (T k, hidden), the copies sorted by
     * expert, block e ending at row {@code ends[e]} ((E) int32, on the device), as two grouped GEMMs:
     * nothing waits for the host.
     */
    private Tensor groupedExperts(Tensor xs, Tensor ends, Experts m) {
        Tensor act = ops.siluAndMul(RolloutCuda.groupedMm(xs, m.gateUp(), ends));               // (T k, inter)
        return RolloutCuda.groupedMm(act, m.down(), ends);                                      // (T k, hidden)
    }

    /** The same, a GEMM pair per expert that has copies, each block's end read on the host: any device and dtype. */
    private Tensor expertByExpert(Tensor xs, Tensor ends, Experts m) {
        long[] end = Torch.toLongs(ends.to(ScalarType.Long));                                   // (E) on the host
        Tensor ys = Torch.empty(Torch.options(dtype, device), xs.size(0), xs.size(1));          // (T k, hidden)
        long at = 0;
        for (int e = 0; e < end.length; e++) {
            long n = end[e] - at;
            if (n == 0) continue;
            Tensor act = ops.siluAndMul(linear(xs.narrow(0, at, n), m.gateUp().select(0, e)));  // (n, inter)
            ys.narrow(0, at, n).copy_(linear(act, m.down().select(0, e)));                      // (n, hidden)
            at = end[e];
        }
        return ys;
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
        if (tp.size() > 1) return gatherLogits(hidden, head);
        if (!kernels.fp32LmHead()) return linear(hidden, head).to(ScalarType.Float);
        return torch.mm(hidden, head.t(), ScalarType.Float);
    }

    /**
     * The logits a step samples from, (rows, vocab): the LM head's output as it is, bf16, where our
     * sampling kernel reads it so (one rank, bf16, no float32 LM head), so that only a row that
     * needs float32 logits (penalties, filters, other logprob modes: the sampler's choice) costs a
     * float32 copy; elsewhere {@link #logits}. The kernel converts bf16 exactly: either way a row's
     * token and logprob are the same bits.
     */
    public Tensor samplingLogits(Tensor hidden) {
        if (!bf16SamplingLogits()) return logits(hidden);
        return linear(hidden, live().lmHead());                              // (rows, vocab) bf16
    }

    /**
     * {@link #samplingLogits}, written into {@code out} (rows, vocab) bf16, contiguous: the same
     * GEMM, its output where the caller keeps it (the CUDA graphs' one shared buffer). Only where
     * {@link #bf16SamplingLogits()}.
     */
    public Tensor samplingLogits(Tensor hidden, Tensor out) {
        if (!bf16SamplingLogits()) throw new IllegalStateException("the sampling logits are float32 here: no buffer of the caller's");
        return torch.linear_out(out, hidden, live().lmHead());              // (rows, vocab) bf16
    }

    /** The width of {@link #samplingLogits}' rows: the LM head's rows (at one rank the vocabulary). */
    public long samplingLogitsWidth() {
        return live().lmHead().size(0);
    }

    /** Whether {@link #samplingLogits} gives the LM head's bf16 output as it is (one rank, our sampling kernel, no float32 head). */
    public boolean bf16SamplingLogits() {
        return kernels.samplingKernel() && tp.size() == 1 && !kernels.fp32LmHead() && !kernels.deterministic()
                && dtype.intern() == ScalarType.BFloat16;
    }

    /**
     * Every rank's logits for its vocabulary rows, gathered so that each rank holds the full
     * (rows, vocab) float32 logits and samples exactly as one rank would; the padding rows of the
     * vocabulary are cut off. Rounded to the model's dtype first, as at one rank.
     */
    private Tensor gatherLogits(Tensor hidden, Tensor head) {
        Tensor local = !kernels.fp32LmHead() ? linear(hidden, head).to(ScalarType.Float)         // (rows, vocabPerRank)
                : torch.mm(hidden, head.t(), ScalarType.Float);
        Tensor all = tp.allGather(local, 1);                                                    // (rows, paddedVocab)
        // contiguous like one rank's logits: the sampling kernel checks its input's layout
        return all.size(1) == config.vocabSize() ? all : all.narrow(1, 0, config.vocabSize()).contiguous();
    }

    /**
     * The embedding lookup with the vocabulary split over the ranks: each rank looks up the ids in
     * its range and gives zeros for the others, and the sum over the ranks is every row's embedding.
     */
    private Tensor embedVocabParallel(Tensor embed, Tensor ids) {
        long first = layout.firstToken(), real = layout.realTokens();
        Tensor local = ids.sub(new Scalar(first));                                           // (T) ids relative to the rank's range
        Tensor outside = torch.logical_or(torch.lt(local, new Scalar(0)), torch.ge(local, new Scalar(real)));
        local.masked_fill_(outside, new Scalar(0));                                          // any row of ours; zeroed below
        Tensor h = torch.embedding(embed, local);                                            // (T, hidden)
        h.masked_fill_(outside.unsqueeze(1), new Scalar(0.0));
        tp.allReduceSum(h);
        return h;
    }

    /** Above one rank the cache must hold this rank's KV heads only: one built from {@link #shardConfig()}. */
    private void requireShardCache(KvCache cache) {
        if (cache.keys(0).size(1) != shard.numKvHeads())
            throw new IllegalArgumentException("the KV cache holds " + cache.keys(0).size(1) + " KV heads; rank " + layout.rank()
                    + " of " + layout.size() + " holds " + shard.numKvHeads() + ": build the cache from shardConfig()");
    }

    private Weights live() {
        Weights w = weights;
        if (w == null) throw new IllegalStateException("the model's weights are released");
        return w;
    }

    /** x (T, K) times w (N, K) transposed: (T, N). */
    private Tensor linear(Tensor x, Tensor w) {
        return linear(x, w, null);
    }

    /** The same plus bias (N), where not null; in fixed chunks of rows in the deterministic arithmetic. */
    private Tensor linear(Tensor x, Tensor w, Tensor bias) {
        if (kernels.deterministic()) return BatchInvariantOps.linear(x, w, bias);
        return bias == null ? torch.linear(x, w) : torch.linear(x, w, new TensorOptional(bias));
    }

    /** Every token's attention over its sequence's cached context: q (T, nH, d) -> (T, nH * d). */
    private Tensor attend(Tensor q, ForwardBatch batch, Tensor kCache, Tensor vCache, int blockSize) {
        ModelConfig c = shard;   // this rank's heads; `config` itself at one rank
        if (kernels.deterministic()) return attendInvariant(q, batch, kCache, vCache, c);
        int nH = c.numHeads(), nKv = c.numKvHeads(), d = c.headDim(), g = c.queryGroupSize();
        long t = q.size(0);
        ForwardBatch.DecodeGroup dec = batch.decode();
        // a decode-only step (every step replayed as a CUDA graph) has its tokens in order, one per
        // sequence: no select and scatter around the attention, two kernels a layer fewer
        boolean decodeOnly = dec != null && batch.prefills().isEmpty() && dec.batch() == t;
        Tensor out = decodeOnly ? null : Torch.empty(Torch.options(dtype, device), t, nH, d); // (T, nH, d)
        if (dec != null) {
            Tensor qd = decodeOnly ? q : q.index_select(0, dec.tokenIndex());                  // (B, nH, d)
            Tensor o = kernels.decodeAttention().attend(qd, kCache, vCache, dec, blockSize, c);        // (B, nH, d)
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

    /**
     * {@link #attend} in the deterministic arithmetic: decoding sequences and prompt chunks through
     * the one blocked attention of {@link BatchInvariantOps#attend}, each sequence's queries at
     * their positions against its gathered context.
     */
    private Tensor attendInvariant(Tensor q, ForwardBatch batch, Tensor kCache, Tensor vCache, ModelConfig c) {
        int nH = c.numHeads(), nKv = c.numKvHeads(), d = c.headDim();
        long t = q.size(0);
        Tensor out = Torch.empty(Torch.options(dtype, device), t, (long) nH * d);              // (T, nH * d)
        ForwardBatch.DecodeGroup dec = batch.decode();
        if (dec != null) {
            if (dec.slots() == null) throw new IllegalStateException("the deterministic arithmetic reads gathered decode slots, not a block table");
            long b = dec.batch(), mc = dec.maxContext();
            Tensor qd = q.index_select(0, dec.tokenIndex()).view(b, 1, nH, d);                   // (B, 1, nH, d)
            Tensor pos = batch.positions().index_select(0, dec.tokenIndex()).view(b, 1);         // (B, 1)
            Tensor k = kCache.index_select(0, dec.slots()).view(b, mc, nKv, d);                  // (B, maxCtx, nKv, d)
            Tensor v = vCache.index_select(0, dec.slots()).view(b, mc, nKv, d);
            out.index_copy_(0, dec.tokenIndex(), BatchInvariantOps.attend(qd, pos, k, v, c).reshape(b, (long) nH * d));
        }
        for (ForwardBatch.PrefillGroup pg : batch.prefills()) {
            int p = pg.chunks(), mq = pg.maxQuery();
            long mc = pg.maxContext();
            Tensor qp = q.index_select(0, pg.rows()).view(p, mq, nH, d);                         // (P, maxQ, nH, d)
            Tensor k = kCache.index_select(0, pg.slots()).view(p, mc, nKv, d);                   // (P, maxCtx, nKv, d)
            Tensor v = vCache.index_select(0, pg.slots()).view(p, mc, nKv, d);
            Tensor o = BatchInvariantOps.attend(qp, pg.queryPos(), k, v, c).reshape((long) p * mq, (long) nH * d);
            out.index_copy_(0, pg.targets(), o.index_select(0, pg.valid()));
        }
        return out;
    }

    /** Times the phases of steps (benchmarks: eager ones' layers, replayed graphs whole); {@link PhaseTimer#OFF} by default. An instrument: it changes no result. */
    public void setPhaseTimer(PhaseTimer timer) {
        phases = timer;
    }

    public PhaseTimer phaseTimer() {
        return phases;
    }

    private static Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor mask) {
        return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(mask), 0.0, false, new DoubleOptional(), false);
    }

    /** Parameters of the model (this rank's part of it), from the parameter table's shapes (a tied head counted once). */
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

    /** Bytes held by the weights on this rank (a tied head counted once); 0 while released. */
    public long weightBytes() {
        Weights w = weights;
        if (w == null) return 0;
        long total = 0;
        for (Tensor t : w.owned()) total += t.nbytes();
        return total;
    }
}
