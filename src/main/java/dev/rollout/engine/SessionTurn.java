package dev.rollout.engine;

import java.util.Objects;

/**
 * One request's place in a session: SGLang's {@code session_params}. The request's prompt is
 * what it sends, after the history of the earlier request {@code parentRid} (its prompt and its
 * output, cut at {@code offset}); the engine puts the two together on its own thread, where that
 * history lives.
 *
 * @param sessionId          an open session
 * @param parentRid          the earlier request of the session to continue, or null for none (a new root)
 * @param offset             where to cut the parent's history, as a Python slice end ({@code [:offset]}):
 *                           0 keeps it whole, a negative value counts from its end
 * @param replace            cut the parent short if it still runs, and forget what was built on it
 *                           (with no parent: forget the whole session)
 * @param dropPreviousOutput continue from the parent's prompt only, without its output
 */
public record SessionTurn(String sessionId, String parentRid, int offset, boolean replace, boolean dropPreviousOutput) {
    public SessionTurn {
        Objects.requireNonNull(sessionId, "sessionId");
    }
}
