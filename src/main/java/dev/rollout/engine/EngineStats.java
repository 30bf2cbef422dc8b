package dev.rollout.engine;

/** A read-only view of the engine's occupancy, published by the loop after every step and command. */
public record EngineStats(int numRunning, int numWaiting, int usedBlocks, int totalBlocks, int blockSize,
                          int cachedBlocks, long numPreemptions) {
    public double tokenUsage() {
        return totalBlocks == 0 ? 0 : (double) usedBlocks / totalBlocks;
    }
}
