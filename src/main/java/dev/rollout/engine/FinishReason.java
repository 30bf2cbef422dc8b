package dev.rollout.engine;

/**
 * Why a sequence stopped, in SGLang's shape: {@code stop} (with the matched token id, string, or
 * {@code stop_regex} pattern), {@code length} (with the limit) or {@code abort} (with a message, and
 * for an abort the server chose, such as a timeout, the HTTP status SGLang answers it with; 0 otherwise).
 */
public record FinishReason(Type type, Object matched, int length, String message, int statusCode) {
    public enum Type { STOP, LENGTH, ABORT }

    public static FinishReason stopToken(int tokenId) {
        return new FinishReason(Type.STOP, tokenId, 0, null, 0);
    }

    public static FinishReason stopString(String s) {
        return new FinishReason(Type.STOP, s, 0, null, 0);
    }

    /** SGLang reports the pattern itself as what matched, not the text it matched. */
    public static FinishReason stopRegex(String pattern) {
        return new FinishReason(Type.STOP, pattern, 0, null, 0);
    }

    public static FinishReason length(int length) {
        return new FinishReason(Type.LENGTH, null, length, null, 0);
    }

    public static FinishReason abort(String message) {
        return new FinishReason(Type.ABORT, null, 0, message, 0);
    }

    /** An abort that SGLang turns into an HTTP error (its {@code FINISH_ABORT} with a {@code status_code}). */
    public static FinishReason abort(String message, int statusCode) {
        return new FinishReason(Type.ABORT, null, 0, message, statusCode);
    }
}
