package dev.rollout.engine;

/**
 * SGLang's request timeouts ({@code SGLANG_REQ_WAITING_TIMEOUT}, {@code SGLANG_REQ_RUNNING_TIMEOUT},
 * {@code SGLANG_TIMED_OUT_REQUEST_STATUS_CODE}): a sequence that waits in the queue longer than
 * {@code waitingSeconds}, or runs longer than {@code runningSeconds} since it was first admitted,
 * is aborted with {@code statusCode}, which the HTTP layer answers with. A value of 0 or less
 * turns that timeout off, as SGLang's -1 does.
 */
public record RequestTimeouts(double waitingSeconds, double runningSeconds, int statusCode) {
    public static final RequestTimeouts NONE = new RequestTimeouts(-1, -1, 503);
    static final String WAITING_MESSAGE = "Request waiting timeout reached.";
    static final String RUNNING_MESSAGE = "Request running timeout reached.";

    public RequestTimeouts {
        if (Double.isNaN(waitingSeconds) || Double.isNaN(runningSeconds))
            throw new IllegalArgumentException("timeouts must be numbers of seconds");
        if (statusCode < 400 || statusCode > 599)
            throw new IllegalArgumentException("a timed-out request's status must be an HTTP error (400-599), not " + statusCode);
    }

    public boolean any() {
        return waitingSeconds > 0 || runningSeconds > 0;
    }

    /** The waiting timeout in nanoseconds, or Long.MAX_VALUE when off. */
    long waitingNanos() {
        return waitingSeconds > 0 ? Math.max(1, (long) (waitingSeconds * 1e9)) : Long.MAX_VALUE;
    }

    long runningNanos() {
        return runningSeconds > 0 ? Math.max(1, (long) (runningSeconds * 1e9)) : Long.MAX_VALUE;
    }
}
