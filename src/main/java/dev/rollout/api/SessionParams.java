package dev.rollout.api;

import dev.rollout.engine.SessionLimitExceeded;
import dev.rollout.engine.SessionTurn;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code session_params} of a {@code /generate} call (SGLang's {@code SessionParams}: {@code id},
 * {@code rid}, {@code offset}, {@code replace}, {@code drop_previous_output}), read into a
 * {@link SessionTurn} for the engine, and the engine's verdict on it turned into HTTP: the engine
 * alone knows the session's history, so it checks the turn, and the HTTP thread waits for that
 * check before it answers anything.
 */
final class SessionParams {
    private static final Set<String> KEYS = Set.of("id", "rid", "offset", "replace", "drop_previous_output");
    /** How long the HTTP thread waits for the engine to accept or refuse a turn (it runs between two steps). */
    static final double ADMISSION_TIMEOUT_S = 30;

    private SessionParams() {}

    /** Whether the body continues a session: {@code session_params} with an {@code id} (SGLang ignores it without one). */
    static boolean present(JsonObject o) {
        return Fields.present(o, "session_params") && o.get("session_params") instanceof JsonObject sp && Fields.present(sp, "id");
    }

    /** The turn the body asks for, or null when it names no session. */
    static SessionTurn parse(JsonObject o, GenerateRequest req, HfTokenizer tokenizer) {
        if (!Fields.present(o, "session_params")) return null;
        JsonValue v = o.get("session_params");
        if (!(v instanceof JsonObject sp)) throw Fields.type("session_params", "an object", v);
        for (String k : sp.keySet())
            if (!KEYS.contains(k)) throw ApiException.badRequest("session_params has an unknown key '" + k + "' (known: " + KEYS + ")");
        if (!Fields.present(sp, "id")) return null;
        String id = Fields.string(sp.get("id"), "session_params.id");
        if (req.answersWithList())
            throw ApiException.badRequest("session_params continues a session with one prompt and n = 1; send each turn as its own request");
        String rid = Fields.present(sp, "rid") ? Fields.string(sp.get("rid"), "session_params.rid") : null;
        int offset = Fields.present(sp, "offset") ? Fields.int32(sp.get("offset"), "session_params.offset") : 0;
        boolean replace = Fields.present(sp, "replace") && Fields.bool(sp.get("replace"), "session_params.replace");
        boolean drop = Fields.present(sp, "drop_previous_output")
                && Fields.bool(sp.get("drop_previous_output"), "session_params.drop_previous_output");
        return new SessionTurn(id, rid, offset, replace, drop, bosTokenId(tokenizer));
    }

    /** The token the tokenizer puts before every text (Llama's BOS), or -1 when it adds none (Qwen). */
    static int bosTokenId(HfTokenizer tokenizer) {
        if (tokenizer == null) return -1;
        int[] with = tokenizer.encode("x", true), without = tokenizer.encode("x", false);
        return with.length > without.length && with.length > 0 && (without.length == 0 || with[0] != without[0]) ? with[0] : -1;
    }

    /**
     * Waits for the engine to take a generation that continues a session. A refused turn is a
     * 400 naming the problem (a server limit: 429), before any byte of the answer is written; no
     * verdict in time is a 503, after {@code onTimeout} has withdrawn the request.
     */
    static void awaitAdmission(CompletableFuture<Integer> admitted, Runnable onTimeout) {
        try {
            admitted.get((long) (ADMISSION_TIMEOUT_S * 1000), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            onTimeout.run();
            throw new ApiException(503, "the engine did not take the session's turn within " + ADMISSION_TIMEOUT_S + " s");
        } catch (ExecutionException e) {
            throw refusal(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            onTimeout.run();
            throw new ApiException(503, "interrupted");
        }
    }

    /** The HTTP error for a session operation the engine refused. */
    static ApiException refusal(Throwable c) {
        if (c instanceof SessionLimitExceeded) return new ApiException(429, c.getMessage());
        if (c instanceof IllegalArgumentException) return new ApiException(400, c.getMessage());
        if (c instanceof IllegalStateException) return new ApiException(503, c.getMessage());
        return new ApiException(500, "the engine failed: " + c);
    }
}
