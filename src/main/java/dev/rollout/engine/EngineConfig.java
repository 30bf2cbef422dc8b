package dev.rollout.engine;

/**
 * Static engine settings, checked once.
 *
 * @param device              "cpu" or "cuda[:N]"
 * @param dtype               "float32", "bfloat16", "float16", or "auto" (float32 on CPU, bfloat16 on CUDA)
 * @param blockSize           tokens per KV block
 * @param numKvBlocks         blocks in the KV cache; 0 sizes it from memory (see {@code kvMemoryFraction})
 * @param maxNumSeqs          sequences running at once
 * @param maxNumBatchedTokens tokens computed per step (the chunked-prefill budget)
 * @param maxModelLen         longest sequence (prompt + output); 0 = the model's own limit
 * @param kvMemoryFraction    with numKvBlocks 0 on CUDA: the share of the device memory left free
 *                            after the weights that the KV cache takes (the rest serves activations)
 */
public record EngineConfig(String device, String dtype, int blockSize, int numKvBlocks, int maxNumSeqs,
                           int maxNumBatchedTokens, int maxModelLen, double kvMemoryFraction, boolean routedExperts) {
    /** KV blocks when the size is left to the engine on a CPU: 65,536 tokens of 16. */
    public static final int CPU_AUTO_KV_BLOCKS = 4096;

    public EngineConfig {
        if (blockSize <= 0 || numKvBlocks < 0 || maxNumSeqs <= 0 || maxNumBatchedTokens <= 0 || maxModelLen < 0)
            throw new IllegalArgumentException("engine sizes must be positive: " + this);
        if (!(kvMemoryFraction > 0 && kvMemoryFraction < 1))
            throw new IllegalArgumentException("the KV memory fraction must be between 0 and 1, not " + kvMemoryFraction);
        if (!device.equals("cpu") && !device.startsWith("cuda"))
            throw new IllegalArgumentException("device must be cpu or cuda[:N], not " + device);
    }

    /** Without routed experts. */
    public EngineConfig(String device, String dtype, int blockSize, int numKvBlocks, int maxNumSeqs, int maxNumBatchedTokens,
                        int maxModelLen, double kvMemoryFraction) {
        this(device, dtype, blockSize, numKvBlocks, maxNumSeqs, maxNumBatchedTokens, maxModelLen, kvMemoryFraction, false);
    }

    /**
     * This config with each token's routed experts kept (SGLang's --enable-return-routed-experts):
     * for a mixture of experts, a slot-indexed record of every layer's chosen experts beside the KV cache.
     */
    public EngineConfig withRoutedExperts(boolean on) {
        return new EngineConfig(device, dtype, blockSize, numKvBlocks, maxNumSeqs, maxNumBatchedTokens, maxModelLen, kvMemoryFraction, on);
    }

    public static EngineConfig cpuDefaults() {
        return new EngineConfig("cpu", "auto", 16, 2048, 256, 2048, 0, 0.8);
    }
}
