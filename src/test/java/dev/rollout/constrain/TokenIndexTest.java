package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The trie walk against the definition (each token's bytes walked alone), on small generated vocabularies. */
class TokenIndexTest {
    static final int EOS = 0;

    /** Random tokens over a few byte strings, including pieces of multi-byte characters and duplicates. */
    static Vocabulary vocabulary(Random r, int n) {
        byte[] pool = "ab\"{}:,1é😀".getBytes(StandardCharsets.UTF_8);
        byte[][] tokens = new byte[n][];
        for (int i = 1; i < n; i++) {
            if (i % 17 == 0) continue;  // an id without bytes, as a special token
            byte[] t = new byte[1 + r.nextInt(4)];
            for (int k = 0; k < t.length; k++) t[k] = pool[r.nextInt(pool.length)];
            tokens[i] = t;
        }
        return Vocabulary.of(tokens, n + 5, EOS);
    }

    static BitSet bruteForce(Vocabulary v, ByteDfa dfa, int state) {
        BitSet b = new BitSet();
        for (int id = 0; id < v.size(); id++) {
            byte[] bytes = v.bytes(id);
            if (bytes != null && dfa.walk(state, bytes) != ByteDfa.DEAD) b.set(id);
        }
        if (dfa.accept()[state]) b.set(EOS);
        return b;
    }

    @Test
    void masksEqualTheDefinitionInEveryState() {
        Random r = new Random(3);
        for (String regex : List.of("(ab|é)*1", "\\{\"a\":(1|\"[^\"]{0,3}\")\\}", "😀+", "[a-z]{2,5}", ".*")) {
            Vocabulary v = vocabulary(r, 400);
            TokenIndex index = Constraint.regex(regex, ConstraintLimits.DEFAULT).index(v);
            for (int s = 0; s < index.dfa().states(); s++) {
                assertEquals(bruteForce(v, index.dfa(), s), index.mask(s).toBitSet(), regex + " state " + s);
            }
        }
    }

    /** Masks computed ahead (off the engine thread) are the definition's; nearest the start first; once per index. */
    @Test
    void precomputedMasksAreTheDefinitionsNearestTheStartFirst() {
        Vocabulary v = vocabulary(new Random(5), 300);
        TokenIndex index = Constraint.regex("\\{\"a\":(1|\"[^\"]{0,3}\")\\}", ConstraintLimits.DEFAULT).index(v);
        int states = index.dfa().states();
        assertTrue(states > 6, "states: " + states);
        index.mask(index.start());   // as the HTTP thread does: the precompute skips it
        assertFalse(index.precomputed());
        assertEquals(3, index.precompute(3));
        assertTrue(index.precomputed());
        assertEquals(0, index.precompute(states), "once per index");
        int[] distance = distances(index.dfa());
        int farthestCached = 0, nearestNot = Integer.MAX_VALUE, cached = 0;
        for (int st = 0; st < states; st++) {
            if (index.hasMask(st)) {
                cached++;
                farthestCached = Math.max(farthestCached, distance[st]);
            } else {
                nearestNot = Math.min(nearestNot, distance[st]);
            }
        }
        assertEquals(4, cached, "the start and three more");
        assertTrue(farthestCached <= nearestNot, "breadth-first: " + farthestCached + " > " + nearestNot);
        TokenIndex fresh = Constraint.regex("\\{\"a\":(1|\"[^\"]{0,3}\")\\}", ConstraintLimits.DEFAULT).index(v);
        assertEquals(fresh.precompute(states), states, "every state is reachable from the start");
        for (int s = 0; s < states; s++) assertEquals(bruteForce(v, fresh.dfa(), s), fresh.mask(s).toBitSet(), "state " + s);
    }

    /** Each state's distance in bytes from the start. */
    static int[] distances(ByteDfa dfa) {
        int[] d = new int[dfa.states()];
        java.util.Arrays.fill(d, Integer.MAX_VALUE);
        java.util.ArrayDeque<Integer> queue = new java.util.ArrayDeque<>(List.of(ByteDfa.START));
        d[ByteDfa.START] = 0;
        while (!queue.isEmpty()) {
            int st = queue.poll();
            for (int c = 0; c < dfa.classes(); c++) {
                int t = dfa.next()[st * dfa.classes() + c];
                if (t != ByteDfa.DEAD && d[t] == Integer.MAX_VALUE) {
                    d[t] = d[st] + 1;
                    queue.add(t);
                }
            }
        }
        return d;
    }

    @Test
    void aTokenMayEndInsideACharacterThatCanStillBeCompleted() {
        byte[] e = "é".getBytes(StandardCharsets.UTF_8);  // C3 A9
        byte[] ea = "ê".getBytes(StandardCharsets.UTF_8);  // C3 AA
        Vocabulary v = Vocabulary.of(new byte[][] {null, {e[0]}, {e[1]}, {ea[1]}, e}, 5, EOS);
        TokenIndex index = Constraint.regex("é+", ConstraintLimits.DEFAULT).index(v);
        ConstraintCursor c = index.cursor();
        assertArrayEquals(new int[] {1, 4}, c.allowed().ids(), "the lead byte alone, or the whole character");
        assertTrue(c.advance(1));
        assertArrayEquals(new int[] {2}, c.allowed().ids(), "only the continuation that makes é, not ê's; no EOS mid-character");
        assertFalse(c.advance(3));
        assertTrue(c.advance(2));
        assertTrue(c.canEnd());
        assertTrue(c.allowed().allows(EOS));
        assertTrue(c.advance(EOS));
        assertTrue(c.ended());
        assertEquals(0, c.allowed().count());
    }

    @Test
    void aCursorFollowsRandomAllowedTokensToAMatch() {
        Random r = new Random(11);
        Vocabulary v = vocabulary(r, 600);
        Constraint regex = Constraint.regex("\\{\"a\":(1|\"[ab]{0,3}\")(,\"b\":(é|😀){1,2})?\\}", ConstraintLimits.DEFAULT);
        TokenIndex index = regex.index(v);
        for (int run = 0; run < 50; run++) {
            ConstraintCursor c = index.cursor();
            List<Byte> out = new ArrayList<>();
            while (!c.ended()) {
                int[] ids = c.allowed().ids();
                assertTrue(ids.length > 0, "a live state always allows something");
                int id = ids[r.nextInt(ids.length)];
                assertTrue(c.advance(id));
                if (id != EOS) for (byte b : v.bytes(id)) out.add(b);
            }
            byte[] text = new byte[out.size()];
            for (int i = 0; i < text.length; i++) text[i] = out.get(i);
            assertTrue(regex.dfa().matches(text), new String(text, StandardCharsets.UTF_8));
        }
    }

    @Test
    void aRejectedTokenLeavesTheCursorWhereItWas() {
        Vocabulary v = Vocabulary.of(new byte[][] {null, "a".getBytes(StandardCharsets.UTF_8), "b".getBytes(StandardCharsets.UTF_8)}, 3, EOS);
        ConstraintCursor c = Constraint.regex("ab", ConstraintLimits.DEFAULT).index(v).cursor();
        assertFalse(c.advance(2));
        assertFalse(c.advance(EOS), "EOS before the text is complete");
        assertTrue(c.advance(1));
        assertTrue(c.advance(2));
        assertTrue(c.mustEnd());
        assertArrayEquals(new int[] {EOS}, c.allowed().ids());
    }
}
