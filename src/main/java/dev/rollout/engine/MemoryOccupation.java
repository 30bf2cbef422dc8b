package dev.rollout.engine;

import dev.rollout.model.DeviceMemory;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * Memory given back between RL phases and taken again (SGLang's release/resume_memory_occupation):
 * the weights, the KV cache and the CUDA graphs, by tag. While anything is released, or released
 * weights have not all been restored or pushed, the engine holds still. Engine thread only.
 */
final class MemoryOccupation {
    private final LlmEngine engine;
    private final WeightControl weights;
    private final EnumSet<MemoryTag> released = EnumSet.noneOf(MemoryTag.class);
    /** {@link #released} as the loop publishes it after every step: copied when it changes, not at every step. */
    private Set<MemoryTag> snapshot = Set.of();

    MemoryOccupation(LlmEngine engine, WeightControl weights) {
        this.engine = engine;
        this.weights = weights;
    }

    Set<MemoryTag> released() {
        return snapshot;
    }

    /** Whether the engine must hold still: memory is released, or weights are still to be pushed. */
    boolean holdsEngine() {
        return !released.isEmpty() || weights.numUnpushed() > 0;
    }

    /** Gives the tagged memory back; a tag already released frees nothing. Refused while requests run or wait. */
    ReleaseReport release(Set<MemoryTag> tags) {
        requireIdle("release memory");
        Map<MemoryTag, Long> freed = new EnumMap<>(MemoryTag.class);
        long backedUp = 0;
        for (MemoryTag tag : EnumSet.copyOf(tags.isEmpty() ? EnumSet.allOf(MemoryTag.class) : tags)) {
            if (released.contains(tag)) {
                freed.put(tag, 0L);
                continue;
            }
            long bytes = switch (tag) {
                case WEIGHTS -> {
                    engine.dropGraphs();  // they read the weights at their old addresses
                    long b = engine.model().weightBytes();
                    backedUp = weights.releaseAndBackUp();
                    yield b;
                }
                case KV_CACHE -> engine.releaseKvCache();
                case CUDA_GRAPH -> {
                    // their memory comes back with the allocator's cache emptied below; it is not counted per graph
                    engine.dropGraphs();
                    yield 0L;
                }
            };
            released.add(tag);
            snapshot = Set.copyOf(released);
            freed.put(tag, bytes);
        }
        DeviceMemory.giveBack(engine.model().device());
        // a host copy may be held from an earlier release of the same weights: say so either way
        return new ReleaseReport(freed, weights.heldBackupBytes() > 0, backedUp);
    }

    /** Allocates the tagged memory again; the weights come back from their host copy where one is held. */
    ResumeReport resume(Set<MemoryTag> tags) {
        requireIdle("resume memory");
        Set<MemoryTag> resumed = EnumSet.noneOf(MemoryTag.class);
        long restored = 0;
        boolean fromBackup = false;
        for (MemoryTag tag : EnumSet.copyOf(tags.isEmpty() ? EnumSet.allOf(MemoryTag.class) : tags)) {
            if (!released.contains(tag)) continue;
            switch (tag) {  // a failed allocation (the trainer still holds the GPU) leaves the tag released, to try again
                case WEIGHTS -> {
                    fromBackup = weights.heldBackupBytes() > 0;
                    restored = weights.reallocateAndRestore();
                }
                case KV_CACHE -> engine.allocateKvCache();
                case CUDA_GRAPH -> { }  // captured again on demand
            }
            released.remove(tag);
            snapshot = Set.copyOf(released);
            resumed.add(tag);
        }
        return new ResumeReport(resumed, fromBackup, restored, weights.numUnpushed());
    }

    private void requireIdle(String what) {
        if (!engine.idleForMemoryWork())
            throw new IllegalStateException("cannot " + what + " while " + engine.numRunning() + " requests run and "
                    + (engine.stats().numWaiting()) + " wait; pause or abort them first");
    }
}
