package dev.rollout.client;

/**
 * What the server reports for an applied weight update.
 *
 * @param weightVersion  the version now served
 * @param numTensors     tensors written
 * @param bytes          bytes received
 * @param seconds        the server's time for the update
 */
public record PushResult(String weightVersion, int numTensors, long bytes, double seconds) {}
