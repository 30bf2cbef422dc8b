package dev.rollout.engine;

import java.util.Arrays;

/** A growable int array: token ids and block tables without boxing. */
public final class IntList {
    private int[] data;
    private int size;

    public IntList() {
        this(16);
    }

    public IntList(int capacity) {
        data = new int[Math.max(capacity, 4)];
    }

    public static IntList of(int[] values) {
        IntList l = new IntList(values.length + 16);
        System.arraycopy(values, 0, l.data, 0, values.length);
        l.size = values.length;
        return l;
    }

    public void add(int v) {
        if (size == data.length) data = Arrays.copyOf(data, size * 2);
        data[size++] = v;
    }

    public int get(int i) {
        if (i >= size) throw new IndexOutOfBoundsException(i);
        return data[i];
    }

    public int size() {
        return size;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    public void clear() {
        size = 0;
    }

    /**
     * Empties the list into a fresh array, leaving the old one to whoever holds a prefix of it
     * ({@link #backing()}): a list whose prefixes are handed out must never write over them.
     */
    void clearDetached() {
        data = new int[data.length];
        size = 0;
    }

    public int last() {
        return data[size - 1];
    }

    /**
     * The backing array, uncopied: its first {@link #size()} elements are the list. Adding replaces
     * it when it is full and writes only past the size, so for a list that is only added to, a
     * prefix handed out stays as it was (what {@link RoutedExperts} relies on).
     */
    int[] backing() {
        return data;
    }

    public int[] toArray() {
        return Arrays.copyOf(data, size);
    }

    public int[] toArray(int from, int to) {
        return Arrays.copyOfRange(data, from, to);
    }

    public boolean contains(int v) {
        for (int i = 0; i < size; i++) if (data[i] == v) return true;
        return false;
    }
}
