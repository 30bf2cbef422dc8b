package dev.rollout.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A request's {@code stop_regex} patterns (java.util.regex), searched in the tail of the decoded
 * output after each token, as SGLang searches the tail of its output with Python's {@code re}.
 *
 * <p>The search is bounded twice, because it runs on the engine thread that every request shares:
 * it looks at the last {@link #WINDOW_CHARS} characters only (SGLang bounds its tail by the
 * pattern's longest match, in tokens, but an unbounded pattern such as {@code \d+} makes that the
 * whole output, decoded again every step), and every check may read at most {@link #BUDGET}
 * characters over all patterns, so a pattern that backtracks catastrophically ends its own
 * request ({@link Overrun}) instead of stalling everyone's. Lookbehind sees text before the
 * window; {@code ^} matches at the output's start only, not at the window's.
 */
public final class StopRegex {
    /** How far back from the end of the output a match may start. */
    public static final int WINDOW_CHARS = 1024;
    /** Characters the regex engine may read per check, over all patterns: about a millisecond. */
    static final long BUDGET = 2_000_000;

    public static final StopRegex NONE = new StopRegex(List.of());

    private final List<Pattern> patterns;

    private StopRegex(List<Pattern> patterns) {
        this.patterns = patterns;
    }

    /** Compiles each pattern; a bad one throws {@link java.util.regex.PatternSyntaxException}. */
    public static StopRegex compile(List<String> regexes) {
        List<Pattern> out = new ArrayList<>(regexes.size());
        for (String r : regexes) out.add(Pattern.compile(r));
        return new StopRegex(List.copyOf(out));
    }

    public List<String> patterns() {
        List<String> out = new ArrayList<>(patterns.size());
        for (Pattern p : patterns) out.add(p.pattern());
        return out;
    }

    public boolean isEmpty() {
        return patterns.isEmpty();
    }

    /** The first pattern (as written) found in the last {@link #WINDOW_CHARS} characters of {@code text}, or null. */
    String find(String text) {
        Budgeted chars = new Budgeted(text, BUDGET);
        int from = Math.max(0, text.length() - WINDOW_CHARS);
        for (Pattern p : patterns) {
            Matcher m = p.matcher(chars).region(from, text.length()).useTransparentBounds(true).useAnchoringBounds(false);
            try {
                if (m.find()) return p.pattern();
            } catch (StackOverflowError deep) {  // deeply nested alternation recurses in java.util.regex
                throw new Overrun(p.pattern());
            } catch (Overrun spent) {
                throw new Overrun(p.pattern());
            }
        }
        return null;
    }

    /** A check that used up its budget; names the pattern that was searching. */
    static final class Overrun extends RuntimeException {
        final String pattern;

        Overrun(String pattern) {
            super(pattern, null, false, false);
            this.pattern = pattern;
        }
    }

    /** The text, counting what the regex engine reads. */
    private static final class Budgeted implements CharSequence {
        private final String s;
        private long left;

        Budgeted(String s, long budget) {
            this.s = s;
            this.left = budget;
        }

        @Override
        public char charAt(int i) {
            if (--left < 0) throw new Overrun(null);
            return s.charAt(i);
        }

        @Override
        public int length() {
            return s.length();
        }

        @Override
        public CharSequence subSequence(int start, int end) {
            return s.subSequence(start, end);
        }

        @Override
        public String toString() {
            return s;
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof StopRegex r && r.patterns().equals(patterns());
    }

    @Override
    public int hashCode() {
        return patterns().hashCode();
    }

    @Override
    public String toString() {
        return patterns().toString();
    }
}
