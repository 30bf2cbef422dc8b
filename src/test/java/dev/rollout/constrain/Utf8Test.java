package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Utf8Test {
    /** A code point's encoding fits one of the sequences exactly when the set holds it. */
    @Test
    void sequencesCoverExactlyTheSet() {
        Random r = new Random(7);
        for (int round = 0; round < 200; round++) {
            int a = edgy(r), b = edgy(r);
            CodePointSet set = CodePointSet.range(Math.min(a, b), Math.max(a, b)).union(CodePointSet.of(edgy(r)));
            if (r.nextBoolean()) set = set.complement();
            List<int[]> seqs = Utf8.sequences(set);
            for (int k = 0; k < 300; k++) {
                int cp = k < 100 ? edgy(r) : r.nextInt(CodePointSet.MAX + 1);
                if (cp >= 0xD800 && cp <= 0xDFFF) continue;
                byte[] enc = Utf8.encode(cp);
                boolean fits = seqs.stream().anyMatch(s -> fits(s, enc));
                assertEquals(set.contains(cp), fits, set + " " + CodePointSet.hex(cp));
            }
        }
    }

    static boolean fits(int[] seq, byte[] enc) {
        if (seq.length != enc.length * 2) return false;
        for (int i = 0; i < enc.length; i++) if ((enc[i] & 0xFF) < seq[2 * i] || (enc[i] & 0xFF) > seq[2 * i + 1]) return false;
        return true;
    }

    /** Code points near the encoding boundaries, where splitting goes wrong. */
    static int edgy(Random r) {
        int[] edges = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFF, 0x1000, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x3FFFF, 0x40000, 0x10FFFF};
        int cp = edges[r.nextInt(edges.length)] + r.nextInt(130) - 65;
        cp = Math.max(0, Math.min(CodePointSet.MAX, cp));
        return cp >= 0xD800 && cp <= 0xDFFF ? 0xE000 : cp;
    }
}
