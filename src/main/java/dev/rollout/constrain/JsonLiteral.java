package dev.rollout.constrain;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.Map;

/**
 * JSON values written compactly and canonically, the one spelling the constraints allow: no
 * whitespace, members in their order, and inside strings only {@code "}, {@code \}, and the
 * control characters escaped ({@code \b \f \n \r \t} short, the others as a backslash, 'u' and
 * four lower-case hex digits), everything else as itself. One spelling per string keeps the automata small, and a
 * model writes JSON this way anyway.
 */
public final class JsonLiteral {
    private JsonLiteral() {}

    /** The escaped spelling of a character inside a JSON string, or null where it stands as itself. */
    public static String escape(int cp) {
        return switch (cp) {
            case '"' -> "\\\"";
            case '\\' -> "\\\\";
            case '\b' -> "\\b";
            case '\f' -> "\\f";
            case '\n' -> "\\n";
            case '\r' -> "\\r";
            case '\t' -> "\\t";
            default -> cp < 0x20 ? String.format("\\u%04x", cp) : null;
        };
    }

    public static String string(String s) {
        StringBuilder b = new StringBuilder("\"");
        s.codePoints().forEach(cp -> {
            String e = escape(cp);
            if (e != null) b.append(e);
            else b.appendCodePoint(cp);
        });
        return b.append('"').toString();
    }

    /** A schema's enum or const value, as the output must spell it. Numbers keep their spelling in the schema. */
    public static String of(JsonElement e) {
        return of(e, JsonSchemaCompiler.Separators.COMPACT);
    }

    /** The same, with these separators between items and after keys. */
    public static String of(JsonElement e, JsonSchemaCompiler.Separators sep) {
        if (e.isJsonNull()) return "null";
        if (e.isJsonPrimitive()) {
            var p = e.getAsJsonPrimitive();
            if (p.isString()) return string(p.getAsString());
            if (p.isBoolean()) return Boolean.toString(p.getAsBoolean());
            return p.getAsNumber().toString();
        }
        StringBuilder b = new StringBuilder();
        if (e instanceof JsonArray a) {
            b.append('[');
            for (int i = 0; i < a.size(); i++) b.append(i > 0 ? sep.item() : "").append(of(a.get(i), sep));
            return b.append(']').toString();
        }
        b.append('{');
        boolean first = true;
        for (Map.Entry<String, JsonElement> m : ((JsonObject) e).entrySet()) {
            b.append(first ? "" : sep.item()).append(string(m.getKey())).append(sep.key()).append(of(m.getValue(), sep));
            first = false;
        }
        return b.append('}').toString();
    }
}
