package dev.rollout.chat;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Python's {@code str} methods on Java strings, for templates written against Jinja2 where a
 * string is a Python {@code str}: {@code content.startswith('<tool_response>')},
 * {@code content.split('</think>')[-1].lstrip('\n')}. Jinjava would look these names up on
 * {@link String} and fail. Only the methods chat templates use are here; any other call falls
 * through to Jinjava's own resolvers.
 */
final class PythonStrings extends ELResolver {
    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] types, Object[] params) {
        if (!(base instanceof String s) || !(method instanceof String name)) return null;
        Object[] p = params == null ? new Object[0] : params;
        Object result = call(s, name, p);
        if (result != NOT_PYTHON) context.setPropertyResolved(true);
        return result == NOT_PYTHON ? null : result;
    }

    private static final Object NOT_PYTHON = new Object();

    private static Object call(String s, String name, Object[] p) {
        return switch (name) {
            case "startswith" -> anyOf(p[0], prefix -> s.startsWith(prefix));
            case "endswith" -> anyOf(p[0], suffix -> s.endsWith(suffix));
            case "strip" -> rstrip(lstrip(s, chars(p)), chars(p));
            case "lstrip" -> lstrip(s, chars(p));
            case "rstrip" -> rstrip(s, chars(p));
            case "split" -> p.length == 0 || p[0] == null ? splitWhitespace(s) : split(s, (String) p[0], maxSplit(p));
            case "upper" -> s.toUpperCase(Locale.ROOT);
            case "lower" -> s.toLowerCase(Locale.ROOT);
            case "capitalize" -> s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "replace" -> s.replace(String.valueOf(p[0]), String.valueOf(p[1]));
            case "find" -> s.indexOf(String.valueOf(p[0]));
            case "count" -> count(s, String.valueOf(p[0]));
            case "join" -> join(s, p[0]);
            default -> NOT_PYTHON;
        };
    }

    private interface Test { boolean test(String s); }

    /** startswith/endswith take a string or a tuple of strings. */
    private static boolean anyOf(Object arg, Test test) {
        if (arg instanceof Collection<?> options) {
            for (Object o : options) if (test.test(String.valueOf(o))) return true;
            return false;
        }
        return test.test(String.valueOf(arg));
    }

    /** The characters to strip; null means whitespace, as in Python. */
    private static String chars(Object[] p) {
        return p.length == 0 || p[0] == null ? null : String.valueOf(p[0]);
    }

    private static boolean strippable(char c, String chars) {
        return chars == null ? Character.isWhitespace(c) || Character.isSpaceChar(c) : chars.indexOf(c) >= 0;
    }

    static String lstrip(String s, String chars) {
        int i = 0;
        while (i < s.length() && strippable(s.charAt(i), chars)) i++;
        return s.substring(i);
    }

    static String rstrip(String s, String chars) {
        int i = s.length();
        while (i > 0 && strippable(s.charAt(i - 1), chars)) i--;
        return s.substring(0, i);
    }

    private static int maxSplit(Object[] p) {
        return p.length > 1 && p[1] instanceof Number n ? n.intValue() : -1;
    }

    /** Python's split(sep): every occurrence, empty pieces kept (unlike String.split's regex). */
    static List<String> split(String s, String sep, int maxSplit) {
        if (sep.isEmpty()) throw new IllegalArgumentException("empty separator");
        List<String> out = new ArrayList<>();
        int from = 0;
        for (int at; (maxSplit < 0 || out.size() < maxSplit) && (at = s.indexOf(sep, from)) >= 0; from = at + sep.length())
            out.add(s.substring(from, at));
        out.add(s.substring(from));
        return out;
    }

    private static List<String> splitWhitespace(String s) {
        List<String> out = new ArrayList<>();
        for (String piece : s.strip().split("\\s+")) if (!piece.isEmpty()) out.add(piece);
        return out;
    }

    private static int count(String s, String sub) {
        if (sub.isEmpty()) return s.length() + 1;
        int n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) n++;
        return n;
    }

    private static String join(String separator, Object items) {
        List<String> parts = new ArrayList<>();
        if (items instanceof Iterable<?> it) for (Object o : it) parts.add(String.valueOf(o));
        return String.join(separator, parts);
    }

    @Override public Object getValue(ELContext context, Object base, Object property) { return null; }
    @Override public Class<?> getType(ELContext context, Object base, Object property) { return null; }
    @Override public void setValue(ELContext context, Object base, Object property, Object value) {}
    @Override public boolean isReadOnly(ELContext context, Object base, Object property) { return true; }
    @Override public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) { return null; }
    @Override public Class<?> getCommonPropertyType(ELContext context, Object base) { return null; }
}
