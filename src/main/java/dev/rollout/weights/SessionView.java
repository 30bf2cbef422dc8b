package dev.rollout.weights;

/** The open update session, as {@code /rl/state} shows it. */
public record SessionView(String updateId, int stagedTensors, long stagedBytes, int buckets, double secondsLeft) {}
