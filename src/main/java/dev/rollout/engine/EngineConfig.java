package dev.rollout.engine;

/**
 * Static engine settings, checked once.
 *
 * @param device              "cpu" or "cuda[:N]"
 * @param dtype               "float32", "bfloat16", "float16", or "auto" (float32 on CPU, bfloat16 on CUDA)
 * @param blockSize           tokens per KV block
 * @param numKvBlocks         blocks in the KV cache
 * @param maxNumSeqs          sequences running at once
 * @param maxNumBatchedTokens tokens computed per step (the chunked-prefill budget)
 * @param maxModelLen         longest sequence (prompt + output); 0 = the model's own limit
 */
public record EngineConfig(String device, String dtype, int blockSize, int numKvBlocks, int maxNumSeqs,
                           int maxNumBatchedTokens, int maxModelLen) {
    public EngineConfig {
        if (blockSize <= 0 || numKvBlocks <= 0 || maxNumSeqs <= 0 || maxNumBatchedTokens <= 0 || maxModelLen < 0)
            throw new IllegalArgumentException("engine sizes must be positive: " + this);
        if (!device.equals("cpu") && !device.startsWith("cuda"))
            throw new IllegalArgumentException("device must be cpu or cuda[:N], not " + device);
    }

    public static EngineConfig cpuDefaults() {
        return new EngineConfig("cpu", "auto", 16, 2048, 256, 2048, 0);
    }
}
