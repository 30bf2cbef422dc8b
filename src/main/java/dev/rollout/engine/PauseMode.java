package dev.rollout.engine;

/**
 * What pausing does to the requests that run: {@code ABORT} ends them with their partial output;
 * {@code RETRACT} frees their KV to recompute later; {@code IN_PLACE} keeps them as they are.
 */
public enum PauseMode { ABORT, RETRACT, IN_PLACE }
