package dev.rollout.engine;

/** Hooks for metrics, called on the engine thread. */
public interface EngineObserver {
    EngineObserver NONE = new EngineObserver() {};

    default void onStep(int numSequences, int numTokens, double seconds) {}

    default void onInterTokenLatency(double seconds) {}

    default void onFinished(SequenceOutput output) {}
}
