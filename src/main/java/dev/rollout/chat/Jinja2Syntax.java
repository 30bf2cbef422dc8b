package dev.rollout.chat;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Rewrites the two Jinja2 constructs of HF chat templates that Jinjava's parser reads otherwise
 * into equivalents it reads the same way Jinja2 does:
 * <ul>
 *   <li>reversal by slice, {@code messages[::-1]}, which Jinjava cannot parse, becomes
 *       {@code (messages|reverse)};</li>
 *   <li>a keyword argument's value is parenthesized, {@code namespace(n=messages|length - 1)}
 *       becomes {@code namespace(n=(messages|length - 1))}: Jinjava binds {@code =} tighter
 *       than arithmetic and would compute {@code (n=messages|length) - 1}.</li>
 * </ul>
 * Only expressions inside <code>{{ }}</code> and <code>{% %}</code> change; text, comments,
 * string literals, raw blocks and macro signatures are copied as they are.
 */
final class Jinja2Syntax {
    private static final Pattern KEYWORD = Pattern.compile("\\s*[A-Za-z_]\\w*\\s*=(?!=)");
    private static final Pattern SKIPPED_TAG = Pattern.compile("^[-+]?\\s*(macro|raw)\\b");

    private Jinja2Syntax() {}

    static String rewrite(String template) {
        StringBuilder out = new StringBuilder(template.length() + 64);
        int i = 0;
        while (i < template.length()) {
            int open = nextTag(template, i);
            if (open < 0) {
                out.append(template, i, template.length());
                break;
            }
            out.append(template, i, open + 2);
            String closer = template.charAt(open + 1) == '{' ? "}}" : template.charAt(open + 1) == '%' ? "%}" : "#}";
            int close = tagEnd(template, open + 2, closer);
            String body = template.substring(open + 2, close);
            if (closer.equals("#}") || SKIPPED_TAG.matcher(body).find()) {
                out.append(body);
                if (body.matches("^[-+]?\\s*raw\\b[\\s\\S]*")) {
                    int end = rawEnd(template, close);
                    out.append(template, close, end);
                    i = end;
                    continue;
                }
            } else {
                out.append(expression(body));
            }
            i = close;
        }
        return out.toString();
    }

    private static int nextTag(String t, int from) {
        for (int i = t.indexOf('{', from); i >= 0 && i + 1 < t.length(); i = t.indexOf('{', i + 1)) {
            char c = t.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') return i;
        }
        return -1;
    }

    /** Where the tag's closer starts, skipping string literals (Jinja's lexer does too). */
    private static int tagEnd(String t, int from, String closer) {
        for (int i = from; i < t.length(); i++) {
            char c = t.charAt(i);
            if (!closer.equals("#}") && (c == '\'' || c == '"')) i = literalEnd(t, i) - 1;
            else if (t.startsWith(closer, i)) return i;
        }
        throw new IllegalArgumentException("unclosed tag at offset " + from);
    }

    /** Just past the {@code endraw} tag after a raw block opened at {@code from}. */
    private static int rawEnd(String t, int from) {
        Matcher m = Pattern.compile("\\{%[-+]?\\s*endraw\\s*[-+]?%}").matcher(t);
        return m.find(from) ? m.start() : t.length();
    }

    private static int literalEnd(String t, int quoteAt) {
        char q = t.charAt(quoteAt);
        int i = quoteAt + 1;
        while (i < t.length() && t.charAt(i) != q) i += t.charAt(i) == '\\' ? 2 : 1;
        return Math.min(i + 1, t.length());
    }

    /** One nesting level of brackets: whether it is a call's argument list, and its state. */
    private static final class Frame {
        final boolean call;
        boolean keywordOpen;
        int chainStart;

        Frame(boolean call, int chainStart) {
            this.call = call;
            this.chainStart = chainStart;
        }
    }

    private static String expression(String e) {
        StringBuilder out = new StringBuilder(e.length() + 16);
        Deque<Frame> frames = new ArrayDeque<>();
        frames.push(new Frame(false, 0));
        for (int i = 0; i < e.length(); i++) {
            char c = e.charAt(i);
            Frame top = frames.peek();
            if (c == '\'' || c == '"') {
                int end = literalEnd(e, i);
                out.append(e, i, end);
                i = end - 1;
            } else if (c == '[' && e.startsWith("[::-1]", i)) {
                out.insert(top.chainStart, '(').append("|reverse)");
                i += "[::-1]".length() - 1;
            } else if (c == '(' || c == '[') {
                boolean call = c == '(' && out.length() > 0 && isNameChar(out.charAt(out.length() - 1));
                out.append(c);
                Frame frame = new Frame(call, out.length());
                frames.push(frame);
                if (call) i = keyword(e, i + 1, out, frame) - 1;
            } else if ((c == ')' || c == ']') && frames.size() > 1) {
                closeKeyword(top, out);
                frames.pop();
                out.append(c);
            } else if (c == ',' && top.call) {
                closeKeyword(top, out);
                out.append(c);
                i = keyword(e, i + 1, out, top) - 1;
            } else {
                out.append(c);
                if (!isNameChar(c) && c != '.') top.chainStart = out.length();
            }
        }
        return out.toString();
    }

    /** At an argument's start: copies {@code name=} and opens the parenthesis around its value. */
    private static int keyword(String e, int at, StringBuilder out, Frame frame) {
        Matcher m = KEYWORD.matcher(e).region(at, e.length());
        if (!m.lookingAt()) return at;
        out.append(e, at, m.end()).append('(');
        frame.keywordOpen = true;
        frame.chainStart = out.length();
        return m.end();
    }

    private static void closeKeyword(Frame frame, StringBuilder out) {
        if (frame.keywordOpen) out.append(')');
        frame.keywordOpen = false;
    }

    private static boolean isNameChar(char c) {
        return Character.isLetterOrDigit(c) || c == '_';
    }
}
