package dev.rollout.constrain;

import java.util.Arrays;

/**
 * Hopcroft's DFA minimization, O(n·k·log n), on a flat table with a refinable partition. Moore's
 * simpler refinement needs as many rounds as the longest chain of states, and a string of
 * {@code maxLength} 1,000 is such a chain: quadratic, minutes where this takes milliseconds.
 */
final class Hopcroft {
    private Hopcroft() {}

    /**
     * The block of each state; equal blocks are equivalent states. States {@code next < 0} point
     * to are a dead sink, which is its own block (never returned: it is state {@code n}).
     */
    static int[] blocks(int n, int k, int[] next, boolean[] accept, long deadline, ConstraintLimits limits) {
        int total = n + 1;  // + the dead sink
        int dead = n;
        // inverse transitions, per class: inv[c] lists (by target) the sources
        int[][] invStart = new int[k][total + 1];
        int[][] inv = new int[k][];
        for (int c = 0; c < k; c++) {
            int[] start = invStart[c];
            for (int s = 0; s < total; s++) start[target(next, k, n, s, c) + 1]++;
            for (int t = 0; t < total; t++) start[t + 1] += start[t];
            int[] fill = Arrays.copyOf(start, total);
            inv[c] = new int[total];
            for (int s = 0; s < total; s++) inv[c][fill[target(next, k, n, s, c)]++] = s;
        }
        // the partition: elements grouped by block; a block is [first, end) of elems
        int[] elems = new int[total], loc = new int[total], blockOf = new int[total];
        int[] first = new int[total], end = new int[total], marked = new int[total];
        int blocks = 0;
        int pos = 0;
        for (int pass = 0; pass < 2; pass++) {
            int startPos = pos;
            for (int s = 0; s < total; s++) {
                boolean acc = s < n && accept[s];
                if (acc == (pass == 0)) {
                    elems[pos] = s;
                    loc[s] = pos++;
                    blockOf[s] = blocks;
                }
            }
            if (pos > startPos) {
                first[blocks] = startPos;
                end[blocks] = pos;
                blocks++;
            }
        }
        boolean[] inWork = new boolean[total * k];
        int[] work = new int[total * k];  // stack of block * k + c
        int top = 0;
        for (int c = 0; c < k; c++) {
            int b = blocks == 1 || end[0] - first[0] <= end[1] - first[1] ? 0 : 1;
            work[top++] = b * k + c;
            inWork[b * k + c] = true;
        }
        int[] touched = new int[total];
        int[] members = new int[total];
        int steps = 0;
        while (top > 0) {
            if ((++steps & 1023) == 0 && AutomatonBuilder.cpuNanos() > deadline)
                throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile (minimizing)");
            int item = work[--top];
            inWork[item] = false;
            int splitter = item / k, c = item % k;
            int nTouched = 0;
            // mark every state whose c-successor lies in the splitter
            // (a copy: marking reorders elements inside blocks, the splitter's own included)
            int size = end[splitter] - first[splitter];
            System.arraycopy(elems, first[splitter], members, 0, size);
            for (int i = 0; i < size; i++) {
                int t = members[i];
                for (int j = invStart[c][t]; j < invStart[c][t + 1]; j++) {
                    int s = inv[c][j];
                    int b = blockOf[s];
                    if (loc[s] < first[b] + marked[b]) continue;  // already marked
                    if (marked[b] == 0) touched[nTouched++] = b;
                    int swapPos = first[b] + marked[b], other = elems[swapPos];
                    elems[swapPos] = s;
                    elems[loc[s]] = other;
                    loc[other] = loc[s];
                    loc[s] = swapPos;
                    marked[b]++;
                }
            }
            for (int x = 0; x < nTouched; x++) {
                int b = touched[x];
                int m = marked[b];
                marked[b] = 0;
                if (m == end[b] - first[b]) continue;  // all of it: no split
                int nb = blocks++;
                first[nb] = first[b];
                end[nb] = first[b] + m;
                first[b] = end[nb];
                for (int i = first[nb]; i < end[nb]; i++) blockOf[elems[i]] = nb;
                int smaller = end[nb] - first[nb] <= end[b] - first[b] ? nb : b;
                for (int cc = 0; cc < k; cc++) {
                    int add = inWork[b * k + cc] ? nb : smaller;
                    if (!inWork[add * k + cc]) {
                        inWork[add * k + cc] = true;
                        work[top++] = add * k + cc;
                    }
                }
            }
        }
        return blockOf;
    }

    private static int target(int[] next, int k, int n, int s, int c) {
        if (s == n) return n;
        int t = next[s * k + c];
        return t < 0 ? n : t;
    }
}
