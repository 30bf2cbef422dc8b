package dev.rollout.model;

import java.util.List;
import org.bytedeco.pytorch.Tensor;

/**
 * Everything one forward pass needs besides the weights: the flattened tokens of every scheduled
 * sequence, where their K/V go in the paged cache, and how each sequence attends. Built once per
 * step by the model runner and shared by every layer.
 *
 * <p>Sequences that compute a single token (decodes) attend together in one padded batch;
 * sequences that compute a chunk of prompt attend one by one with a causal mask.
 *
 * @param inputIds    (T) int64, the tokens computed in this step, sequence after sequence
 * @param positions   (T) int64, their positions in their sequences
 * @param slotMapping (T) int64, the KV-cache slot (block * blockSize + offset) each token writes
 * @param decode      the single-token sequences, or null if there are none
 * @param prefills    the multi-token chunks
 */
public record ForwardBatch(Tensor inputIds, Tensor positions, Tensor slotMapping,
                           DecodeGroup decode, List<PrefillChunk> prefills) {

    /**
     * The decoding sequences' context, in the form the model's {@link DecodeAttention} reads:
     * gathered slots with a mask, or the block table that paged attention reads in place (the
     * other pair is null).
     *
     * @param tokenIndex (B) int64, each sequence's row in the flattened tokens
     * @param slots      (B * maxContext) int64, each sequence's context slots, padded
     * @param maxContext the longest context among them
     * @param mask       (B, 1, 1, maxContext) bool, true for the real context positions
     * @param blockTable (B, maxBlocks) int32, each sequence's KV blocks in order, padded with 0
     * @param seqLens    (B) int32, each sequence's context length, the current token included
     */
    public record DecodeGroup(Tensor tokenIndex, Tensor slots, int batch, int maxContext, Tensor mask,
                              Tensor blockTable, Tensor seqLens, int maxBlocks) {}

    /**
     * @param queryStart first row of the chunk in the flattened tokens
     * @param queryLen   tokens computed in this chunk
     * @param slots      (contextLen) int64, the slots of every position up to the chunk's end
     * @param mask       (queryLen, contextLen) bool, causal
     */
    public record PrefillChunk(int queryStart, int queryLen, int contextLen, Tensor slots, Tensor mask) {}
}
