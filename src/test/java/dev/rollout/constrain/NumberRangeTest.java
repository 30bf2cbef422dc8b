package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * minimum/maximum and their exclusive forms (ADR 0029, slice 3's addendum) against a reference:
 * every candidate spelling is accepted exactly when it is canonical and its value is in range.
 */
class NumberRangeTest {
    static final java.util.regex.Pattern CANONICAL_INTEGER = java.util.regex.Pattern.compile("-?(0|[1-9][0-9]{0,18})");
    static final java.util.regex.Pattern CANONICAL_NUMBER = java.util.regex.Pattern.compile("-?(0|[1-9][0-9]{0,18})(\\.[0-9]{1,17})?");

    static ByteDfa dfa(String schema) {
        return Constraint.jsonSchema(schema, ConstraintLimits.DEFAULT).dfa();
    }

    /** Integers, and numbers with fractions, near the interesting values, in spellings canonical or not. */
    static List<String> candidates(Random r) {
        List<String> out = new ArrayList<>();
        for (int i = -130; i <= 130; i++) out.add(Integer.toString(i));
        for (String s : List.of("-0", "00", "01", "-01", "1.", ".5", "1e2", "0.0", "-0.0", "1.0", "1.50", "-1.000", "9007199254740991",
                "-9007199254740991", "9007199254740992", "-9007199254740992", "9999999999999999999", "10000000000000000000", "0.00000000000000001"))
            out.add(s);
        for (int k = 0; k < 400; k++) {
            int i = r.nextInt(260) - 130;
            String frac = switch (r.nextInt(4)) {
                case 0 -> ".0";
                case 1 -> ".00";
                case 2 -> "." + r.nextInt(10);
                default -> "." + String.format("%03d", r.nextInt(1000));
            };
            out.add((i == 0 && r.nextBoolean() ? "-" : "") + i + frac);
        }
        return out;
    }

    static void check(String type, String bounds, BigDecimal lo, boolean loEx, BigDecimal hi, boolean hiEx) {
        ByteDfa d = dfa("{\"type\":\"" + type + "\"" + bounds + "}");
        boolean integer = type.equals("integer");
        for (String s : candidates(new Random(bounds.hashCode()))) {
            boolean canonical = (integer ? CANONICAL_INTEGER : CANONICAL_NUMBER).matcher(s).matches();
            boolean expected = false;
            if (canonical) {
                BigDecimal v = new BigDecimal(s);
                expected = (lo == null || (loEx ? v.compareTo(lo) > 0 : v.compareTo(lo) >= 0))
                        && (hi == null || (hiEx ? v.compareTo(hi) < 0 : v.compareTo(hi) <= 0));
                // a negative zero ("-0", "-0.0") is a spelling the ranges leave out: valid, but not needed
                if (s.startsWith("-") && v.signum() == 0) expected = d.matches(s.getBytes(StandardCharsets.UTF_8)) && expected;
            }
            assertEquals(expected, d.matches(s.getBytes(StandardCharsets.UTF_8)), type + bounds + " on " + s);
        }
    }

    static BigDecimal d(String s) {
        return s == null ? null : new BigDecimal(s);
    }

    @Test
    void integerRangesMatchTheReference() {
        check("integer", ",\"minimum\":0,\"maximum\":100", d("0"), false, d("100"), false);
        check("integer", ",\"minimum\":-17,\"maximum\":5", d("-17"), false, d("5"), false);
        check("integer", ",\"exclusiveMinimum\":-17,\"exclusiveMaximum\":99", d("-17"), true, d("99"), true);
        check("integer", ",\"minimum\":1", d("1"), false, null, false);
        check("integer", ",\"maximum\":-3", null, false, d("-3"), false);
        check("integer", ",\"minimum\":0.5,\"maximum\":10.5", d("0.5"), false, d("10.5"), false);
        check("integer", ",\"minimum\":-9007199254740991,\"maximum\":9007199254740991", d("-9007199254740991"), false,
                d("9007199254740991"), false);
        check("integer", ",\"minimum\":3,\"exclusiveMinimum\":5", d("5"), true, null, false);
    }

    @Test
    void numberRangesMatchTheReference() {
        check("number", ",\"minimum\":0,\"maximum\":1", d("0"), false, d("1"), false);
        check("number", ",\"exclusiveMinimum\":0", d("0"), true, null, false);
        check("number", ",\"minimum\":-5,\"exclusiveMaximum\":7", d("-5"), false, d("7"), true);
        check("number", ",\"exclusiveMinimum\":-12,\"maximum\":-2", d("-12"), true, d("-2"), false);
        check("number", ",\"maximum\":0", null, false, d("0"), false);
        check("number", ",\"exclusiveMaximum\":0", null, false, d("0"), true);
        check("number", ",\"minimum\":100", d("100"), false, null, false);
    }

    @Test
    void boundsThatZodEmitsCompileSmall() {
        // z.number().int(): the safe-integer range; a DFA of a few dozen states, not thousands
        ByteDfa safe = dfa("{\"type\":\"integer\",\"minimum\":-9007199254740991,\"maximum\":9007199254740991}");
        assertTrue(safe.states() < 200, safe.states() + " states");
        assertTrue(safe.matches("42".getBytes()));
        assertFalse(safe.matches("9007199254740992".getBytes()));
        assertTrue(dfa("{\"minimum\":1}").matches("2.5".getBytes()), "a bound without a type writes a number");
        assertTrue(dfa("{\"type\":[\"integer\",\"null\"],\"maximum\":3}").matches("null".getBytes()), "bounds leave other types alone");
        assertTrue(dfa("{\"type\":\"integer\",\"maximum\":1e400}").matches("5".getBytes()), "a huge bound is clamped, not expanded");
    }
}
