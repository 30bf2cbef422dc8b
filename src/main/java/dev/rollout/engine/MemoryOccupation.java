package dev.rollout.engine;

import dev.rollout.model.DeviceMemory;
import dev.rollout.model.StepBroadcast;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.StringJoiner;

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

    /**
     * Gives the tagged memory back. Refused while requests run or wait, and, as a whole, when any
     * tag asked for is released already (SGLang's rule: a second release is a caller's mistake,
     * not a no-op, since it usually means a resume was lost).
     */
    ReleaseReport release(Set<MemoryTag> tags) {
        requireIdle("release memory");
        Set<MemoryTag> asked = EnumSet.copyOf(tags.isEmpty() ? EnumSet.allOf(MemoryTag.class) : tags);
        Set<MemoryTag> again = EnumSet.noneOf(MemoryTag.class);
        for (MemoryTag t : asked) if (released.contains(t)) again.add(t);
        if (!again.isEmpty())
            throw new IllegalArgumentException("release_memory_occupation called for tags " + names(again)
                    + " that are already released; resume them first, or release only the others");
        Map<MemoryTag, Long> freed = new EnumMap<>(MemoryTag.class);
        long backedUp = 0;
        try {
            for (MemoryTag tag : asked) {
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
        } finally {
            // the other ranks release what this one did, once it has (its host copy may fail and keep the weights)
            if (!freed.isEmpty())
                engine.parameterChannel().sendMemory(new StepBroadcast.Memory(true, freed.containsKey(MemoryTag.WEIGHTS),
                        freed.containsKey(MemoryTag.KV_CACHE), weights.hostBackup()));
        }
        DeviceMemory.giveBack(engine.model().device());
        // a host copy may be held from an earlier release of the same weights: say so either way
        return new ReleaseReport(freed, weights.backupHeld(), backedUp);
    }

    /**
     * Allocates the tagged memory again; the weights come back from their host copy where one is
     * held. Refused, as a whole, when any tag asked for is not released (SGLang's rule; with no
     * tags, all three must be released).
     */
    ResumeReport resume(Set<MemoryTag> tags) {
        Set<MemoryTag> asked = EnumSet.copyOf(tags.isEmpty() ? EnumSet.allOf(MemoryTag.class) : tags);
        Set<MemoryTag> notReleased = EnumSet.noneOf(MemoryTag.class);
        for (MemoryTag t : asked) if (!released.contains(t)) notReleased.add(t);
        if (!notReleased.isEmpty())
            throw new IllegalArgumentException("resume_memory_occupation called for tags " + names(notReleased)
                    + " that are not currently released" + (released.isEmpty() ? " (nothing is released)" : " (released: " + names(released) + ")"));
        requireIdle("resume memory");
        Set<MemoryTag> resumed = EnumSet.noneOf(MemoryTag.class);
        long restored = 0;
        boolean fromBackup = false;
        try {
            for (MemoryTag tag : asked) {
                switch (tag) {  // a failed allocation (the trainer still holds the GPU) leaves the tag released, to try again
                    case WEIGHTS -> {
                        fromBackup = weights.backupHeld();
                        restored = weights.reallocateAndRestore();
                    }
                    case KV_CACHE -> engine.allocateKvCache();
                    case CUDA_GRAPH -> { }  // captured again on demand
                }
                released.remove(tag);
                snapshot = Set.copyOf(released);
                resumed.add(tag);
            }
        } finally {
            // the other ranks take back what this one did, once it could (what failed here stays released on every rank)
            if (!resumed.isEmpty())
                engine.parameterChannel().sendMemory(new StepBroadcast.Memory(false, resumed.contains(MemoryTag.WEIGHTS),
                        resumed.contains(MemoryTag.KV_CACHE), fromBackup));
        }
        return new ResumeReport(resumed, fromBackup, restored, weights.numUnpushed());
    }

    /** Tags as the API spells them: [kv_cache, weights]. */
    private static String names(Set<MemoryTag> tags) {
        StringJoiner j = new StringJoiner(", ", "[", "]");
        for (MemoryTag t : tags) j.add(t.name().toLowerCase(Locale.ROOT));
        return j.toString();
    }

    private void requireIdle(String what) {
        if (!engine.idleForMemoryWork())
            throw new IllegalStateException("cannot " + what + " while " + engine.numRunning() + " requests run and "
                    + (engine.stats().numWaiting()) + " wait; pause or abort them first");
    }
}
