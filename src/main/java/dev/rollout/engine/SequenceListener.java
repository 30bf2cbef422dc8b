package dev.rollout.engine;

/** Receives a sequence's snapshots on the engine thread; implementations must return quickly. */
@FunctionalInterface
public interface SequenceListener {
    void onOutput(SequenceOutput output);
}
