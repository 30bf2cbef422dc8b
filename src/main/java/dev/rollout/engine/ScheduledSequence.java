package dev.rollout.engine;

/**
 * One sequence's share of a step: compute {@code numTokens} tokens from position
 * {@code start}; {@code sample} when they reach the end of its known tokens.
 */
public record ScheduledSequence(Sequence seq, int start, int numTokens, boolean sample) {}
