package dev.rollout.engine;

/**
 * The one state machine an RL trainer sees (GET /rl/state). {@code SERVING} generates;
 * {@code PAUSED} holds requests (continue resumes); {@code DRAINING} finishes what runs and
 * admits nothing new; {@code UPDATING} is waiting to apply or applying new weights;
 * {@code RELEASED} has given memory back and cannot generate until it is resumed.
 */
public enum RlState { SERVING, PAUSED, DRAINING, UPDATING, RELEASED }
