package dev.rollout.model;

/**
 * How a model is split over {@code size} tensor-parallel ranks in Megatron's layout, seen from one
 * rank: which query heads, KV heads, intermediate columns and vocabulary rows it holds
 * (docs/adr/0020-tensor-parallel-sharding-layout.md).
 * <ul>
 *   <li>Query heads: {@code numHeads / size} consecutive heads each.</li>
 *   <li>KV heads: {@code numKvHeads / size} each when there are at least as many as ranks; else
 *       one each, replicated over {@code size / numKvHeads} ranks: the KV head that the rank's
 *       query heads read (SGLang's and vLLM's rule). Either way a rank's query heads and its KV
 *       heads form whole GQA groups, so attention runs on the rank's heads alone.</li>
 *   <li>Intermediate (gate/up rows, down columns): {@code intermediateSize / size} each; so too
 *       each expert's of a mixture of experts and its shared expert's (every rank holds a slice of
 *       every expert, and the router whole).</li>
 *   <li>Vocabulary (embedding and LM head rows): the vocabulary padded up to a multiple of
 *       {@code size}, {@code paddedVocab / size} rows each; the last ranks' rows past the real
 *       vocabulary are padding, zero, and cut off the gathered logits.</li>
 * </ul>
 * At one rank every range is the whole model and {@link #shardConfig()} is the model's config itself.
 */
public record TpLayout(ModelConfig config, int rank, int size) {

    public TpLayout {
        if (size < 1 || rank < 0 || rank >= size) throw new IllegalArgumentException("rank " + rank + " of a tp_size of " + size);
        int nH = config.numHeads(), nKv = config.numKvHeads();
        if (nH % size != 0)
            throw new IllegalArgumentException("num_attention_heads " + nH + " is not divisible by tp_size " + size);
        if (nKv >= size ? nKv % size != 0 : size % nKv != 0)
            throw new IllegalArgumentException("num_key_value_heads " + nKv + " and tp_size " + size
                    + ": one must divide the other (KV heads are split when there are more, replicated when fewer)");
        if (config.intermediateSize() % size != 0)
            throw new IllegalArgumentException("intermediate_size " + config.intermediateSize() + " is not divisible by tp_size " + size);
        ModelConfig.Moe moe = config.moe();
        if (moe != null && moe.intermediate() % size != 0)
            throw new IllegalArgumentException("the experts' intermediate size " + moe.intermediate() + " is not divisible by tp_size " + size);
        if (moe != null && moe.sharedIntermediate() % size != 0)
            throw new IllegalArgumentException("shared_expert_intermediate_size " + moe.sharedIntermediate() + " is not divisible by tp_size "
                    + size);
    }

    /** The model on one rank: the whole of it. */
    public static TpLayout single(ModelConfig config) {
        return new TpLayout(config, 0, 1);
    }

    public int heads() {
        return config.numHeads() / size;
    }

    public int firstHead() {
        return rank * heads();
    }

    public int kvHeads() {
        return Math.max(1, config.numKvHeads() / size);
    }

    /** The first KV head the rank holds; with replication, the one its query heads share. */
    public int firstKvHead() {
        int nKv = config.numKvHeads();
        return nKv >= size ? rank * kvHeads() : rank / (size / nKv);
    }

    /** How many ranks hold each KV head: 1 unless there are fewer KV heads than ranks. */
    public int kvReplicas() {
        return Math.max(1, size / config.numKvHeads());
    }

    public int intermediate() {
        return config.intermediateSize() / size;
    }

    /** The vocabulary rows each rank holds: the vocabulary rounded up to a multiple of the ranks, divided. */
    public int vocabPerRank() {
        return (config.vocabSize() + size - 1) / size;
    }

    public long paddedVocab() {
        return (long) vocabPerRank() * size;
    }

    /** The first token id of the rank's vocabulary range. */
    public long firstToken() {
        return Math.min((long) rank * vocabPerRank(), config.vocabSize());
    }

    /** The real (not padding) token ids in the rank's range: vocabPerRank, or fewer on the last ranks. */
    public long realTokens() {
        return Math.max(0, Math.min(vocabPerRank(), config.vocabSize() - (long) rank * vocabPerRank()));
    }

    /**
     * The rank's part of the model as a config of its own (its heads, KV heads and intermediate
     * size; its vocabulary rows, padding included): what the layer ops, the attention and the KV
     * cache are sized by. At one rank it is {@link #config()} itself.
     */
    public ModelConfig shardConfig() {
        if (size == 1) return config;
        ModelConfig c = config;
        return new ModelConfig(c.architecture(), vocabPerRank(), c.hiddenSize(), intermediate(), c.numLayers(), heads(), kvHeads(),
                c.headDim(), c.rmsNormEps(), c.rope(), c.maxPositionEmbeddings(), c.tieWordEmbeddings(), c.qkvBias(), c.qkNorm(),
                c.torchDtype(), c.eosTokenIds(), c.moe() == null ? null : c.moe().split(size));
    }
}
