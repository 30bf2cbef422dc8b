package dev.rollout.engine;

/**
 * One applied weight update, as the status page and {@code /rl/state} show it.
 *
 * @param transport how the tensors arrived ("safetensors", "session", "disk", ...)
 * @param bytes     payload size
 * @param seconds   time to copy it into the model
 * @param atMillis  wall-clock time it was applied
 */
public record UpdateRecord(String version, String transport, int numTensors, long bytes, double seconds, long atMillis) {}
