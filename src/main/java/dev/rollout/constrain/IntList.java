package dev.rollout.constrain;

import java.util.Arrays;

/** A growable int array: the builders' transition tables while they grow. */
final class IntList {
    private int[] a = new int[1024];
    private int size;

    void add(int v) {
        if (size == a.length) a = Arrays.copyOf(a, size * 2);
        a[size++] = v;
    }

    int[] toArray() {
        return Arrays.copyOf(a, size);
    }
}
