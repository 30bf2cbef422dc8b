package dev.rollout.client;

/**
 * A call to a rollout server that failed: the message names the server, the call and the cause
 * (the server's own message for a refused call).
 */
public final class RolloutClientException extends RuntimeException {
    private final int status;

    RolloutClientException(String message, int status, Throwable cause) {
        super(message, cause);
        this.status = status;
    }

    /** The HTTP status of a refused call, or 0 when no answer came (connection, timeout). */
    public int status() {
        return status;
    }
}
