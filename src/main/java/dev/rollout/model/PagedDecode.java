package dev.rollout.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Decode attention, one query token per sequence, in the three ways of {@link DecodeAttention}.
 * Our kernel ({@code native-presets/src/paged_attention.cu}) reads each sequence's K/V once, in
 * place, through its block table; the other two gather the context into a padded copy first and
 * run libtorch's attention on it.
 */
public final class PagedDecode {
    private PagedDecode() {}

    /**
     * The kernel's reference in libtorch's ops: the block table expanded into slots and a mask,
     * then {@link #gathered}. q (B, nH, d); returns (B, nH, d).
     */
    static Tensor reference(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c) {
        int b = dec.batch();
        long ctx = (long) dec.maxBlocks() * blockSize;
        Device device = q.device();
        Tensor offsets = torch.arange(new Scalar(blockSize), Torch.options(ScalarType.Long, device)).view(1, 1, blockSize);
        Tensor slots = dec.blockTable().unsqueeze(2).mul(new Scalar(blockSize)).add(offsets).view(-1); // (B * ctx)
        Tensor pos = torch.arange(new Scalar(ctx), Torch.options(ScalarType.Long, device)).view(1, ctx);
        Tensor mask = torch.lt(pos, dec.seqLens().view(b, 1)).view(b, 1, 1, ctx);                               // (B, 1, 1, ctx)
        return gathered(q, kCache, vCache, slots, ctx, mask, c);
    }

    /**
     * One query per sequence over its context gathered into a padded batch: the query heads that
     * share a KV head attend as a group. q (B, nH, d); slots (B * ctx); mask (B, 1, 1, ctx); returns (B, nH, d).
     */
    static Tensor gathered(Tensor q, Tensor kCache, Tensor vCache, Tensor slots, long ctx, Tensor mask, ModelConfig c) {
        int nH = c.numHeads(), nKv = c.numKvHeads(), d = c.headDim(), g = c.queryGroupSize();
        long b = q.size(0);
        Tensor qg = q.view(b, nKv, g, d);                                                     // (B, nKv, g, d)
        Tensor k = kCache.index_select(0, slots).view(b, ctx, nKv, d).permute(0, 2, 1, 3);   // (B, nKv, ctx, d)
        Tensor v = vCache.index_select(0, slots).view(b, ctx, nKv, d).permute(0, 2, 1, 3);
        return torch.scaled_dot_product_attention(qg, k, v, new TensorOptional(mask), 0.0, false, new DoubleOptional(), false)
                .reshape(b, nH, d);                                                           // (B, nH, d)
    }

    /** Our kernel: q (B, nH, d) bf16; the caches (slots, nKv, d); returns (B, nH, d). */
    static Tensor attend(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c) {
        return attend(q, kCache, vCache, dec, blockSize, c, 0);
    }

    /**
     * Our kernel with the context cut into partitions of {@code partitionTokens} at fixed positions
     * (a sequence's output then does not depend on the batch), or with 0 as the grid's splits
     * allow (the fast default).
     */
    static Tensor attend(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c,
                         int partitionTokens) {
        int b = dec.batch(), nH = c.numHeads(), d = c.headDim(), nKv = (int) kCache.size(1);
        int splits = RolloutCuda.pagedDecodeSplits(b, nKv, d, dec.maxBlocks(), blockSize, partitionTokens);
        Device device = q.device();
        Tensor qc = q.contiguous();
        Tensor out = Torch.empty(Torch.options(ScalarType.BFloat16, device), b, nH, d);          // (B, nH, d)
        Tensor partM = Torch.empty(Torch.options(ScalarType.Float, device), b, nH, splits);      // (B, nH, S)
        Tensor partL = Torch.empty(Torch.options(ScalarType.Float, device), b, nH, splits);
        Tensor partAcc = Torch.empty(Torch.options(ScalarType.Float, device), b, nH, splits, d); // (B, nH, S, d)
        Tensor counters = dec.splitCounters() != null ? dec.splitCounters() : splitCounters(b, nKv, device);
        RolloutCuda.pagedDecodeAttention(qc, kCache, vCache, dec.blockTable(), dec.seqLens(), partM, partL, partAcc, counters,
                out, blockSize, partitionTokens, (float) (1.0 / Math.sqrt(d)));
        return out;
    }

    /**
     * The kernel's split counters for a step of {@code batch} sequences: (B, nKv) int32 zeros, which
     * every call leaves zero again, so one tensor serves all the layers of a step (and of every
     * replay of a captured one) at the cost of one fill.
     */
    public static Tensor splitCounters(int batch, int numKvHeads, Device device) {
        return Torch.zeros(Torch.options(ScalarType.Int, device), batch, numKvHeads);
    }
}
