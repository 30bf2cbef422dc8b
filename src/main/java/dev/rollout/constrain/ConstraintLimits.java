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
 * @param maxGrammarDepth how often a recursive EBNF rule may be used again inside itself: a regular
 *     language cannot nest without bound, so {@link EbnfCompiler} expands recursion this many levels
 *     deep (the deepest level without it); 0 refuses recursion other than plain repetition
 */
public record ConstraintLimits(int maxPatternChars, int maxRepeat, int maxNfaStates, int maxDfaStates, long maxMillis, int maxRefDepth,
        int maxGrammarDepth) {
    /**
     * Four levels: llama.cpp's json.gbnf (an object, then four containers inside it; 2^5 stacks of
     * brackets) is 5,131 states and ~0.6 s to compile on a loaded 2-core machine; at six it is
     * 20,827 states and 4–5 s, over the time limit (ADR 0029, addendum on grammars).
     */
    public static final int DEFAULT_GRAMMAR_DEPTH = 4;
    public static final ConstraintLimits DEFAULT = new ConstraintLimits(100_000, 10_000, 500_000, 100_000, 2_000, 8, DEFAULT_GRAMMAR_DEPTH);

    public ConstraintLimits {
        if (maxPatternChars <= 0 || maxRepeat <= 0 || maxNfaStates <= 0 || maxDfaStates <= 0 || maxMillis <= 0 || maxRefDepth <= 0
                || maxGrammarDepth < 0)
            throw new IllegalArgumentException("constraint limits must be positive");
    }

    /** The limits of before grammars, with the default grammar depth. */
    public ConstraintLimits(int maxPatternChars, int maxRepeat, int maxNfaStates, int maxDfaStates, long maxMillis, int maxRefDepth) {
        this(maxPatternChars, maxRepeat, maxNfaStates, maxDfaStates, maxMillis, maxRefDepth, DEFAULT_GRAMMAR_DEPTH);
    }
}
