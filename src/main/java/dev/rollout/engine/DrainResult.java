package dev.rollout.engine;

import java.util.List;

/**
 * What a drain did: the requests that finished in time, and the partial outputs of those it cut
 * at the deadline, retracted or aborted as {@code cutMode} says.
 */
public record DrainResult(List<String> finished, List<SequenceOutput> cut, PauseMode cutMode) {
    public DrainResult {
        finished = List.copyOf(finished);
        cut = List.copyOf(cut);
    }
}
