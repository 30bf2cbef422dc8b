package dev.rollout.constrain;

import dev.rollout.constrain.EbnfGrammar.Expr;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The EBNF dialect SGLang's default grammar backend (xgrammar) reads, which is llama.cpp's GBNF
 * with extensions, so that grammars written for either parse here:
 * <ul>
 *   <li>{@code name ::= expression}, one rule after another; a rule's body may span lines and
 *       ends where the next {@code name ::=} begins (xgrammar's reading; llama.cpp's grammars,
 *       which end rules at line ends outside parentheses, read the same). Names are letters,
 *       digits, {@code _}, {@code -} and {@code .}, not starting with a digit. {@code #} starts a
 *       comment to the end of the line.</li>
 *   <li>Literals in double quotes, with the escapes {@code \" \\ \/ \' \? \[ \] \n \r \t \b \f \a
 *       \v \0 \e}, {@code \xH...} (hex digits, as many as follow: xgrammar's reading),
 *       {@code \}{@code uHHHH} (a surrogate pair of two is one character) and {@code \UHHHHHHHH}.</li>
 *   <li>Character classes {@code [a-z0-9_]}, negated {@code [^"\\]}, {@code [^]} any character,
 *       with the same escapes and {@code \^ \$ \. \* \+ \( \) \{ \} \| \-}; {@code .} is any
 *       character, newlines included (llama.cpp's).</li>
 *   <li>Grouping {@code ( )}, alternation {@code |} (an empty alternative is the empty string),
 *       repetition {@code * + ?}, {@code {m}}, {@code {m,}}, {@code {m,n}} and llama.cpp's
 *       {@code {,n}}.</li>
 * </ul>
 * Refused by name, because they say more than a language of strings: xgrammar's rule options
 * ({@code name[temperature=..]}), lookahead assertions {@code (= ...)}, and its macros
 * ({@code TagDispatch}, {@code Token}, {@code ExcludeToken}, {@code TokenTagDispatch}); regex
 * class escapes ({@code \d \w \s}), which xgrammar refuses too.
 */
public final class EbnfParser {
    private static final Set<String> MACROS = Set.of("TagDispatch", "TokenTagDispatch", "Token", "ExcludeToken");
    /** Parentheses nested deeper are refused: the parser, and the compiler after it, recurse once per level. */
    static final int MAX_NESTING = 200;
    private final String s;
    private final int maxRepeat;
    private int pos;
    private int nesting;
    private String rule;  // the rule being read, for errors

    private EbnfParser(String text, int maxRepeat) {
        this.s = text;
        this.maxRepeat = maxRepeat;
    }

    public static EbnfGrammar parse(String text, ConstraintLimits limits) {
        if (text.length() > limits.maxPatternChars())
            throw new ConstraintException("ebnf: the grammar is " + text.length() + " characters, more than the limit of " + limits.maxPatternChars());
        return new EbnfParser(text, limits.maxRepeat()).grammar();
    }

    private EbnfGrammar grammar() {
        Map<String, EbnfGrammar.Rule> rules = new LinkedHashMap<>();
        skipSpace();
        if (pos >= s.length()) throw error("the grammar is empty: it needs a rule 'root ::= ...'", pos);
        while (pos < s.length()) {
            int start = pos;
            rule = null;
            if (!nameStart(s.charAt(pos))) throw error("expected a rule name, found " + describe(pos) + lark(), pos);
            String name = name();
            if (pos < s.length() && s.charAt(pos) == '[')
                throw error("rule options (" + name + "[...]) are not supported", pos);
            skipSpace();
            if (!s.startsWith("::=", pos))
                throw error("expected '::=' after the rule name '" + name + "', found " + describe(pos) + lark(), pos);
            pos += 3;
            if (rules.containsKey(name)) {
                EbnfGrammar.Rule first = rules.get(name);
                throw error("the rule '" + name + "' is defined twice (first at line " + first.line() + ", column " + first.column() + ")", start);
            }
            rule = name;
            Expr body = alternation();
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == ')') throw error("unbalanced ')'", pos);
            int[] lc = lineColumn(start);
            rules.put(name, new EbnfGrammar.Rule(name, body, lc[0], lc[1]));
        }
        return new EbnfGrammar(rules);
    }

    private Expr alternation() {
        List<Expr> options = new ArrayList<>();
        do {
            options.add(sequence());
        } while (eat('|'));
        return options.size() == 1 ? options.get(0) : new EbnfGrammar.Alt(options);
    }

    /** Elements up to a {@code |}, a {@code )}, the next rule's {@code name ::=} or the end. */
    private Expr sequence() {
        List<Expr> parts = new ArrayList<>();
        while (true) {
            skipSpace();
            if (pos >= s.length() || s.charAt(pos) == '|' || s.charAt(pos) == ')' || ruleStartsHere()) break;
            Expr e = element();
            parts.add(postfix(e));
        }
        return parts.size() == 1 ? parts.get(0) : new EbnfGrammar.Seq(parts);
    }

    private Expr postfix(Expr e) {
        for (int ops = 0; pos < s.length(); ops++) {
            if (ops > MAX_NESTING) throw error("more than " + MAX_NESTING + " repetition operators on one element", pos);
            char c = s.charAt(pos);
            if (c == '*') e = new EbnfGrammar.Repeat(e, 0, -1);
            else if (c == '+') e = new EbnfGrammar.Repeat(e, 1, -1);
            else if (c == '?') e = new EbnfGrammar.Repeat(e, 0, 1);
            else if (c == '{') {
                int[] b = bounds();
                e = new EbnfGrammar.Repeat(e, b[0], b[1]);
                continue;
            } else break;
            pos++;
        }
        return e;
    }

    /** {@code {m}}, {@code {m,}}, {@code {m,n}} or {@code {,n}}: {min, max}, max −1 unbounded. */
    private int[] bounds() {
        int start = pos;
        int close = s.indexOf('}', pos);
        String body = close < 0 ? "" : s.substring(pos + 1, close).replace(" ", "");
        if (close < 0 || !body.matches("\\d*(,\\d*)?") || body.isEmpty() || body.equals(","))
            throw error("a repetition is {m}, {m,}, {m,n} or {,n}", start);
        int comma = body.indexOf(',');
        int min, max;
        try {
            min = comma == 0 ? 0 : Integer.parseInt(comma < 0 ? body : body.substring(0, comma));
            max = comma < 0 ? min : comma == body.length() - 1 ? -1 : Integer.parseInt(body.substring(comma + 1));
        } catch (NumberFormatException e) {
            throw error("the repetition bound {" + body + "} is too large", start);
        }
        if (max >= 0 && min > max) throw error("the repetition {" + body + "} has its minimum above its maximum", start);
        if (Math.max(min, max) > maxRepeat) throw error("the repetition bound {" + body + "} is above the limit of " + maxRepeat, start);
        pos = close + 1;
        return new int[] {min, max};
    }

    private Expr element() {
        int start = pos;
        char c = s.charAt(pos);
        if (c == '"') return new EbnfGrammar.Text(literal());
        if (c == '[') return new EbnfGrammar.Chars(charClass());
        if (c == '.') {
            pos++;
            return new EbnfGrammar.Chars(CodePointSet.ALL);
        }
        if (c == '(') {
            pos++;
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == '=') throw error("lookahead assertions (= ...) are not supported", start);
            if (++nesting > MAX_NESTING) throw error("parentheses nest deeper than " + MAX_NESTING, start);
            Expr inner = alternation();
            nesting--;
            skipSpace();
            if (!eat(')')) throw error("'(' is not closed", start);
            return inner;
        }
        if (nameStart(c)) {
            String name = name();
            if (MACROS.contains(name) && pos < s.length() && s.charAt(pos) == '(') throw error(name + "(...) is not supported", start);
            int[] lc = lineColumn(start);
            return new EbnfGrammar.Ref(name, lc[0], lc[1]);
        }
        if (c == '\'') throw error("literals are written in double quotes", start);
        if (c == '*' || c == '+' || c == '?' || c == '{') throw error("'" + c + "' has nothing to repeat", start);
        throw error("unexpected " + describe(start), start);
    }

    private String literal() {
        int start = pos++;
        StringBuilder b = new StringBuilder();
        while (true) {
            if (pos >= s.length()) throw error("the literal is not closed", start);
            int cp = s.codePointAt(pos);
            if (cp == '"') {
                pos++;
                return b.toString();
            }
            if (cp == '\n' || cp == '\r') throw error("a literal cannot hold a line break: write \\n", pos);
            if (cp == '\\') b.appendCodePoint(escape(false));
            else {
                b.appendCodePoint(cp);
                pos += Character.charCount(cp);
            }
        }
    }

    private CodePointSet charClass() {
        int start = pos++;
        boolean negate = pos < s.length() && s.charAt(pos) == '^';  // not eat(): a space after '[' is a member
        if (negate) pos++;
        CodePointSet set = CodePointSet.EMPTY;
        while (true) {
            if (pos >= s.length()) throw error("the character class is not closed", start);
            char c = s.charAt(pos);
            if (c == ']') {
                pos++;
                break;
            }
            if (c == '\n' || c == '\r') throw error("a character class cannot hold a line break: write \\n", pos);
            int lo = classChar();
            int hi = lo;
            if (pos + 1 < s.length() && s.charAt(pos) == '-' && s.charAt(pos + 1) != ']') {
                int dash = pos++;
                hi = classChar();
                if (hi < lo) throw error("the range " + new String(Character.toChars(lo)) + "-" + new String(Character.toChars(hi)) + " is backwards", dash);
            }
            set = set.union(CodePointSet.range(lo, hi));
        }
        if (!negate && set.isEmpty()) throw error("the character class [] matches nothing", start);
        return negate ? set.complement() : set;
    }

    private int classChar() {
        if (s.charAt(pos) == '\\') return escape(true);
        int cp = s.codePointAt(pos);
        pos += Character.charCount(cp);
        return cp;
    }

    /** The character a backslash escape at {@code pos} stands for; moves past it. */
    private int escape(boolean inClass) {
        int at = pos++;
        if (pos >= s.length()) throw error("the escape is cut off by the end of the grammar", at);
        char c = s.charAt(pos++);
        switch (c) {
            case '"', '\\', '/', '\'', '?', '[', ']', '-', '^', '$', '.', '*', '+', '(', ')', '{', '}', '|': return c;
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case 'b': return '\b';
            case 'f': return '\f';
            case 'a': return 0x07;
            case 'v': return 0x0B;
            case '0': return 0;
            case 'e': return 0x1B;
            case 'x': {
                int end = pos;
                while (end < s.length() && end - pos < 8 && Character.digit(s.charAt(end), 16) >= 0) end++;
                if (end == pos) throw error("\\x needs hex digits", at);
                return scalar(Long.parseLong(s.substring(pos, pos = end), 16), at);
            }
            case 'u': {
                int cp = hex(4, at);
                if (cp >= 0xD800 && cp <= 0xDBFF && s.startsWith("\\u", pos)) {
                    // JSON's spelling of a character past U+FFFF: a surrogate pair, one character
                    int save = pos;
                    pos += 2;
                    int low = hex(4, save);
                    if (low >= 0xDC00 && low <= 0xDFFF) return Character.toCodePoint((char) cp, (char) low);
                    pos = save;
                }
                return scalar(cp, at);
            }
            case 'U': return scalar(hex(8, at), at);
            case 'd', 'D', 'w', 'W', 's', 'S':
                throw error("\\" + c + " is a regex class, not EBNF: write the characters out, as [0-9], [a-zA-Z0-9_] or [ \\t\\n\\r]", at);
            default: throw error("bad escape \\" + c + (inClass ? " in a character class" : ""), at);
        }
    }

    /** {@code digits} hex digits at {@code pos}, not yet checked to be a character. */
    private int hex(int digits, int at) {
        if (pos + digits > s.length() || !s.substring(pos, pos + digits).matches("[0-9a-fA-F]+"))
            throw error("\\" + s.charAt(at + 1) + " needs " + digits + " hex digits", at);
        long v = Long.parseLong(s.substring(pos, pos + digits), 16);
        pos += digits;
        return (int) Math.min(v, Integer.MAX_VALUE);
    }

    private int scalar(long v, int at) {
        if (v > CodePointSet.MAX || (v >= 0xD800 && v <= 0xDFFF)) throw error("the escape " + s.substring(at, pos) + " is not a Unicode character", at);
        return (int) v;
    }

    private static boolean nameStart(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    }

    private static boolean namePart(char c) {
        return nameStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
    }

    private String name() {
        int start = pos;
        while (pos < s.length() && namePart(s.charAt(pos))) pos++;
        return s.substring(start, pos);
    }

    /** Whether a rule's definition starts at {@code pos}: a name, then {@code ::=} (or rule options, refused by {@link #grammar}). */
    private boolean ruleStartsHere() {
        if (!nameStart(s.charAt(pos))) return false;
        int save = pos;
        name();
        boolean options = pos < s.length() && s.charAt(pos) == '[' && optionsThenDefine();
        skipSpace();
        boolean defines = options || s.startsWith("::=", pos);
        pos = save;
        return defines;
    }

    /** xgrammar's {@code name[key=value] ::=}: a bracket without a line break, then {@code ::=}. */
    private boolean optionsThenDefine() {
        int close = s.indexOf(']', pos);
        int nl = s.indexOf('\n', pos);
        if (close < 0 || (nl >= 0 && nl < close)) return false;
        int p = close + 1;
        while (p < s.length() && Character.isWhitespace(s.charAt(p))) p++;
        return s.startsWith("::=", p);
    }

    /** Spaces, line breaks and {@code #} comments. */
    private void skipSpace() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c == '#') {
                while (pos < s.length() && s.charAt(pos) != '\n') pos++;
            } else if (Character.isWhitespace(c)) {
                pos++;
            } else {
                break;
            }
        }
    }

    private boolean eat(char c) {
        skipSpace();
        if (pos < s.length() && s.charAt(pos) == c) {
            pos++;
            return true;
        }
        return false;
    }

    /** vLLM's outlines backend takes Lark grammars ({@code start: ...}); say so rather than only that '::=' is missing. */
    private String lark() {
        return s.contains("::=") || !s.matches("(?s)\\s*\\??\\w+\\s*:.*") ? "" : " (a Lark grammar? this server reads EBNF/GBNF: root ::= ...)";
    }

    private String describe(int at) {
        if (at >= s.length()) return "the end of the grammar";
        int cp = s.codePointAt(at);
        return cp < 0x20 ? String.format("character U+%04X", cp) : "'" + new String(Character.toChars(cp)) + "'";
    }

    private int[] lineColumn(int at) {
        int line = 1, col = 1;
        for (int i = 0; i < at && i < s.length(); i++) {
            if (s.charAt(i) == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return new int[] {line, col};
    }

    private ConstraintException error(String what, int at) {
        int[] lc = lineColumn(at);
        return new ConstraintException("ebnf: " + what + " at line " + lc[0] + ", column " + lc[1] + (rule == null ? "" : " (rule '" + rule + "')"));
    }
}
