package dev.rollout.engine;

import java.util.Map;

/**
 * What a memory release did.
 *
 * @param freedBytes      device memory given back, per tag (0 for a tag that was already released)
 * @param weightsKept     whether the weights were copied to host memory first (rollout.weights-host-backup),
 *                        so that a resume restores them without a push
 * @param backupBytes     bytes copied to host memory for that
 */
public record ReleaseReport(Map<MemoryTag, Long> freedBytes, boolean weightsKept, long backupBytes) {
    public ReleaseReport {
        freedBytes = Map.copyOf(freedBytes);
    }
}
