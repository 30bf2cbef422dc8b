package dev.rollout.engine;

/**
 * Hooks for metrics, called in the order the engine makes them: on the engine thread, or, in an
 * {@link EngineLoop}, a step's calls on its output relay's thread, before that step's snapshots
 * reach their listeners (recording metrics is no work for the thread the GPU waits on).
 */
public interface EngineObserver {
    EngineObserver NONE = new EngineObserver() {};

    /**
     * After each step: {@code numTokens} the model computed (prompt chunks and decode positions),
     * {@code sampledTokens} it generated (one per sequence that sampled), {@code modelSeconds} in
     * the model runner (inputs, forward, sampling, the sampled tokens back on the host),
     * {@code hostSeconds} applying them (stops, snapshots, listeners), time in which the GPU waits
     * for the next step.
     */
    default void onStep(int numSequences, int numTokens, int sampledTokens, double modelSeconds, double hostSeconds) {}

    default void onInterTokenLatency(double seconds) {}

    default void onFinished(SequenceOutput output) {}
}
