package dev.rollout.engine;

/**
 * What sessions may hold, so that no client can take the KV cache for itself.
 *
 * @param maxOpen                sessions open at once
 * @param maxPinnedTokens        KV tokens that all open sessions together may reserve for their pins
 *                               (each reserves its {@code capacity_of_str_len} when it opens)
 * @param maxRequestsPerSession  requests one session remembers (each keeps its tokens for the next turns)
 */
public record SessionLimits(int maxOpen, long maxPinnedTokens, int maxRequestsPerSession) {
    public SessionLimits {
        if (maxOpen < 0 || maxPinnedTokens < 0 || maxRequestsPerSession <= 0)
            throw new IllegalArgumentException("session limits cannot be negative: " + this);
    }

    /** The defaults for a cache of {@code kvTokens}: 1,024 sessions pinning at most half of it, 4,096 requests each. */
    public static SessionLimits defaults(long kvTokens) {
        return new SessionLimits(1024, kvTokens / 2, 4096);
    }
}
