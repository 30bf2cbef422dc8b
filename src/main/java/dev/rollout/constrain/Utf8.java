package dev.rollout.constrain;

import java.util.ArrayList;
import java.util.List;

/**
 * Code point ranges as UTF-8 byte-range sequences: {@code [U+0080, U+07FF]} is
 * {@code [C2-DF][80-BF]}, and every range splits into a few such sequences (the scheme of Russ
 * Cox's RE2 and of Rust's regex-syntax). The automata run on bytes because tokens are bytes: a
 * byte-level BPE token may end in the middle of a character.
 */
final class Utf8 {
    private Utf8() {}

    /** Each element: one sequence, as {lo0, hi0, lo1, hi1, ...} byte bounds, 1 to 4 bytes long. */
    static List<int[]> sequences(CodePointSet set) {
        List<int[]> out = new ArrayList<>();
        int[] r = set.ranges();
        for (int i = 0; i < r.length; i += 2) split(r[i], r[i + 1], out);
        return out;
    }

    private static void split(int lo, int hi, List<int[]> out) {
        // never across an encoding-length boundary
        for (int max : new int[] {0x7F, 0x7FF, 0xFFFF}) {
            if (lo <= max && max < hi) {
                split(lo, max, out);
                split(max + 1, hi, out);
                return;
            }
        }
        if (hi <= 0x7F) {
            out.add(new int[] {lo, hi});
            return;
        }
        // all continuation bytes of lo..hi must vary over whole sub-ranges: split where they do not
        for (int i = 1; i < 4; i++) {
            int m = (1 << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m)) {
                if ((lo & m) != 0) {
                    split(lo, lo | m, out);
                    split((lo | m) + 1, hi, out);
                    return;
                }
                if ((hi & m) != m) {
                    split(lo, (hi & ~m) - 1, out);
                    split(hi & ~m, hi, out);
                    return;
                }
            }
        }
        byte[] a = encode(lo), b = encode(hi);
        int[] seq = new int[a.length * 2];
        for (int k = 0; k < a.length; k++) {
            seq[2 * k] = a[k] & 0xFF;
            seq[2 * k + 1] = b[k] & 0xFF;
        }
        out.add(seq);
    }

    static byte[] encode(int cp) {
        return new String(Character.toChars(cp)).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }
}
