package dev.rollout.model;

import java.util.List;
import org.bytedeco.pytorch.Tensor;

/**
 * Everything one forward pass needs besides the weights: the flattened tokens of every scheduled
 * sequence, where their K/V go in the paged cache, and how each sequence attends. Built once per
 * step by the model runner and shared by every layer.
 *
 * <p>Sequences that compute a single token (decodes) attend together in one padded batch;
 * sequences that compute a chunk of prompt attend in padded groups with a causal mask.
 *
 * @param inputIds    (T) int64, the tokens computed in this step, sequence after sequence
 * @param positions   (T) int64, their positions in their sequences
 * @param slotMapping (T) int64, the KV-cache slot (block * blockSize + offset) each token writes
 * @param decode      the single-token sequences, or null if there are none
 * @param prefills    the multi-token chunks, in groups of similar size
 * @param embeds      prompt rows given as embeddings instead of ids, or null if there are none
 */
public record ForwardBatch(Tensor inputIds, Tensor positions, Tensor slotMapping,
                           DecodeGroup decode, List<PrefillGroup> prefills, Embeds embeds) {

    public ForwardBatch(Tensor inputIds, Tensor positions, Tensor slotMapping, DecodeGroup decode, List<PrefillGroup> prefills) {
        this(inputIds, positions, slotMapping, decode, prefills, null);
    }

    /**
     * Prompt positions whose input is an embedding rather than a token (SGLang's
     * {@code input_embeds}): they replace the embedding layer's output at those rows.
     *
     * @param rows   (E) int64, rows in the flattened tokens
     * @param values (E, hidden) float32, on the model's device
     */
    public record Embeds(Tensor rows, Tensor values) {}

    /**
     * The decoding sequences' context, in the form the model's {@link DecodeAttention} reads:
     * gathered slots with a mask, or the block table that paged attention reads in place (the
     * other pair is null).
     *
     * @param tokenIndex (B) int64, each sequence's row in the flattened tokens
     * @param slots      (B * maxContext) int64, each sequence's context slots, padded
     * @param maxContext the longest context among them
     * @param mask       (B, 1, 1, maxContext) bool, true for the real context positions
     * @param blockTable (B, maxBlocks) int64, each sequence's KV blocks in order, padded with 0
     * @param seqLens    (B) int64, each sequence's context length, the current token included
     * @param splitCounters (B, nKv) int32 zeros that our paged kernel counts its splits in and leaves
     *                   zero ({@link PagedDecode#splitCounters}), shared by every layer of the step;
     *                   null if the kernel is not used, or to let each call make its own
     */
    public record DecodeGroup(Tensor tokenIndex, Tensor slots, int batch, int maxContext, Tensor mask,
                              Tensor blockTable, Tensor seqLens, int maxBlocks, Tensor splitCounters) {

        public DecodeGroup(Tensor tokenIndex, Tensor slots, int batch, int maxContext, Tensor mask,
                           Tensor blockTable, Tensor seqLens, int maxBlocks) {
            this(tokenIndex, slots, batch, maxContext, mask, blockTable, seqLens, maxBlocks, null);
        }
    }

    /**
     * Prompt chunks that attend together as one padded batch, each with a causal mask over its
     * cached prefix (one attention call for P chunks instead of P). Padded query rows repeat a real
     * row and see key 0; padded context slots lie past every real query and are masked.
     *
     * @param chunks     P, the chunks in the group
     * @param maxQuery   the longest chunk
     * @param maxContext the longest context (cached prefix + chunk)
     * @param rows       (P * maxQuery) int64, each chunk's rows in the flattened tokens, padded
     * @param queryPos   (P, maxQuery) int64, each query's position in its sequence (padding: 0)
     * @param slots      (P * maxContext) int64, each chunk's context slots, padded
     * @param valid      (R) int64, the real rows among the P * maxQuery, in order
     * @param targets    (R) int64, the flattened-token row of each real one
     */
    public record PrefillGroup(int chunks, int maxQuery, int maxContext, Tensor rows, Tensor queryPos, Tensor slots,
                               Tensor valid, Tensor targets) {}
}
