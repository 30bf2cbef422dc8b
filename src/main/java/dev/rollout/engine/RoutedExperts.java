package dev.rollout.engine;

import java.util.Arrays;

/**
 * A sequence's routed experts so far, as a snapshot hands them out: (positions, layers, topK)
 * int32 values, flattened. It shares the sequence's append-only array rather than copying it on
 * the engine thread at every streamed snapshot (a long generation of Qwen3-30B-A3B holds 384
 * values a position); the reader copies what it needs.
 *
 * @param values the first {@code length} of which are this snapshot's
 */
public record RoutedExperts(int[] values, int length) {
    public RoutedExperts {
        if (length < 0 || length > values.length) throw new IllegalArgumentException("length " + length + " of " + values.length);
    }

    /** Values {@code [from, length)}, copied. */
    public int[] copy(int from) {
        return Arrays.copyOfRange(values, Math.min(from, length), length);
    }
}
