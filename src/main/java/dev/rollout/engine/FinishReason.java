package dev.rollout.engine;

/**
 * Why a sequence stopped, in SGLang's shape: {@code stop} (with the matched token id or string),
 * {@code length} (with the limit) or {@code abort} (with a message).
 */
public record FinishReason(Type type, Object matched, int length, String message) {
    public enum Type { STOP, LENGTH, ABORT }

    public static FinishReason stopToken(int tokenId) {
        return new FinishReason(Type.STOP, tokenId, 0, null);
    }

    public static FinishReason stopString(String s) {
        return new FinishReason(Type.STOP, s, 0, null);
    }

    public static FinishReason length(int length) {
        return new FinishReason(Type.LENGTH, null, length, null);
    }

    public static FinishReason abort(String message) {
        return new FinishReason(Type.ABORT, null, 0, message);
    }
}
