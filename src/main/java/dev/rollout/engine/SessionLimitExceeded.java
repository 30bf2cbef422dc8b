package dev.rollout.engine;

/**
 * A session operation refused because a server limit is reached (open sessions, reserved pin
 * tokens, requests remembered by one session): the state is fine, the client must wait or close
 * something. The HTTP side answers 429.
 */
public final class SessionLimitExceeded extends IllegalStateException {
    public SessionLimitExceeded(String message) {
        super(message);
    }
}
