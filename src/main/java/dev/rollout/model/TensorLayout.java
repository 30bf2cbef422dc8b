package dev.rollout.model;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The checks that every description of tensors in a buffer must pass before anything is sized
 * from it: safetensors headers (checkpoint files and pushes), flattened-bucket manifests and CUDA
 * IPC descriptors. Shapes and offsets come from requests; an element count that overflows, a
 * negative dimension, or ranges that overlap would otherwise reach libtorch (a 500 from
 * {@code numel}) or copy the wrong bytes into the served weights.
 */
public final class TensorLayout {
    private TensorLayout() {}

    /** One tensor's byte range {@code [begin, end)} in a buffer, by name, for messages. */
    public record Range(String name, long begin, long end) {}

    /**
     * The element count of {@code shape}; an IOException naming {@code what} for a negative
     * dimension or a count past 2^63 - 1 (the safetensors reference refuses the same with
     * checked arithmetic: ValidationOverflow).
     */
    public static long numel(long[] shape, String what) throws IOException {
        long n = 1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) throw new IOException(what + ": dimension " + i + " of the shape is negative (" + shape[i] + ")");
            try {
                n = Math.multiplyExact(n, shape[i]);
            } catch (ArithmeticException overflow) {
                throw new IOException(what + ": the shape " + java.util.Arrays.toString(shape) + " has more elements than 2^63 - 1");
            }
        }
        return n;
    }

    /** The bytes of a tensor of {@code shape} with {@code bytesPerElement}, checked as {@link #numel}. */
    public static long nbytes(long[] shape, int bytesPerElement, String what) throws IOException {
        try {
            return Math.multiplyExact(numel(shape, what), bytesPerElement);
        } catch (ArithmeticException overflow) {
            throw new IOException(what + ": the shape " + java.util.Arrays.toString(shape) + " holds more bytes than 2^63 - 1");
        }
    }

    /**
     * Checks that the ranges, sorted by offset, tile {@code [0, size)} exactly: the first begins
     * at 0, each begins where the one before ended, the last ends at {@code size}. This is the
     * safetensors format's rule (the reference's {@code Metadata::validate}: InvalidOffset,
     * MetadataIncompleteBuffer), and what SGLang's FlattenedTensorBucket produces. Overlapping
     * ranges would write one tensor's bytes into another; gaps would hide bytes nobody checked.
     */
    public static void checkTiling(List<Range> ranges, long size, String where) throws IOException {
        List<Range> sorted = new ArrayList<>(ranges);
        sorted.sort(Comparator.comparingLong(Range::begin).thenComparingLong(Range::end));
        long at = 0;
        for (Range r : sorted) {
            if (r.begin() < 0 || r.end() < r.begin())
                throw new IOException(where + ": " + r.name() + " has the byte range [" + r.begin() + ", " + r.end() + "), which is not a range");
            if (r.begin() != at)
                throw new IOException(where + ": " + r.name() + " starts at byte " + r.begin() + " but the tensor before it ends at "
                        + at + (r.begin() < at ? " (the ranges overlap)" : " (a gap)") + "; the tensors' byte ranges must follow "
                        + "one another without gaps or overlaps");
            at = r.end();
        }
        if (at != size)
            throw new IOException(where + ": the tensors' byte ranges end at " + at + " but the data has " + size
                    + " bytes; the ranges must cover the data exactly");
    }
}
