package dev.rollout.engine;

import java.util.AbstractList;
import java.util.Arrays;
import java.util.List;
import java.util.RandomAccess;

/**
 * A list the engine thread only appends to, and whose prefixes it hands out without copying: a
 * sequence's logprobs, which every streamed snapshot carries. Copying them per snapshot
 * ({@code List.copyOf}) cost O(n) on the engine thread for every chunk of a streamed request, O(n²)
 * over the request; a prompt of 3,000 scored positions copied 3,000 references a chunk (issue #20,
 * "the server's hot path"). An append writes only past the size, and a full array is replaced by
 * a larger copy, so a prefix handed out never changes: what {@link IntList#backing()} does for
 * {@link RoutedExperts}.
 */
final class AppendOnlyList<T> {
    private Object[] data = new Object[8];
    private int size;

    void add(T value) {
        if (size == data.length) data = Arrays.copyOf(data, size * 2);
        data[size++] = value;
    }

    void addAll(List<? extends T> values) {
        if (size + values.size() > data.length) data = Arrays.copyOf(data, Math.max(size * 2, size + values.size()));
        for (T v : values) data[size++] = v;
    }

    int size() {
        return size;
    }

    boolean isEmpty() {
        return size == 0;
    }

    /** The elements added so far, as an immutable list that later appends leave as it is. */
    List<T> prefix() {
        return size == 0 ? List.of() : new Prefix<>(data, size);
    }

    private static final class Prefix<T> extends AbstractList<T> implements RandomAccess {
        private final Object[] data;
        private final int size;

        Prefix(Object[] data, int size) {
            this.data = data;
            this.size = size;
        }

        @Override
        @SuppressWarnings("unchecked")
        public T get(int i) {
            if (i < 0 || i >= size) throw new IndexOutOfBoundsException("index " + i + " of " + size);
            return (T) data[i];
        }

        @Override
        public int size() {
            return size;
        }
    }
}
