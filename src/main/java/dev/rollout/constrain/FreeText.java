package dev.rollout.constrain;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * Free text as byte DFAs, for xgrammar's {@code any_text} and {@code triggered_tags}
 * ({@link StructuralTag}): any valid UTF-8 that contains none of some strings (the excludes) and,
 * for triggered tags, none of the triggers either, except that a trigger ends the free part and
 * starts its tag. It is regular: the product of an Aho–Corasick automaton of the strings with a
 * UTF-8 validator, built here directly as a table and minimized, then used as an
 * {@link Rx.Compiled} part. Two shapes come out of one automaton:
 * <ul>
 *   <li>{@link #text}: the free text itself, which may end anywhere between characters;</li>
 *   <li>{@link #upTo}: free text up to and including the first trigger to be completed, when that
 *       trigger is the given one. "First completed" is how a streaming matcher (xgrammar's tag
 *       dispatch, the chat parser) sees it: the trigger fires the moment the text ends with it, so
 *       {@code (free)(trigger)} with the free part merely trigger-free would also take texts in
 *       which another trigger straddles the boundary and fires earlier.</li>
 * </ul>
 * Triggers and excludes are matched as bytes; as both they and the text are valid UTF-8 (a lone
 * surrogate is refused), a byte match is a character match. The UTF-8 validator follows the
 * standard's table of well-formed sequences (no overlong forms, no surrogates, nothing past U+10FFFF):
 * the same texts as {@link CodePointSet#ALL} repeated, which is what "any text" is elsewhere.
 */
final class FreeText {
    /**
     * The most bytes of triggers and excludes together. The Aho–Corasick table is their bytes ×
     * the byte classes (up to 256): 16 MB at this bound. Real tag sets are a few short strings.
     */
    static final int MAX_STRING_BYTES = 16_384;
    private static final int EXCLUDED = -2, NONE = -1;
    /** UTF-8 validator states: 0 between characters; the rest inside one (see {@link #utf8}). */
    private static final int[] UTF8_BOUNDS = {0x00, 0x80, 0x90, 0xA0, 0xC0, 0xC2, 0xE0, 0xE1, 0xED, 0xEE, 0xF0, 0xF1, 0xF4, 0xF5};

    private final ConstraintLimits limits;
    private final long deadline;
    private final int triggers;
    private final byte[] classOf = new byte[256];
    private final int k;
    private final int[] rep;       // a byte of each class
    private final int nodes;
    private final int[] delta;     // the Aho–Corasick automaton, complete: delta[node * k + class]
    private final int[] hit;       // per node: the trigger completed there, EXCLUDED, or NONE

    /**
     * What a refusal names: the format as a whole ({@code "structural_tag at format"}), and where
     * the request wrote the i-th trigger and the i-th exclude, so that a bad string is named by its
     * own field ({@code "structural_tag at format.rules[2][0]"}), whichever spelling wrote it.
     */
    record Where(String format, IntFunction<String> trigger, IntFunction<String> exclude) {
        /** Every string named as the format: where they are not written apart. */
        static Where of(String format) {
            return new Where(format, i -> format, i -> format);
        }
    }

    /**
     * @param triggers strings that end the free part (and start a tag); none for plain free text
     * @param excludes strings the free text must not contain
     * @param where    what the refusals name
     */
    FreeText(List<String> triggers, List<String> excludes, Where where, ConstraintLimits limits, long deadline) {
        this.limits = limits;
        this.deadline = deadline;
        this.triggers = triggers.size();
        check(triggers, excludes, where);
        List<byte[]> strings = new ArrayList<>();
        int total = 0;
        for (String s : triggers) strings.add(s.getBytes(StandardCharsets.UTF_8));
        for (String s : excludes) strings.add(s.getBytes(StandardCharsets.UTF_8));
        for (byte[] b : strings) total += b.length;
        if (total > MAX_STRING_BYTES)
            throw new ConstraintException(where.format() + ": the triggers and excludes are " + total + " bytes together, more than the limit of " + MAX_STRING_BYTES);

        // byte classes: bytes that neither the validator nor any string tells apart
        boolean[] bound = new boolean[257];
        bound[256] = true;
        for (int b : UTF8_BOUNDS) bound[b] = true;
        for (byte[] s : strings) for (byte x : s) bound[x & 0xFF] = bound[(x & 0xFF) + 1] = true;
        int classes = 0;
        List<Integer> reps = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            if (bound[b]) {
                classes++;
                reps.add(b);
            }
            classOf[b] = (byte) (classes - 1);
        }
        k = classes;
        rep = reps.stream().mapToInt(Integer::intValue).toArray();

        // the trie, by class (each string byte is a class of its own), then completed breadth-first
        int[] go = new int[(total + 1) * k];
        java.util.Arrays.fill(go, -1);
        int[] own = new int[total + 1];
        java.util.Arrays.fill(own, NONE);
        int count = 1;
        for (int i = 0; i < strings.size(); i++) {
            int node = 0;
            for (byte x : strings.get(i)) {
                int c = classOf[x & 0xFF] & 0xFF;
                if (go[node * k + c] < 0) go[node * k + c] = count++;
                node = go[node * k + c];
            }
            // triggers are never inside one another or an exclude (checked), so a node ends one kind of string
            own[node] = i < this.triggers ? i : EXCLUDED;
        }
        nodes = count;
        delta = java.util.Arrays.copyOf(go, nodes * k);
        hit = new int[nodes];
        int[] fail = new int[nodes];
        int[] queue = new int[nodes];
        int qh = 0, qt = 0;
        queue[qt++] = 0;
        hit[0] = NONE;
        while (qh < qt) {
            int u = queue[qh++];
            for (int c = 0; c < k; c++) {
                int child = delta[u * k + c];
                int fallback = u == 0 ? 0 : delta[fail[u] * k + c];
                if (child < 0) {
                    delta[u * k + c] = fallback;
                } else {
                    fail[child] = fallback;
                    // a string that ends here, or one that is a suffix of what was read (its failure chain)
                    hit[child] = own[child] != NONE ? own[child] : hit[fallback];
                    queue[qt++] = child;
                }
            }
        }
    }

    /**
     * Refusals by name: an empty string (it would match everywhere), a lone surrogate (not UTF-8),
     * a trigger inside another trigger or an exclude inside a trigger (the trigger could never be
     * written whole), and a trigger inside an exclude (it would always fire first).
     */
    static void check(List<String> triggers, List<String> excludes, Where where) {
        for (List<String> l : List.of(triggers, excludes)) {
            for (int i = 0; i < l.size(); i++) {
                String s = l.get(i);
                String kind = l == triggers ? "trigger" : "exclude", at = l == triggers ? where.trigger().apply(i) : where.exclude().apply(i);
                if (s.isEmpty()) throw new ConstraintException(at + ": an empty " + kind + " string");
                if (!wellFormed(s))
                    throw new ConstraintException(at + ": the " + kind + " " + quote(s) + " is not valid Unicode (a lone surrogate)");
            }
        }
        for (int i = 0; i < triggers.size(); i++) {
            String t = triggers.get(i);
            // the second of two equal triggers is the one listed twice; a trigger inside another is the one named
            for (int j = 0; j < triggers.size(); j++)
                if (i != j && t.contains(triggers.get(j)) && !(t.equals(triggers.get(j)) && j < i))
                    throw new ConstraintException(where.trigger().apply(j) + ": the trigger " + quote(triggers.get(j)) + (t.equals(triggers.get(j))
                            ? " is listed twice" : " is inside the trigger " + quote(t) + ", which could never be written whole"));
            for (int x = 0; x < excludes.size(); x++) {
                String e = excludes.get(x);
                if (t.contains(e))
                    throw new ConstraintException(where.exclude().apply(x) + ": the excluded " + quote(e) + " is inside the trigger " + quote(t)
                            + ", which could never be written");
                if (e.contains(t))
                    throw new ConstraintException(where.trigger().apply(i) + ": the trigger " + quote(t) + " is inside the excluded " + quote(e)
                            + " (it would always fire first)");
            }
        }
    }

    private static boolean wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) i++;
            else if (Character.isSurrogate(c)) return false;
        }
        return true;
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
    }

    /** The free text: valid UTF-8 with no trigger and no exclude in it, at most {@code maxChars} characters (−1: any number). */
    ByteDfa text(int maxChars) {
        return build(NONE, maxChars);
    }

    /** Free text then trigger {@code i}, the first trigger completed in the text (see the class comment). */
    ByteDfa upTo(int i) {
        return build(i, -1);
    }

    /**
     * The product of the Aho–Corasick automaton, the UTF-8 validator and (for {@code maxChars}) a
     * character count, explored from the start, bounded by the state and time limits; then trimmed
     * and minimized as every other automaton is.
     */
    private ByteDfa build(int trigger, int maxChars) {
        Map<Long, Integer> index = new HashMap<>();
        List<long[]> states = new ArrayList<>();   // {node, utf8, chars}
        IntList next = new IntList();
        List<Boolean> accept = new ArrayList<>();
        int fin = -1;                              // upTo: the state after the trigger
        states.add(new long[] {0, 0, 0});
        index.put(0L, 0);
        for (int s = 0; s < states.size(); s++) {
            if ((s & 63) == 0 && AutomatonBuilder.cpuNanos() > deadline)
                throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile (free text, "
                        + states.size() + " states so far)");
            long[] st = states.get(s);
            if (st == null) {   // the final state of upTo: nothing follows
                accept.add(true);
                for (int c = 0; c < k; c++) next.add(ByteDfa.DEAD);
                continue;
            }
            int node = (int) st[0], u = (int) st[1];
            long chars = st[2];
            accept.add(trigger == NONE && u == 0);
            for (int c = 0; c < k; c++) {
                int u2 = utf8(u, rep[c]);
                int n2 = delta[node * k + c];
                int h = hit[n2];
                if (u2 < 0 || h == EXCLUDED || h >= 0 && h != trigger) {
                    next.add(ByteDfa.DEAD);
                    continue;
                }
                if (h >= 0) {   // the trigger asked for, completed (it is whole UTF-8, so u2 is 0)
                    if (fin < 0) {
                        fin = states.size();
                        states.add(null);
                    }
                    next.add(fin);
                    continue;
                }
                long chars2 = maxChars < 0 ? 0 : chars + (u2 == 0 ? 1 : 0);   // counted only where bounded
                if (maxChars >= 0 && chars2 > maxChars) {
                    next.add(ByteDfa.DEAD);
                    continue;
                }
                long key = (chars2 * 8 + u2) * nodes + n2;
                Integer t = index.get(key);
                if (t == null) {
                    if (states.size() >= limits.maxDfaStates())
                        throw new ConstraintException("free text with these triggers and excludes" + (maxChars >= 0 ? " and max_chars " + maxChars : "")
                                + " needs more than " + limits.maxDfaStates() + " automaton states");
                    t = states.size();
                    index.put(key, t);
                    states.add(new long[] {n2, u2, chars2});
                }
                next.add(t);
            }
        }
        boolean[] acc = new boolean[accept.size()];
        for (int i = 0; i < acc.length; i++) acc[i] = accept.get(i);
        return AutomatonBuilder.minimize(classOf.clone(), k, next.toArray(), acc, limits, deadline);
    }

    /**
     * The texts of {@code d} that do not open with {@code prefix} after ASCII whitespace, or null
     * where none is left: the product of {@code d} with a matcher of the opening, which dies where
     * the prefix is complete. How a reasoning block is kept apart from the content beside it
     * ({@link StructuralTag}'s {@code reasoning}): a union of the two would pair every state of a
     * tool call inside the block with every state of the block's own matcher.
     */
    static ByteDfa notOpeningWith(ByteDfa d, String prefix, ConstraintLimits limits, long deadline) {
        byte[] p = prefix.getBytes(StandardCharsets.UTF_8);
        int free = p.length + 1;   // the opening is told apart: the rest is d's alone (p.length: the prefix whole, dead)
        boolean[] bound = new boolean[257];
        bound[0] = bound[256] = true;
        for (int b = 1; b < 256; b++) bound[b] = d.classOf()[b] != d.classOf()[b - 1];
        for (byte x : p) bound[x & 0xFF] = bound[(x & 0xFF) + 1] = true;
        for (int b : new int[] {' ', '\t', '\n', 0x0B, '\f', '\r'}) bound[b] = bound[b + 1] = true;
        byte[] classOf = new byte[256];
        List<Integer> reps = new ArrayList<>();
        int k = 0;
        for (int b = 0; b < 256; b++) {
            if (bound[b]) {
                k++;
                reps.add(b);
            }
            classOf[b] = (byte) (k - 1);
        }
        Map<Long, Integer> index = new HashMap<>();
        List<int[]> states = new ArrayList<>();
        IntList next = new IntList();
        List<Boolean> accept = new ArrayList<>();
        states.add(new int[] {ByteDfa.START, 0});
        index.put(0L, 0);
        boolean any = false;
        for (int s = 0; s < states.size(); s++) {
            if ((s & 63) == 0 && AutomatonBuilder.cpuNanos() > deadline)
                throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile (" + states.size() + " states so far)");
            int q = states.get(s)[0], phase = states.get(s)[1];
            boolean acc = d.accept()[q];
            accept.add(acc);
            any |= acc;
            for (int c = 0; c < k; c++) {
                int b = reps.get(c);
                int q2 = d.step(q, b);
                int phase2 = phase == free ? free
                        : phase == 0 && (b == ' ' || b >= '\t' && b <= '\r') ? 0
                        : b == (p[phase] & 0xFF) ? phase + 1 : free;
                if (q2 == ByteDfa.DEAD || phase2 == p.length) {
                    next.add(ByteDfa.DEAD);
                    continue;
                }
                long key = (long) q2 * (p.length + 2) + phase2;
                Integer t = index.get(key);
                if (t == null) {
                    if (states.size() >= limits.maxDfaStates())
                        throw new ConstraintException("the constraint needs more than " + limits.maxDfaStates() + " automaton states");
                    t = states.size();
                    index.put(key, t);
                    states.add(new int[] {q2, phase2});
                }
                next.add(t);
            }
        }
        if (!any) return null;
        boolean[] acc = new boolean[accept.size()];
        for (int i = 0; i < acc.length; i++) acc[i] = accept.get(i);
        return AutomatonBuilder.minimize(classOf, k, next.toArray(), acc, limits, deadline);
    }

    /**
     * The UTF-8 validator (Unicode's table 3-7 of well-formed byte sequences), or −1 where the byte
     * cannot come next. States: 0 between characters; 1, 2, 5 expect that many more continuation
     * bytes (80–BF); 3 after E0 (A0–BF, then 1), 4 after ED (80–9F: no surrogates, then 1), 6 after
     * F0 (90–BF, then 2), 7 after F4 (80–8F: nothing past U+10FFFF, then 2).
     */
    static int utf8(int state, int b) {
        return switch (state) {
            case 0 -> b < 0x80 ? 0 : b < 0xC2 ? -1 : b < 0xE0 ? 1 : b == 0xE0 ? 3 : b == 0xED ? 4 : b < 0xF0 ? 2
                    : b == 0xF0 ? 6 : b < 0xF4 ? 5 : b == 0xF4 ? 7 : -1;
            case 1 -> b >= 0x80 && b <= 0xBF ? 0 : -1;
            case 2 -> b >= 0x80 && b <= 0xBF ? 1 : -1;
            case 3 -> b >= 0xA0 && b <= 0xBF ? 1 : -1;
            case 4 -> b >= 0x80 && b <= 0x9F ? 1 : -1;
            case 5 -> b >= 0x80 && b <= 0xBF ? 2 : -1;
            case 6 -> b >= 0x90 && b <= 0xBF ? 2 : -1;
            case 7 -> b >= 0x80 && b <= 0x8F ? 2 : -1;
            default -> -1;
        };
    }
}
