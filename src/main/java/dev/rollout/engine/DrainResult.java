package dev.rollout.engine;

import java.util.List;

/**
 * What a drain did.
 *
 * @param remaining requests (sequences) still running or waiting when the drain answered: 0 is
 *                  SGLang's {@code success}
 * @param finished  the requests that were running when the drain began and finished in time
 * @param cut       the partial outputs of those it cut at the deadline (RETRACT or ABORT only)
 * @param mode      what it did at the deadline
 * @param paused    whether it left the engine paused (RETRACT and ABORT do)
 */
public record DrainResult(int remaining, List<String> finished, List<SequenceOutput> cut, DrainMode mode, boolean paused) {
    public DrainResult {
        finished = List.copyOf(finished);
        cut = List.copyOf(cut);
    }

    /** SGLang's answer: nothing was left in flight. */
    public boolean success() {
        return remaining == 0;
    }
}
