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
 * @param bosTokenId         the tokenizer's BOS token, or -1: a turn that continues a parent drops
 *                           it from the front of its input, as SGLang does (the history has one already)
 */
public record SessionTurn(String sessionId, String parentRid, int offset, boolean replace, boolean dropPreviousOutput,
                          int bosTokenId) {
    public SessionTurn {
        Objects.requireNonNull(sessionId, "sessionId");
    }

    public SessionTurn(String sessionId, String parentRid, int offset, boolean replace, boolean dropPreviousOutput) {
        this(sessionId, parentRid, offset, replace, dropPreviousOutput, -1);
    }
}
