package dev.rollout.constrain;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;

/**
 * JSON numbers within JSON Schema's {@code minimum}/{@code maximum}/{@code exclusiveMinimum}/
 * {@code exclusiveMaximum}, as a regular language over their canonical spelling (ADR 0029's
 * addendum of slice 3). Zod's {@code z.number().int()} alone emits ±(2^53 − 1) as bounds and
 * {@code .min()}/{@code .max()} are common in tool parameters, so refusing them would refuse most
 * agent schemas; ignoring them would let through values the client's validator rejects.
 *
 * <p>The classic digit-range construction: the integers of [a, b] without leading zeros, one
 * branch per length, each a few digit classes. Integers: any bounds (a fractional bound rounds
 * inward). Numbers: integer-valued bounds only (a fractional one is refused by name), written
 * without exponent, as an integer part and a fraction of at most 17 digits whose value the bound
 * decides: any, all zeros (at an inclusive bound), or non-zero (just past an exclusive one).
 * Integer parts have at most 19 digits, as unbounded ones do in {@link JsonSchemaCompiler}.
 */
final class NumberRange {
    /** The largest integer part written: 19 digits. */
    static final BigInteger MAX = BigInteger.TEN.pow(19).subtract(BigInteger.ONE);

    private enum Fraction { ANY, ZERO, NONZERO }

    /** A bound's value and whether it is exclusive; null where there is none. */
    record Bound(BigDecimal value, boolean exclusive) {}

    private NumberRange() {}

    /** Canonical integers x with {@code lower <=/< x <=/< upper}, or null where none is. */
    static Rx integers(Bound lower, Bound upper) {
        BigInteger lo = lower == null ? null : lower.exclusive()
                ? lower.value().setScale(0, RoundingMode.FLOOR).toBigIntegerExact().add(BigInteger.ONE)
                : lower.value().setScale(0, RoundingMode.CEILING).toBigIntegerExact();
        BigInteger hi = upper == null ? null : upper.exclusive()
                ? upper.value().setScale(0, RoundingMode.CEILING).toBigIntegerExact().subtract(BigInteger.ONE)
                : upper.value().setScale(0, RoundingMode.FLOOR).toBigIntegerExact();
        List<Rx> parts = new ArrayList<>();
        BigInteger a = lo == null ? BigInteger.ZERO : lo.max(BigInteger.ZERO), b = hi == null ? MAX : hi.min(MAX);
        if (a.compareTo(b) <= 0) parts.add(digits(a, b));
        // negatives: their magnitude m in [max(1, -hi), min(MAX, -lo)]
        BigInteger ma = hi == null ? BigInteger.ONE : hi.negate().max(BigInteger.ONE), mb = lo == null ? MAX : lo.negate().min(MAX);
        if (ma.compareTo(mb) <= 0) parts.add(Rx.seq(Rx.literal("-"), digits(ma, mb)));
        return parts.isEmpty() ? null : Rx.alt(parts);
    }

    /**
     * Canonical numbers without exponent between two integer-valued bounds (either may be null),
     * or null where none is. The caller refuses fractional bounds.
     */
    static Rx numbers(Bound lower, Bound upper) {
        List<Rx> parts = new ArrayList<>();
        // x >= 0, written without a sign: its magnitude m is x
        boolean nonNegative = upper == null || upper.value().signum() > 0 || upper.value().signum() == 0 && !upper.exclusive();
        if (nonNegative) {
            boolean lowerApplies = lower != null && lower.value().signum() >= 0;
            Rx m = magnitude(lowerApplies ? integer(lower) : BigInteger.ZERO, lowerApplies && lower.exclusive(),
                    upper == null ? null : integer(upper), upper != null && upper.exclusive());
            if (m != null) parts.add(m);
        }
        // x < 0, written "-m" with m > 0: x >= lower is m <= -lower, x <= upper is m >= -upper
        if (lower == null || lower.value().signum() < 0) {
            boolean upperApplies = upper != null && upper.value().signum() < 0;
            Rx m = magnitude(upperApplies ? integer(upper).negate() : BigInteger.ZERO, !upperApplies || upper.exclusive(),
                    lower == null ? null : integer(lower).negate(), lower != null && lower.exclusive());
            if (m != null) parts.add(Rx.seq(Rx.literal("-"), m));
        }
        return parts.isEmpty() ? null : Rx.alt(parts);
    }

    private static BigInteger integer(Bound b) {
        return b.value().toBigIntegerExact();
    }

    /** A bound's value is an integer (numbers take only such bounds). */
    static boolean integral(BigDecimal v) {
        return v.signum() == 0 || v.stripTrailingZeros().scale() <= 0;
    }

    /** Magnitudes m >= 0 as "I" or "I.F" with {@code low <=/< m <=/< high} (high null: unbounded). */
    private static Rx magnitude(BigInteger low, boolean lowExclusive, BigInteger high, boolean highExclusive) {
        record Piece(BigInteger from, BigInteger to, Fraction f) {}
        List<Piece> lows = lowExclusive
                ? List.of(new Piece(low.add(BigInteger.ONE), MAX, Fraction.ANY), new Piece(low, low, Fraction.NONZERO))
                : List.of(new Piece(low, MAX, Fraction.ANY));
        List<Piece> highs = high == null ? List.of(new Piece(BigInteger.ZERO, MAX, Fraction.ANY))
                : highExclusive ? List.of(new Piece(BigInteger.ZERO, high.subtract(BigInteger.ONE), Fraction.ANY))
                : List.of(new Piece(BigInteger.ZERO, high.subtract(BigInteger.ONE), Fraction.ANY), new Piece(high, high, Fraction.ZERO));
        List<Rx> out = new ArrayList<>();
        for (Piece l : lows) {
            for (Piece h : highs) {
                BigInteger from = l.from().max(h.from()), to = l.to().min(h.to()).min(MAX);
                if (from.compareTo(to) > 0) continue;
                Fraction f = l.f() == Fraction.ANY ? h.f() : h.f() == Fraction.ANY || h.f() == l.f() ? l.f() : null;
                if (f == null) continue;  // all zeros and non-zero at once
                out.add(Rx.seq(digits(from, to), fraction(f)));
            }
        }
        return out.isEmpty() ? null : Rx.alt(out);
    }

    private static Rx fraction(Fraction f) {
        Rx dot = Rx.literal(".");
        return switch (f) {
            case ANY -> Rx.optional(Rx.seq(dot, new Rx.Repeat(Rx.chars(CodePointSet.range('0', '9')), 1, 17)));
            case ZERO -> Rx.optional(Rx.seq(dot, new Rx.Repeat(Rx.literal("0"), 1, 17)));
            case NONZERO -> Rx.seq(dot, nonZeroDigits());
        };
    }

    /** 1 to 17 digits, not all zeros: one branch per place of the first non-zero digit (34 states once minimized). */
    private static Rx nonZeroDigits() {
        List<Rx> options = new ArrayList<>();
        for (int k = 0; k < 17; k++)
            options.add(Rx.seq(new Rx.Repeat(Rx.literal("0"), k, k), Rx.chars(CodePointSet.range('1', '9')),
                    new Rx.Repeat(Rx.chars(CodePointSet.range('0', '9')), 0, 16 - k)));
        return Rx.alt(options);
    }

    /** The integers of [a, b] (0 <= a <= b), in decimal without leading zeros: one branch per length. */
    static Rx digits(BigInteger a, BigInteger b) {
        List<Rx> options = new ArrayList<>();
        String as = a.toString(), bs = b.toString();
        for (int len = as.length(); len <= bs.length(); len++) {
            String lo = len == as.length() ? as : "1" + "0".repeat(len - 1);
            String hi = len == bs.length() ? bs : "9".repeat(len);
            options.add(sameLength(lo, hi));
        }
        return Rx.alt(options);
    }

    /** Digit strings of one length from lo to hi (lo <= hi), each digit a class. */
    private static Rx sameLength(String lo, String hi) {
        if (lo.isEmpty()) return Rx.EMPTY;
        char l = lo.charAt(0), h = hi.charAt(0);
        String loRest = lo.substring(1), hiRest = hi.substring(1);
        if (l == h) return Rx.seq(Rx.literal(String.valueOf(l)), sameLength(loRest, hiRest));
        int n = loRest.length();
        boolean loFloor = loRest.chars().allMatch(c -> c == '0'), hiCeiling = hiRest.chars().allMatch(c -> c == '9');
        // the first digits whose every continuation is in range: from l (or l+1) to h (or h-1)
        char from = loFloor ? l : (char) (l + 1), to = hiCeiling ? h : (char) (h - 1);
        List<Rx> options = new ArrayList<>();
        if (!loFloor) options.add(Rx.seq(Rx.literal(String.valueOf(l)), sameLength(loRest, "9".repeat(n))));
        if (from <= to) options.add(Rx.seq(Rx.chars(CodePointSet.range(from, to)), new Rx.Repeat(Rx.chars(CodePointSet.range('0', '9')), n, n)));
        if (!hiCeiling) options.add(Rx.seq(Rx.literal(String.valueOf(h)), sameLength("0".repeat(n), hiRest)));
        return Rx.alt(options);
    }
}
