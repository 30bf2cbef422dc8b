package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Random small grammars over {a, b, c}, compiled, against {@link EbnfReference} (the grammar's own
 * meaning, recursion unbounded) on every text up to a length. Two families:
 * <ul>
 *   <li>regular: references only to later rules, plus direct left and right recursion at the top
 *       of a rule (rewritten as repetition): the automaton must agree on every text;</li>
 *   <li>nesting: references anywhere, each between two letters, so that every use of a rule
 *       inside another costs two characters; with the depth limit d, every text of up to 2d + 1
 *       characters is within the bound and must agree, and a longer text the automaton accepts
 *       must be derivable (the bound only removes).</li>
 * </ul>
 * {@code -Dconstrain.fuzz.scale=N} runs N times as many.
 */
class EbnfFuzzTest {
    static final int SCALE = Integer.getInteger("constrain.fuzz.scale", 1);
    static final String ALPHABET = "abc";

    @Test
    void regularGrammarsCompileExactly() {
        SplittableRandom r = new SplittableRandom(22);
        int compiled = 0;
        for (int i = 0; i < 150 * SCALE; i++) {
            String g = new Gen(r, false).grammar();
            compiled += check(g, 6, 6, 8) ? 1 : 0;
        }
        assertTrue(compiled > 120 * SCALE, compiled + " of the grammars compiled");
    }

    @Test
    void nestingGrammarsAgreeWithinTheBound() {
        SplittableRandom r = new SplittableRandom(29);
        int compiled = 0;
        for (int i = 0; i < 150 * SCALE; i++) {
            int depth = r.nextInt(3);
            String g = new Gen(r, true).grammar();
            compiled += check(g, depth, 2 * depth + 1, 2 * depth + 3) ? 1 : 0;
        }
        assertTrue(compiled > 120 * SCALE, compiled + " of the grammars compiled");
    }

    /**
     * Every text up to {@code exact} characters: accepted by both or by neither; longer ones up to
     * {@code sound} that the automaton accepts must be derivable. False where the grammar is refused
     * for matching nothing, which the reference must confirm up to the length checked.
     */
    static boolean check(String grammar, int depth, int exact, int sound) {
        EbnfReference ref = new EbnfReference(EbnfParser.parse(grammar, ConstraintLimits.DEFAULT));
        ConstraintLimits d = ConstraintLimits.DEFAULT;
        ByteDfa dfa;
        try {
            dfa = EbnfCompiler.compile(grammar, new ConstraintLimits(d.maxPatternChars(), d.maxRepeat(), d.maxNfaStates(), d.maxDfaStates(),
                    d.maxMillis(), d.maxRefDepth(), depth));
        } catch (ConstraintException e) {
            // random nests of overlapping repetitions can explode before minimizing, as regexes can: skipped, and counted
            if (e.getMessage().contains("automaton states") || e.getMessage().contains("ms to compile")) return false;
            if (!e.getMessage().contains("no text")) fail(grammar + "\n" + e.getMessage());
            for (String t : texts(exact)) if (ref.derives(t)) fail(grammar + "\nrefused (" + e.getMessage() + "), but derives '" + t + "'");
            return false;
        }
        for (String t : texts(exact))
            assertEquals(ref.derives(t), dfa.matches(t.getBytes(StandardCharsets.UTF_8)), () -> grammar + "\ndepth " + depth + ", text '" + t + "'");
        if (sound > exact) {
            // the automaton's own texts past the exact length, found by walking it
            List<String> accepted = new ArrayList<>();
            walk(dfa, ByteDfa.START, "", sound, accepted);
            for (String t : accepted) assertTrue(t.length() <= exact || ref.derives(t), () -> grammar + "\naccepts '" + t + "', not derivable");
        }
        return true;
    }

    static void walk(ByteDfa dfa, int state, String prefix, int max, List<String> out) {
        if (dfa.accept()[state]) out.add(prefix);
        if (prefix.length() == max) return;
        for (char c : ALPHABET.toCharArray()) {
            int next = dfa.step(state, c);
            if (next != ByteDfa.DEAD) walk(dfa, next, prefix + c, max, out);
        }
    }

    static List<String> texts(int max) {
        List<String> out = new ArrayList<>(List.of(""));
        for (int i = 0; i < out.size(); i++)
            if (out.get(i).length() < max) for (char c : ALPHABET.toCharArray()) out.add(out.get(i) + c);
        return out;
    }

    /** A random grammar: rules r0 (root) to r{n-1}, in the dialect's own syntax. */
    static final class Gen {
        final SplittableRandom r;
        final boolean nesting;
        final int rules;
        int current;

        Gen(SplittableRandom r, boolean nesting) {
            this.r = r;
            this.nesting = nesting;
            this.rules = 1 + r.nextInt(3);
        }

        String grammar() {
            StringBuilder g = new StringBuilder();
            for (current = 0; current < rules; current++) {
                String name = current == 0 ? "root" : "r" + current;
                String body = expr(1);
                int shape = r.nextInt(6);
                // direct recursion at the ends, which the compiler rewrites as repetition
                if (shape == 0) body = name + " " + atom(1) + " | " + body;
                else if (shape == 1) body = atom(1) + " " + name + " | " + body;
                else if (shape == 2) body = name + " " + atom(1) + " | " + atom(1) + " " + name + " | " + body;
                g.append(name).append(" ::= ").append(body).append(r.nextBoolean() ? "\n" : "  # note\n");
            }
            return g.toString();
        }

        String expr(int depth) {
            int n = 1 + r.nextInt(3);
            List<String> options = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int len = r.nextInt(3);
                StringBuilder seq = new StringBuilder();
                for (int k = 0; k < len; k++) seq.append(k > 0 ? " " : "").append(postfix(atom(depth)));
                options.add(seq.length() == 0 ? "\"\"" : seq.toString());
            }
            return String.join(" | ", options);
        }

        String postfix(String atom) {
            return switch (r.nextInt(8)) {
                case 0 -> atom + "*";
                case 1 -> atom + "+";
                case 2 -> atom + "?";
                case 3 -> atom + "{" + r.nextInt(2) + "," + (1 + r.nextInt(2)) + "}";
                default -> atom;
            };
        }

        String atom(int depth) {
            int k = r.nextInt(depth > 0 ? 7 : 5);
            return switch (k) {
                case 0, 1 -> "\"" + letters(1 + r.nextInt(2)) + "\"";
                case 2 -> r.nextInt(4) > 0 ? "[ab]" : "[^a]";
                case 3, 4 -> reference();
                default -> "(" + expr(depth - 1) + ")";
            };
        }

        String reference() {
            if (!nesting) {
                if (current + 1 >= rules) return "\"" + letters(1) + "\"";
                return "r" + (current + 1 + r.nextInt(rules - current - 1));
            }
            int to = r.nextInt(rules);
            return "(\"" + letters(1) + "\" " + (to == 0 ? "root" : "r" + to) + " \"" + letters(1) + "\")";
        }

        String letters(int n) {
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < n; i++) b.append(ALPHABET.charAt(r.nextInt(ALPHABET.length())));
            return b.toString();
        }
    }
}
