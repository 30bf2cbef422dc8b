package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Random regexes from a small grammar against java.util.regex (whose semantics agree with
 * Python's on this subset), on random texts and on texts sampled from the regex itself.
 * {@code -Dconstrain.fuzz.scale=N} runs N times as many.
 */
class RegexFuzzTest {
    static final int SCALE = Integer.getInteger("constrain.fuzz.scale", 1);
    static final List<String> ATOMS = List.of("a", "b", "c", "é", "😀", ".", "\\d", "\\w", "\\s", "[ab]", "[^a]", "[a-c😀]", "[^\\d]", "\\.", "1", "\n");
    static final List<String> ALPHABET = List.of("a", "b", "c", "é", "😀", "1", "2", " ", "\n", ".", "_", "x");

    @Test
    void agreesWithJavaUtilRegex() {
        Random r = new Random(20261207);
        int regexes = 400 * SCALE;
        for (int i = 0; i < regexes; i++) {
            String regex = regex(r, 3);
            ByteDfa dfa = Constraint.regex(regex, ConstraintLimits.DEFAULT).dfa();
            Pattern reference = Pattern.compile(regex);
            // our Hopcroft against dk.brics's: no two states of ours are equivalent
            dk.brics.automaton.Automaton ours = AutomatonBuilder.toAutomaton(dfa), theirs = ours.clone();
            theirs.minimize();
            assertEquals(theirs.getNumberOfStates(), ours.getNumberOfStates(), () -> "minimal DFA for " + regex);
            for (int j = 0; j < 60; j++) {
                String text = j % 2 == 0 ? text(r) : sample(r, regex);
                assertEquals(reference.matcher(text).matches(), dfa.matches(text.getBytes(StandardCharsets.UTF_8)),
                        () -> "regex " + regex + " on '" + text + "'");
            }
        }
    }

    static String regex(Random r, int depth) {
        if (depth == 0 || r.nextInt(4) == 0) return ATOMS.get(r.nextInt(ATOMS.size()));
        return switch (r.nextInt(6)) {
            case 0 -> regex(r, depth - 1) + regex(r, depth - 1);
            case 1 -> "(" + regex(r, depth - 1) + "|" + regex(r, depth - 1) + ")";
            case 2 -> "(?:" + regex(r, depth - 1) + ")" + List.of("*", "+", "?", "*?").get(r.nextInt(4));
            case 3 -> { int lo = r.nextInt(3); yield "(" + regex(r, depth - 1) + "){" + lo + "," + (lo + r.nextInt(3)) + "}"; }
            case 4 -> "(?:" + regex(r, depth - 1) + "){" + r.nextInt(3) + "}";
            default -> regex(r, depth - 1) + regex(r, depth - 1) + regex(r, depth - 1);
        };
    }

    static String text(Random r) {
        StringBuilder b = new StringBuilder();
        int n = r.nextInt(7);
        for (int i = 0; i < n; i++) b.append(ALPHABET.get(r.nextInt(ALPHABET.size())));
        return b.toString();
    }

    /** A text built by gluing random atoms' characters, often a near-match. */
    static String sample(Random r, String regex) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < regex.length(); i++) {
            char c = regex.charAt(i);
            if (Character.isLetterOrDigit(c) || c == 'é' || Character.isSurrogate(c)) {
                if (r.nextInt(5) != 0) b.append(c);
            } else if (r.nextInt(3) == 0) {
                b.append(ALPHABET.get(r.nextInt(ALPHABET.size())));
            }
        }
        return b.toString();
    }
}
