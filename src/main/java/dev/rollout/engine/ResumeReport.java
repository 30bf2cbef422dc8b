package dev.rollout.engine;

import java.util.Set;

/**
 * What a memory resume did.
 *
 * @param resumed         the tags that were released and are allocated again
 * @param weightsRestored whether the weights came back from their host copy, bit for bit
 * @param restoredBytes   bytes copied back from host memory for that
 * @param parametersToPush parameters that must be pushed before the engine generates again
 *                        (all of them after a weights resume without a host copy)
 */
public record ResumeReport(Set<MemoryTag> resumed, boolean weightsRestored, long restoredBytes, int parametersToPush) {
    public ResumeReport {
        resumed = Set.copyOf(resumed);
    }
}
