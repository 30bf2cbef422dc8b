package dev.rollout.constrain;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A set of Unicode scalar values (code points without the surrogates, which UTF-8 cannot encode),
 * as sorted, disjoint, non-adjacent closed ranges {@code [lo0, hi0, lo1, hi1, ...]}.
 * Regex character classes are sets of code points, not of UTF-16 units, so that {@code .{3}}
 * means three characters whatever plane they are on.
 */
public record CodePointSet(int[] ranges) {
    public static final int MAX = 0x10FFFF;
    public static final CodePointSet EMPTY = new CodePointSet(new int[0]);
    /** Every scalar value: what {@code [^x]} complements within. */
    public static final CodePointSet ALL = range(0, MAX);

    public CodePointSet {
        ranges = normalize(ranges);
    }

    public static CodePointSet of(int codePoint) {
        return range(codePoint, codePoint);
    }

    public static CodePointSet range(int lo, int hi) {
        if (lo > hi) throw new IllegalArgumentException("bad character range: " + hex(lo) + "-" + hex(hi));
        return new CodePointSet(new int[] {lo, hi});
    }

    public static CodePointSet ofRanges(int... ranges) {
        return new CodePointSet(ranges.clone());
    }

    public boolean isEmpty() {
        return ranges.length == 0;
    }

    public boolean contains(int cp) {
        for (int i = 0; i < ranges.length; i += 2) if (cp >= ranges[i] && cp <= ranges[i + 1]) return true;
        return false;
    }

    public CodePointSet union(CodePointSet o) {
        int[] r = Arrays.copyOf(ranges, ranges.length + o.ranges.length);
        System.arraycopy(o.ranges, 0, r, ranges.length, o.ranges.length);
        return new CodePointSet(r);
    }

    /** Everything in {@link #ALL} that is not in this set. */
    public CodePointSet complement() {
        List<Integer> out = new ArrayList<>();
        int next = 0;
        for (int i = 0; i < ranges.length; i += 2) {
            if (ranges[i] > next) { out.add(next); out.add(ranges[i] - 1); }
            next = ranges[i + 1] + 1;
        }
        if (next <= MAX) { out.add(next); out.add(MAX); }
        return new CodePointSet(out.stream().mapToInt(Integer::intValue).toArray());
    }

    public CodePointSet intersect(CodePointSet o) {
        return complement().union(o.complement()).complement();
    }

    public CodePointSet minus(CodePointSet o) {
        return intersect(o.complement());
    }

    private static int[] normalize(int[] in) {
        if (in.length % 2 != 0) throw new IllegalArgumentException("ranges come in pairs");
        int n = in.length / 2;
        long[] pairs = new long[n];
        for (int i = 0; i < n; i++) {
            int lo = in[2 * i], hi = in[2 * i + 1];
            if (lo < 0 || hi > MAX || lo > hi) throw new IllegalArgumentException("bad code point range " + lo + ".." + hi);
            pairs[i] = ((long) lo << 32) | hi;
        }
        Arrays.sort(pairs);
        List<Integer> out = new ArrayList<>();
        for (long p : pairs) {
            int lo = (int) (p >>> 32), hi = (int) p;
            // surrogates are not scalar values: drop them (a UTF-8 text cannot hold one)
            if (lo <= 0xDFFF && hi >= 0xD800) {
                if (lo < 0xD800) addRange(out, lo, 0xD7FF);
                if (hi > 0xDFFF) addRange(out, 0xE000, hi);
            } else {
                addRange(out, lo, hi);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static void addRange(List<Integer> out, int lo, int hi) {
        int k = out.size();
        if (k > 0 && lo <= out.get(k - 1) + 1) {
            out.set(k - 1, Math.max(out.get(k - 1), hi));
        } else {
            out.add(lo);
            out.add(hi);
        }
    }

    static String hex(int cp) {
        return String.format("U+%04X", cp);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CodePointSet s && Arrays.equals(ranges, s.ranges);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(ranges);
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < ranges.length; i += 2) {
            b.append(hex(ranges[i]));
            if (ranges[i + 1] != ranges[i]) b.append('-').append(hex(ranges[i + 1]));
            if (i + 2 < ranges.length) b.append(' ');
        }
        return b.append(']').toString();
    }
}
