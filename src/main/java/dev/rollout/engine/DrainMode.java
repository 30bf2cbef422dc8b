package dev.rollout.engine;

/**
 * What a drain does with the requests still running at its deadline. {@code WAIT} is SGLang's
 * drain: it only watches, admits and cuts nothing, and leaves the engine as it was. {@code
 * RETRACT} and {@code ABORT} are ours: new requests queue while the running ones finish, and at
 * the deadline the rest are retracted (kept, KV freed) or aborted (partial output); either way the
 * engine is left paused, so that an update that follows meets an engine that holds still.
 */
public enum DrainMode { WAIT, RETRACT, ABORT }
