package dev.rollout.constrain;

/**
 * What one compilation may cost, so that a hostile regex or schema is refused instead of taking
 * the server's memory or an engine step's time. Determinizing is the step that can explode
 * ({@code (a|b)*a(a|b){20}} has a million states), so it is the one that counts states and time.
 *
 * @param maxPatternChars the longest regex or schema text accepted
 * @param maxRepeat the largest bound in {@code {n,m}} (and in maxLength, maxItems)
 * @param maxNfaStates the largest automaton before determinizing (repetition copies its body)
 * @param maxDfaStates the most states determinizing may make
 * @param maxMillis the time determinizing and minimizing may take
 * @param maxRefDepth how deep {@code $ref}s may nest, and free-form JSON values
 */
public record ConstraintLimits(int maxPatternChars, int maxRepeat, int maxNfaStates, int maxDfaStates, long maxMillis, int maxRefDepth) {
    public static final ConstraintLimits DEFAULT = new ConstraintLimits(100_000, 10_000, 500_000, 100_000, 2_000, 8);

    public ConstraintLimits {
        if (maxPatternChars <= 0 || maxRepeat <= 0 || maxNfaStates <= 0 || maxDfaStates <= 0 || maxMillis <= 0 || maxRefDepth <= 0)
            throw new IllegalArgumentException("constraint limits must be positive");
    }
}
