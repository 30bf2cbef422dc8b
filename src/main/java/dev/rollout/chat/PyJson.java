package dev.rollout.chat;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * JSON as Python's {@code json.dumps(x, ensure_ascii=False)} writes it, which is what HF's chat
 * templates get from {@code tojson}: ", " and ": " separators, keys in insertion order, non-ASCII
 * kept, and floats in Python's {@code repr} ({@code 2.0}, {@code 1e+21}, {@code 1.5e-05}). A tool
 * schema or tool-call arguments written any other way would give the model a prompt unlike the
 * one it was trained on.
 */
public final class PyJson {
    private PyJson() {}

    public static String dumps(Object value) {
        return dumps(value, -1);
    }

    /** With {@code indent >= 0}, Python's {@code json.dumps(x, indent=indent)}: one item a line. */
    public static String dumps(Object value, int indent) {
        StringBuilder out = new StringBuilder();
        write(value, out, indent, 0);
        return out.toString();
    }

    private static void newline(StringBuilder out, int indent, int depth) {
        if (indent < 0) return;
        out.append('\n');
        out.append(" ".repeat(indent * depth));
    }

    private static void write(Object value, StringBuilder out, int indent, int depth) {
        String comma = indent < 0 ? ", " : ",";
        if (value == null) {
            out.append("null");
        } else if (value instanceof String s) {
            string(s, out);
        } else if (value instanceof Boolean b) {
            out.append(b ? "true" : "false");
        } else if (value instanceof Integer || value instanceof Long || value instanceof BigInteger
                || value instanceof Short || value instanceof Byte) {
            out.append(value);
        } else if (value instanceof Number n) {
            out.append(pythonFloat(n.doubleValue()));
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            if (map.isEmpty()) {
                out.append('}');
                return;
            }
            Iterator<? extends Map.Entry<?, ?>> it = map.entrySet().iterator();
            while (it.hasNext()) {
                Map.Entry<?, ?> e = it.next();
                newline(out, indent, depth + 1);
                string(String.valueOf(e.getKey()), out);
                out.append(": ");
                write(e.getValue(), out, indent, depth + 1);
                if (it.hasNext()) out.append(comma);
            }
            newline(out, indent, depth);
            out.append('}');
        } else if (value instanceof List<?> list) {
            out.append('[');
            if (list.isEmpty()) {
                out.append(']');
                return;
            }
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) out.append(comma);
                newline(out, indent, depth + 1);
                write(list.get(i), out, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.append(']');
        } else {
            string(value.toString(), out);
        }
    }

    /** Python's escaping with ensure_ascii=False: quotes, backslashes and control characters only. */
    private static void string(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        out.append('"');
    }

    /**
     * Python's {@code repr(float)}: the shortest digits that read back to the same double, in
     * fixed notation for exponents -4 to 15 and scientific (two-digit exponent) outside. The
     * digits come from {@link Double#toString}, which since JDK 19 is the shortest too.
     */
    static String pythonFloat(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        BigDecimal bd = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        int exponent = bd.precision() - bd.scale() - 1;
        if (exponent >= -4 && exponent < 16) {
            String plain = bd.toPlainString();
            return plain.contains(".") ? plain : plain + ".0";
        }
        String digits = bd.unscaledValue().abs().toString();
        StringBuilder out = new StringBuilder();
        if (bd.signum() < 0) out.append('-');
        out.append(digits.charAt(0));
        if (digits.length() > 1) out.append('.').append(digits, 1, digits.length());
        out.append('e').append(exponent < 0 ? '-' : '+');
        int abs = Math.abs(exponent);
        if (abs < 10) out.append('0');
        return out.append(abs).toString();
    }
}
