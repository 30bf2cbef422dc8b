package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class RegexConstraintTest {
    static boolean matches(String regex, String text) {
        return Constraint.regex(regex, ConstraintLimits.DEFAULT).dfa().matches(text.getBytes(StandardCharsets.UTF_8));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '¦', value = {
            "\\d{3}-\\d{2}¦123-45¦true", "\\d{3}-\\d{2}¦123-456¦false", "\\d+¦٣¦false",
            "\\w+¦a_Z9¦true", "\\w+¦é¦false", "\\s¦'\t'¦true", "\\S+¦ab¦true",
            "[^a-c]+¦xyz¦true", "[^a-c]+¦xaz¦false", "[\\d.]+¦1.5¦true", "[a\\-z]+¦-a-¦true", "[]a]+¦]a¦true",
            "^(yes|no)$¦yes¦true", "^(yes|no)$¦yesno¦false", "\\Ayes\\Z¦yes¦true", "a.c¦abc¦true", "a.c¦'a\nc'¦false",
            "(?:ab)+?¦abab¦true", "(?P<x>a)(?<y>b)¦ab¦true", "a{2,3}¦aaaa¦false", "a{,2}¦aa¦true", "a{2,}¦aaaaa¦true",
            "x{¦x{¦true", "x{1,2¦x{1,2¦true", "\\x41\\u00e9\\U0001F600¦Aé😀¦true", "[😀-😂]¦😁¦true", "é{2}¦éé¦true",
            "\\.¦.¦true", "\\.¦a¦false", "a|b|c¦c¦true", "a|b¦c¦false", "(a|)b¦b¦true"})
    void matchesAsPythonWould(String regex, String text, boolean expected) {
        assertEquals(expected, matches(regex, text), regex + " on " + text);
    }

    /**
     * A bounded repetition of a body large enough to be minimized first, whose minimal start state
     * the text comes back to ((ba)* here): a copy that may be skipped must not accept part-way.
     */
    @Test
    void boundedRepetitionOfABodyThatLoopsBackToItsStart() {
        String rx = "(?:(?:ba)*c[a-z]{40}){1,2}";
        String one = "c" + "x".repeat(40);
        assertTrue(matches(rx, one) && matches(rx, "ba" + one + "baba" + one));
        assertFalse(matches(rx, one + "ba"), "the second copy is either whole or absent");
        assertFalse(matches(rx, one + "ba" + one + "ba"));
    }

    @Test
    void countsCharactersNotBytesOrUtf16Units() {
        assertTrue(matches(".{2}", "😀é"), "two code points, six bytes, three UTF-16 units");
        assertFalse(matches(".{3}", "😀é"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "(a)\\1|backreferences", "(?P<n>a)(?P=n)|backreferences", "a(?=b)|lookaround", "(?<!a)b|lookaround",
            "\\bword|word boundaries", "(?i)abc|inline flags", "a++|possessive", "(?>a)|atomic", "a^b|'^'", "a$b|'$'",
            "\\p{L}|Unicode property", "*a|nothing to repeat", "a**|multiple repeat", "(ab|unterminated subpattern", "ab)|unbalanced",
            "[ab|unterminated character set", "[b-a]|bad character range", "a{3,2}|min repeat greater", "\\q|bad escape", "a{99999}|above the limit"})
    void refusesWhatItCannotMatchExactly(String regex, String problem) {
        ConstraintException e = assertThrows(ConstraintException.class, () -> Constraint.regex(regex, ConstraintLimits.DEFAULT));
        assertTrue(e.getMessage().contains(problem), e.getMessage());
    }

    @Test
    void refusesARegexThatMatchesNothing() {
        ConstraintException e = assertThrows(ConstraintException.class, () -> Constraint.regex("[^\\s\\S]", ConstraintLimits.DEFAULT));
        assertTrue(e.getMessage().contains("matches no text"), e.getMessage());
    }

    @Test
    void refusesAnExponentialRegexWithinItsLimits() {
        ConstraintLimits limits = new ConstraintLimits(10_000, 1_000, 100_000, 20_000, 2_000, 8);
        // the classic: the DFA must remember the last 25 characters, 2^25 states
        ConstraintException e = Assertions.assertTimeoutPreemptively(Duration.ofSeconds(30),
                () -> assertThrows(ConstraintException.class, () -> Constraint.regex("(a|b)*a(a|b){25}", limits)));
        assertTrue(e.getMessage().contains("20000") || e.getMessage().contains("ms"), e.getMessage());
        ConstraintException big = assertThrows(ConstraintException.class, () -> Constraint.regex("((a{1000}){1000}){1000}", limits));
        assertTrue(big.getMessage().contains("before determinizing"), big.getMessage());
    }

    @Test
    void theMinimalDfaIsSmall() {
        // (a|b)*abb: the textbook DFA has four states, all live
        assertEquals(4, Constraint.regex("(a|b)*abb", ConstraintLimits.DEFAULT).dfa().states());
    }
}
