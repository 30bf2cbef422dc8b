package dev.rollout.constrain;

import dev.rollout.constrain.EbnfGrammar.Expr;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;

/**
 * Whether a grammar's root derives a text, by the grammar's own definition and with no bound on
 * recursion: for each rule and start position, the set of end positions, grown to the least
 * fixed point (so left recursion and empty loops terminate). Slow and simple; the reference the
 * compiled automata are checked against.
 */
final class EbnfReference {
    private final EbnfGrammar g;
    private int[] text;
    private Map<String, BitSet[]> ends;
    private boolean changed;

    EbnfReference(EbnfGrammar g) {
        this.g = g;
    }

    boolean derives(String s) {
        text = s.codePoints().toArray();
        ends = new HashMap<>();
        for (String r : g.rules().keySet()) {
            BitSet[] b = new BitSet[text.length + 1];
            for (int i = 0; i <= text.length; i++) b[i] = new BitSet();
            ends.put(r, b);
        }
        do {
            changed = false;
            for (EbnfGrammar.Rule r : g.rules().values())
                for (int i = 0; i <= text.length; i++) {
                    BitSet now = eval(r.body(), i);
                    BitSet had = ends.get(r.name())[i];
                    if (!isSubset(now, had)) {
                        had.or(now);
                        changed = true;
                    }
                }
        } while (changed);
        return ends.get("root")[0].get(text.length);
    }

    private static boolean isSubset(BitSet a, BitSet b) {
        BitSet c = (BitSet) a.clone();
        c.andNot(b);
        return c.isEmpty();
    }

    /** The end positions of {@code e} matched from {@code i}, given the rules' ends so far. */
    private BitSet eval(Expr e, int i) {
        BitSet out = new BitSet();
        if (e instanceof EbnfGrammar.Text t) {
            int[] cps = t.text().codePoints().toArray();
            if (i + cps.length <= text.length && java.util.Arrays.equals(cps, 0, cps.length, text, i, i + cps.length)) out.set(i + cps.length);
        } else if (e instanceof EbnfGrammar.Chars c) {
            if (i < text.length && c.set().contains(text[i])) out.set(i + 1);
        } else if (e instanceof EbnfGrammar.Ref r) {
            out.or(ends.get(r.name())[i]);
        } else if (e instanceof EbnfGrammar.Seq s) {
            out.set(i);
            for (Expr p : s.parts()) out = from(p, out);
        } else if (e instanceof EbnfGrammar.Alt a) {
            for (Expr o : a.options()) out.or(eval(o, i));
        } else {
            EbnfGrammar.Repeat r = (EbnfGrammar.Repeat) e;
            BitSet cur = new BitSet();
            cur.set(i);
            if (r.min() == 0) out.or(cur);
            BitSet seen = new BitSet();
            for (int k = 1; r.max() < 0 || k <= r.max(); k++) {
                cur = from(r.body(), cur);
                if (k >= r.min()) {
                    if (r.max() < 0) cur.andNot(seen);  // past the minimum, only new positions lead anywhere new
                    out.or(cur);
                    seen.or(cur);
                }
                if (cur.isEmpty()) break;
            }
        }
        return out;
    }

    private BitSet from(Expr e, BitSet starts) {
        BitSet out = new BitSet();
        for (int j = starts.nextSetBit(0); j >= 0; j = starts.nextSetBit(j + 1)) out.or(eval(e, j));
        return out;
    }
}
