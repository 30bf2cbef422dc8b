package dev.rollout.engine;

/** Receives a sequence's snapshots on the engine thread (or {@link OutputRelay}'s); implementations must return quickly. */
@FunctionalInterface
public interface SequenceListener {
    void onOutput(SequenceOutput output);
}
