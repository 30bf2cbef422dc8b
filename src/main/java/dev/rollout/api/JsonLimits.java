package dev.rollout.api;

import dev.rollout.runtime.EngineService;
import jakarta.inject.Inject;
import jakarta.json.JsonValue;
import jakarta.ws.rs.ext.Provider;
import jakarta.ws.rs.ext.ReaderInterceptor;
import jakarta.ws.rs.ext.ReaderInterceptorContext;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.io.Reader;

/**
 * The limits every JSON request body is held to before a parser sees it: arrays and objects
 * nested at most {@link #MAX_DEPTH} levels, numbers of at most {@link #MAX_NUMBER_LENGTH}
 * characters. Parsson's own depth limit (1,000) fails with a bare RuntimeException (a 500), a
 * recursive reader can run out of stack below that, and a number of a million digits costs
 * seconds to turn into a BigDecimal. No request of the API nests deeper than a tool's JSON
 * schema inside a chat message (about 10 levels).
 *
 * <p>Applied in one place per way a body is read: {@link JsonBodies} (every route that takes an
 * InputStream and parses JSON-P), {@link TensorPushBody} (Jackson, streaming; its
 * StreamReadConstraints carry the same numbers), and {@link EntityCheck} for JAX-RS entity
 * parameters (JSON-P or JSON-B types, as {@code /env} takes them).
 */
public final class JsonLimits {
    /** Levels of arrays and objects, the body itself being level 1. */
    public static final int MAX_DEPTH = 64;
    /** Characters of one number, as Jackson's default (StreamReadConstraints.DEFAULT_MAX_NUM_LEN). */
    public static final int MAX_NUMBER_LENGTH = 1000;

    private JsonLimits() {}

    private static String describe(Object v) {
        return v instanceof JsonValue j ? "a JSON " + j.getValueType().name().toLowerCase() : v.getClass().getSimpleName();
    }

    static ApiException tooDeep(long at) {
        return ApiException.badRequest("request body nests arrays and objects more than " + MAX_DEPTH + " levels deep"
                + (at >= 0 ? " (at byte " + at + ")" : "") + "; the limit is " + MAX_DEPTH);
    }

    static ApiException numberTooLong(long at) {
        return ApiException.badRequest("request body has a number longer than " + MAX_NUMBER_LENGTH + " characters"
                + (at >= 0 ? " (at byte " + at + ")" : ""));
    }

    /**
     * Scans a body once, outside of strings, for nesting and number length; a 400 naming the
     * problem past either limit. Malformed JSON passes: the parser names that better.
     */
    static void check(byte[] body) {
        int depth = 0, number = 0;
        boolean inString = false, escaped = false;
        for (int i = 0; i < body.length; i++) {
            byte b = body[i];
            if (inString) {
                if (escaped) escaped = false;
                else if (b == '\\') escaped = true;
                else if (b == '"') inString = false;
                continue;
            }
            boolean numeric = (b >= '0' && b <= '9') || b == '-' || b == '+' || b == '.' || b == 'e' || b == 'E';
            if (numeric) {
                if (++number > MAX_NUMBER_LENGTH) throw numberTooLong(i - number + 1);
                continue;
            }
            number = 0;
            switch (b) {
                case '"' -> inString = true;
                case '[', '{' -> {
                    if (++depth > MAX_DEPTH) throw tooDeep(i);
                }
                case ']', '}' -> depth--;
                default -> { }
            }
        }
    }

    /**
     * The same limits for JAX-RS entity parameters (a {@code JsonObject} or a JSON-B record read
     * by the container's providers). Raw bodies (InputStream, Reader, byte[], String) pass
     * untouched: the routes that take them parse through JsonBodies or TensorPushBody, which
     * check for themselves, and a weight push must not be buffered.
     */
    @Provider
    public static class EntityCheck implements ReaderInterceptor {
        @Inject
        EngineService service;

        @Override
        public Object aroundReadFrom(ReaderInterceptorContext ctx) throws java.io.IOException {
            Class<?> type = ctx.getType();
            if (InputStream.class.isAssignableFrom(type) || Reader.class.isAssignableFrom(type) || type == byte[].class
                    || type == String.class)
                return ctx.proceed();
            Object value;
            try (JsonBodies.Body body = JsonBodies.read(ctx.getInputStream(), service.settings().maxBodyBytes())) {
                check(body.bytes);
                ctx.setInputStream(new ByteArrayInputStream(body.bytes));
                value = ctx.proceed();
            }
            // JSON-P's reader hands back whatever the body is: [1, 2] for a JsonObject parameter
            // reached the resource method as a JsonArray, which RESTEasy answered with a 500
            if (value != null && !type.isInstance(value))
                throw ApiException.badRequest("request body must be a JSON " + (JsonValue.class.isAssignableFrom(type)
                        ? type.getSimpleName().replace("Json", "").toLowerCase() : "object") + ", not " + describe(value));
            return value;
        }
    }
}
