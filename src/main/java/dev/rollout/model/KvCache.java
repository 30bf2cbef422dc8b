package dev.rollout.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The paged KV cache: for every layer one K and one V tensor of
 * ((numBlocks + 1) * blockSize, numKvHeads, headDim), addressed by slot; the last block is
 * scratch. Which slots belong to which sequence is the block manager's business; this class only
 * holds the memory.
 */
public final class KvCache {
    private final Tensor[] keys;   // per layer: (numSlots, numKvHeads, headDim)
    private final Tensor[] values; // per layer: (numSlots, numKvHeads, headDim)
    private final Tensor routing;  // (numSlots, numLayers, topK) int32: each slot's token's experts per layer, or null
    private final int numBlocks;
    private final int blockSize;

    public KvCache(ModelConfig config, int numBlocks, int blockSize, ScalarType dtype, Device device) {
        this(config, numBlocks, blockSize, dtype, device, false);
    }

    /**
     * @param routing keep, for a mixture of experts, which experts each slot's token was routed to
     *                in every layer (SGLang's routed experts, indexed by slot as it indexes them):
     *                the forward writes them with the K/V, so a prefix found in the cache has them too
     */
    public KvCache(ModelConfig config, int numBlocks, int blockSize, ScalarType dtype, Device device, boolean routing) {
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        keys = new Tensor[config.numLayers()];
        values = new Tensor[config.numLayers()];
        long slots = (long) (numBlocks + 1) * blockSize;  // + a scratch block that no sequence owns
        for (int l = 0; l < config.numLayers(); l++) {
            keys[l] = Torch.zeros(Torch.options(dtype, device), slots, config.numKvHeads(), config.headDim());
            values[l] = Torch.zeros(Torch.options(dtype, device), slots, config.numKvHeads(), config.headDim());
        }
        // a dense layer's rows stay zero, as SGLang's do
        this.routing = routing && config.moe() != null
                ? Torch.zeros(Torch.options(ScalarType.Int, device), slots, config.numLayers(), config.moe().topK()) : null;
    }

    /** Bytes of routed experts per slot when they are kept: 0 for a dense model. */
    public static long routingBytesPerSlot(ModelConfig config) {
        return config.moe() == null ? 0 : 4L * config.numLayers() * config.moe().topK();
    }

    /**
     * How many blocks fit in {@code fraction} of the device memory that is free now (after the
     * weights are loaded); the rest stays for activations, logits and the allocator's slack.
     */
    public static int blocksFitting(ModelConfig config, int blockSize, ScalarType dtype, Device device, double fraction) {
        return blocksFitting(config, blockSize, dtype, device, fraction, false);
    }

    /** {@link #blocksFitting(ModelConfig, int, ScalarType, Device, double)}, the routed experts' record included if {@code routing}. */
    public static int blocksFitting(ModelConfig config, int blockSize, ScalarType dtype, Device device, double fraction, boolean routing) {
        DeviceMemory.giveBack(device);  // what loading the weights left in libtorch's cache is free too
        long perBlock = 2L * config.numLayers() * blockSize * config.numKvHeads() * config.headDim() * Torch.elementSize(dtype)
                + (routing ? blockSize * routingBytesPerSlot(config) : 0);
        long blocks = (long) (DeviceMemory.free(device) * fraction) / perBlock;
        if (blocks < 1) throw new IllegalStateException("no device memory left for the KV cache: "
                + DeviceMemory.free(device) + " bytes free, " + perBlock + " bytes per block");
        return (int) Math.min(blocks, Integer.MAX_VALUE / blockSize);
    }

    public Tensor keys(int layer) {
        return keys[layer];
    }

    public Tensor values(int layer) {
        return values[layer];
    }

    /** Layer {@code layer}'s routed experts by slot, (numSlots, topK) int32, or null when none are kept. */
    public Tensor routing(int layer) {
        return routing == null ? null : routing.select(1, layer);
    }

    /** Every slot's routed experts, (numSlots, numLayers, topK) int32, or null when none are kept. */
    public Tensor routing() {
        return routing;
    }

    /**
     * A slot outside every block the block manager hands out: padding rows of a CUDA-graph step
     * write their K/V there, where no sequence reads.
     */
    public long scratchSlot() {
        return (long) numBlocks * blockSize;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public long bytes() {
        long total = 0;
        for (int l = 0; l < keys.length; l++) total += keys[l].nbytes() + values[l].nbytes();
        return total + (routing == null ? 0 : routing.nbytes());
    }

    /** Frees the memory now rather than at the next garbage collection. */
    public void release() {
        for (int l = 0; l < keys.length; l++) {
            keys[l].close();
            values[l].close();
        }
        if (routing != null) routing.close();
    }
}
