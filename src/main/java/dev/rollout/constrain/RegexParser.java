package dev.rollout.constrain;

import java.util.ArrayList;
import java.util.List;

/**
 * Python's {@code re} syntax (what SGLang and outlines take), the regular part of it, parsed into
 * an {@link Rx}. Decisions, each matching Python where it can:
 * <ul>
 *   <li>A constraint's regex is matched against the whole output, so {@code ^}/{@code \A} at the
 *       start of a top-level branch and {@code $}/{@code \Z} at its end are accepted and change
 *       nothing; anywhere else they are refused. In search mode (a JSON schema's {@code pattern},
 *       which need only occur somewhere in the string) a branch without them gets any text before
 *       or after.</li>
 *   <li>{@code \d}, {@code \w}, {@code \s} are ASCII ({@code [0-9]}, {@code [A-Za-z0-9_]},
 *       {@code [ \t\n\r\f\v]}), as with {@code re.ASCII}: Unicode digits in a number would not parse.
 *       {@code .} is any character but {@code \n}.</li>
 *   <li>Lazy quantifiers ({@code *?}) match the same set of strings as greedy ones and are accepted.
 *       Groups of any kind ({@code (...)}, {@code (?:...)}, {@code (?P<n>...)}) only group.</li>
 *   <li>Refused, with a message naming the construct: backreferences, lookaround, word boundaries,
 *       inline flags, atomic groups, possessive quantifiers, conditionals, {@code \p} classes.
 *       None of them is regular, or all need more than this engine does.</li>
 * </ul>
 */
public final class RegexParser {
    private static final CodePointSet DIGIT = CodePointSet.range('0', '9');
    private static final CodePointSet WORD = CodePointSet.ofRanges('0', '9', 'A', 'Z', '_', '_', 'a', 'z');
    private static final CodePointSet SPACE = CodePointSet.ofRanges('\t', '\r', ' ', ' ');
    private static final CodePointSet DOT = CodePointSet.of('\n').complement();

    private final String p;
    private final boolean search;
    private final boolean jsonEscaped;
    private final int maxRepeat;
    private int pos;

    private RegexParser(String pattern, boolean search, boolean jsonEscaped, int maxRepeat) {
        this.p = pattern;
        this.search = search;
        this.jsonEscaped = jsonEscaped;
        this.maxRepeat = maxRepeat;
    }

    /** A regex that the whole text must match. */
    public static Rx parse(String pattern, ConstraintLimits limits) {
        return parse(pattern, false, false, limits);
    }

    /**
     * @param search the pattern need only match somewhere (JSON Schema's {@code pattern})
     * @param jsonEscaped the text is a JSON string's content (see {@link Rx.Chars})
     */
    public static Rx parse(String pattern, boolean search, boolean jsonEscaped, ConstraintLimits limits) {
        if (pattern.length() > limits.maxPatternChars())
            throw new ConstraintException("regex is " + pattern.length() + " characters, more than the limit of " + limits.maxPatternChars());
        RegexParser r = new RegexParser(pattern, search, jsonEscaped, limits.maxRepeat());
        Rx rx = r.topLevel();
        if (r.pos < pattern.length()) throw r.error("unbalanced parenthesis");
        return rx;
    }

    private Rx topLevel() {
        List<Rx> branches = new ArrayList<>();
        do {
            boolean start = eatAnchor(true);
            List<Rx> parts = new ArrayList<>();
            boolean end = false;
            while (pos < p.length() && peek() != '|' && peek() != ')') {
                if (eatAnchor(false)) {
                    if (pos < p.length() && peek() != '|' && peek() != ')') throw error("'$' is only supported at the end of the regex");
                    end = true;
                    break;
                }
                parts.add(quantified());
            }
            Rx any = new Rx.Repeat(new Rx.Chars(CodePointSet.ALL, jsonEscaped), 0, -1);
            if (search && !start) parts.add(0, any);
            if (search && !end) parts.add(any);
            branches.add(new Rx.Seq(parts));
        } while (eat('|'));
        return Rx.alt(branches);
    }

    /** {@code ^}/{@code \A} (start) or {@code $}/{@code \Z} (end) here, consumed if so. */
    private boolean eatAnchor(boolean start) {
        if (pos >= p.length()) return false;
        if (p.charAt(pos) == (start ? '^' : '$')) {
            pos++;
            return true;
        }
        if (p.startsWith(start ? "\\A" : "\\Z", pos)) {
            pos += 2;
            return true;
        }
        return false;
    }

    private Rx alternation() {
        List<Rx> branches = new ArrayList<>();
        do {
            List<Rx> parts = new ArrayList<>();
            while (pos < p.length() && peek() != '|' && peek() != ')') parts.add(quantified());
            branches.add(new Rx.Seq(parts));
        } while (eat('|'));
        return Rx.alt(branches);
    }

    private Rx quantified() {
        int atomStart = pos;
        Rx atom = atom();
        int[] q = quantifier();
        if (q == null) return atom;
        if (atom == null) throw error("nothing to repeat", atomStart);
        if (eat('?')) {
            // lazy: the same strings
        } else if (pos < p.length() && peek() == '+') {
            throw error("possessive quantifiers are not supported");
        }
        int before = pos;
        if (quantifier() != null) throw error("multiple repeat", before);
        return new Rx.Repeat(atom, q[0], q[1]);
    }

    /** {min, max} (max −1: unbounded), or null where no quantifier follows. */
    private int[] quantifier() {
        if (pos >= p.length()) return null;
        char c = peek();
        if (c == '*') { pos++; return new int[] {0, -1}; }
        if (c == '+') { pos++; return new int[] {1, -1}; }
        if (c == '?') { pos++; return new int[] {0, 1}; }
        if (c != '{') return null;
        int close = p.indexOf('}', pos);
        if (close < 0) return null;
        String body = p.substring(pos + 1, close);
        if (!body.matches("\\d*(,\\d*)?") || body.isEmpty() || body.equals(",")) return null; // Python: a literal '{'
        int comma = body.indexOf(',');
        int min, max;
        try {
            if (comma < 0) {
                min = max = Integer.parseInt(body);
            } else {
                min = comma == 0 ? 0 : Integer.parseInt(body.substring(0, comma));
                max = comma == body.length() - 1 ? -1 : Integer.parseInt(body.substring(comma + 1));
            }
        } catch (NumberFormatException e) {
            throw error("repetition bound {" + body + "} is too large");
        }
        if (max >= 0 && min > max) throw error("min repeat greater than max repeat in {" + body + "}");
        if (Math.max(min, max) > maxRepeat) throw error("repetition bound {" + body + "} is above the limit of " + maxRepeat);
        pos = close + 1;
        return new int[] {min, max};
    }

    /** One atom, or null where a quantifier stands with nothing before it. */
    private Rx atom() {
        char c = peek();
        switch (c) {
            case '*', '+', '?' -> {
                return null;
            }
            case '(' -> {
                return group();
            }
            case '[' -> {
                pos++;
                return chars(charClass());
            }
            case '.' -> {
                pos++;
                return chars(DOT);
            }
            case '^' -> throw error("'^' is only supported at the start of the regex");
            case '$' -> throw error("'$' is only supported at the end of the regex");
            case '\\' -> {
                pos++;
                return chars(escape(false));
            }
            case '{' -> {
                if (quantifierAhead()) return null;
                pos++;
                return chars(CodePointSet.of('{'));
            }
            default -> {
                int cp = p.codePointAt(pos);
                pos += Character.charCount(cp);
                return chars(CodePointSet.of(cp));
            }
        }
    }

    private boolean quantifierAhead() {
        int save = pos;
        boolean is = quantifier() != null;
        pos = save;
        return is;
    }

    private Rx group() {
        int start = pos;
        pos++;
        if (eat('?')) {
            if (eat(':')) {
                // non-capturing
            } else if (p.startsWith("P<", pos) || (p.startsWith("<", pos) && !p.startsWith("<=", pos) && !p.startsWith("<!", pos))) {
                int close = p.indexOf('>', pos);
                if (close < 0) throw error("unterminated group name", start);
                pos = close + 1;
            } else if (p.startsWith("=", pos) || p.startsWith("!", pos) || p.startsWith("<=", pos) || p.startsWith("<!", pos)) {
                throw error("lookaround assertions are not supported", start);
            } else if (p.startsWith("P=", pos)) {
                throw error("backreferences are not supported", start);
            } else if (p.startsWith(">", pos)) {
                throw error("atomic groups are not supported", start);
            } else if (p.startsWith("(", pos)) {
                throw error("conditional groups are not supported", start);
            } else if (p.startsWith("#", pos)) {
                throw error("comment groups are not supported", start);
            } else {
                throw error("inline flags and other (?...) extensions are not supported", start);
            }
        }
        Rx inner = alternation();
        if (!eat(')')) throw error("missing ), unterminated subpattern", start);
        return inner;
    }

    private CodePointSet charClass() {
        int start = pos - 1;
        boolean negate = eat('^');
        CodePointSet set = CodePointSet.EMPTY;
        boolean first = true;
        while (true) {
            if (pos >= p.length()) throw error("unterminated character set", start);
            if (peek() == ']' && !first) {
                pos++;
                break;
            }
            first = false;
            CodePointSet item = classAtom();
            if (pos + 1 < p.length() && peek() == '-' && p.charAt(pos + 1) != ']') {
                pos++;
                int lo = single(item);
                int hi = single(classAtom());
                if (lo > hi) throw error("bad character range " + new String(Character.toChars(lo)) + "-" + new String(Character.toChars(hi)));
                item = CodePointSet.range(lo, hi);
            }
            set = set.union(item);
        }
        return negate ? set.complement() : set;
    }

    private int single(CodePointSet s) {
        if (s.ranges().length != 2 || s.ranges()[0] != s.ranges()[1]) throw error("bad character range: a class escape cannot bound a range");
        return s.ranges()[0];
    }

    private CodePointSet classAtom() {
        if (eat('\\')) return escape(true);
        int cp = p.codePointAt(pos);
        pos += Character.charCount(cp);
        return CodePointSet.of(cp);
    }

    /** The escape after a backslash, as a set. */
    private CodePointSet escape(boolean inClass) {
        if (pos >= p.length()) throw error("bad escape (end of pattern)");
        int at = pos - 1;
        char c = p.charAt(pos++);
        switch (c) {
            case 'd': return DIGIT;
            case 'D': return DIGIT.complement();
            case 'w': return WORD;
            case 'W': return WORD.complement();
            case 's': return SPACE;
            case 'S': return SPACE.complement();
            case 'n': return CodePointSet.of('\n');
            case 't': return CodePointSet.of('\t');
            case 'r': return CodePointSet.of('\r');
            case 'f': return CodePointSet.of('\f');
            case 'v': return CodePointSet.of(0x0B);
            case 'a': return CodePointSet.of(0x07);
            case '0': return CodePointSet.of(0);
            case 'x': return CodePointSet.of(hex(2, at));
            case 'u': return CodePointSet.of(hex(4, at));
            case 'U': return CodePointSet.of(hex(8, at));
            case 'b':
                if (inClass) return CodePointSet.of(0x08);
                throw error("word boundaries (\\b) are not supported", at);
            case 'B': throw error("word boundaries (\\B) are not supported", at);
            case 'A', 'Z', 'z', 'G': throw error("anchors (\\" + c + ") are only supported at the ends of the regex", at);
            case 'p', 'P': throw error("Unicode property classes (\\" + c + ") are not supported", at);
            case 'N': throw error("named characters (\\N{...}) are not supported", at);
            case 'g', 'k': throw error("backreferences are not supported", at);
            default:
                if (c >= '1' && c <= '9') throw error("backreferences are not supported", at);
                if (Character.isLetterOrDigit(c)) throw error("bad escape \\" + c, at);
                pos--;
                int cp = p.codePointAt(pos);
                pos += Character.charCount(cp);
                return CodePointSet.of(cp);
        }
    }

    private int hex(int digits, int at) {
        if (pos + digits > p.length()) throw error("incomplete escape", at);
        String h = p.substring(pos, pos + digits);
        if (!h.matches("[0-9a-fA-F]+")) throw error("incomplete escape \\" + p.substring(at + 1, pos + digits), at);
        pos += digits;
        long v = Long.parseLong(h, 16);
        if (v > CodePointSet.MAX || (v >= 0xD800 && v <= 0xDFFF)) throw error("escape \\" + p.substring(at + 1, pos) + " is not a Unicode scalar value", at);
        return (int) v;
    }

    private Rx chars(CodePointSet set) {
        return new Rx.Chars(set, jsonEscaped);
    }

    private char peek() {
        return p.charAt(pos);
    }

    private boolean eat(char c) {
        if (pos < p.length() && p.charAt(pos) == c) {
            pos++;
            return true;
        }
        return false;
    }

    private ConstraintException error(String what) {
        return error(what, pos);
    }

    private ConstraintException error(String what, int at) {
        return new ConstraintException("regex: " + what + " at position " + at + " of " + quoted());
    }

    private String quoted() {
        return p.length() <= 200 ? "'" + p + "'" : "'" + p.substring(0, 200) + "…'";
    }
}
