package dev.rollout.engine;

import java.util.List;
import java.util.Set;

/**
 * The RL state machine as {@code /rl/state}, readiness and the status page see it, refreshed by
 * the loop after every step and command.
 *
 * @param unpushedParameters parameters still to be pushed after a weights resume without a host copy
 * @param hostBackupBytes    bytes of weights held in host memory while released
 * @param recentUpdates      the last applied updates, oldest first (at most 32)
 */
public record RlStatus(RlState state, String weightVersion, int running, int waiting, int freeBlocks, int blockSize,
                       Set<MemoryTag> released, int unpushedParameters, long hostBackupBytes, List<UpdateRecord> recentUpdates) {
    public RlStatus {
        released = Set.copyOf(released);
        recentUpdates = List.copyOf(recentUpdates);
    }

    /** The last applied update, or null. */
    public UpdateRecord lastUpdate() {
        return recentUpdates.isEmpty() ? null : recentUpdates.get(recentUpdates.size() - 1);
    }
}
