package dev.rollout.weights;

import dev.rollout.engine.UpdateRecord;

/**
 * What a weight action came to. The HTTP resource renders each kind; it decides nothing.
 */
public sealed interface WeightOutcome {

    /** The update is served now. */
    record Applied(UpdateRecord update) implements WeightOutcome {}

    /** The bucket waits in the open session; {@code fresh} is false for a retried bucket, which was dropped. */
    record Staged(String updateId, int numTensors, Long bucketSeq, boolean fresh) implements WeightOutcome {}

    /** A retried bucket outside a session whose first delivery was applied: nothing was done again. */
    record AppliedBefore(String updateId, long bucketSeq, String weightVersion) implements WeightOutcome {}

    /** A session is open (or was already, for a retried begin with the same id). */
    record Begun(String updateId) implements WeightOutcome {}

    /** The open session was dropped; the served weights never changed. */
    record Aborted(String updateId) implements WeightOutcome {}

    /** This server joined a weight-update group (init_weights_update_group). */
    record GroupJoined(WeightGroups.Joined group) implements WeightOutcome {}

    /** This server left a weight-update group (destroy_weights_update_group). */
    record GroupLeft(String groupName) implements WeightOutcome {}

    /** Nothing changed, for the reason given. */
    record Refused(Reason reason, String message) implements WeightOutcome {}

    /** Why an action was refused, as far as the caller can act on it. */
    enum Reason {
        /** The payload or the request is wrong: fix it before sending again. */
        BAD_REQUEST,
        /** The state refuses it now (a session is or is not open, requests run, memory is released). */
        CONFLICT,
        /** The payload is over its size limit. */
        TOO_LARGE,
        /** The engine did not answer in time, or is stopping; try again later. */
        UNAVAILABLE,
        /** The engine failed while applying it: a bug, logged by the server. */
        FAILED
    }
}
