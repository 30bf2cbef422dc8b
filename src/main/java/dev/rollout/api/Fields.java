package dev.rollout.api;

import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.List;

/**
 * Typed reads of JSON fields that fail with a 400 naming the field and what was wrong. A JSON
 * null counts as absent, as in SGLang, where null means "use the default".
 */
final class Fields {
    private Fields() {}

    static boolean present(JsonObject o, String key) {
        return o.containsKey(key) && o.get(key).getValueType() != JsonValue.ValueType.NULL;
    }

    static String string(JsonValue v, String name) {
        if (v instanceof JsonString s) return s.getString();
        throw type(name, "a string", v);
    }

    static boolean bool(JsonValue v, String name) {
        if (v == JsonValue.TRUE) return true;
        if (v == JsonValue.FALSE) return false;
        throw type(name, "a boolean", v);
    }

    static double number(JsonValue v, String name) {
        if (v instanceof JsonNumber n) {
            double d = n.doubleValue();
            if (!Double.isFinite(d)) throw ApiException.badRequest(name + " must be a finite number");
            return d;
        }
        throw type(name, "a number", v);
    }

    static long integer(JsonValue v, String name) {
        if (v instanceof JsonNumber n) {
            if (!n.isIntegral() && n.doubleValue() != Math.rint(n.doubleValue()))
                throw ApiException.badRequest(name + " must be an integer, got " + v);
            try {
                return n.bigDecimalValue().longValueExact();
            } catch (ArithmeticException e) {
                throw ApiException.badRequest(name + " is out of range: " + v);
            }
        }
        throw type(name, "an integer", v);
    }

    static int int32(JsonValue v, String name) {
        long l = integer(v, name);
        if (l < Integer.MIN_VALUE || l > Integer.MAX_VALUE) throw ApiException.badRequest(name + " is out of range: " + l);
        return (int) l;
    }

    static int[] intArray(JsonValue v, String name) {
        if (!(v instanceof JsonArray a)) throw type(name, "a list of integers", v);
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = int32(a.get(i), name + "[" + i + "]");
        return out;
    }

    static List<String> stringOrList(JsonValue v, String name) {
        if (v instanceof JsonString s) return List.of(s.getString());
        if (!(v instanceof JsonArray a)) throw type(name, "a string or a list of strings", v);
        List<String> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) out.add(string(a.get(i), name + "[" + i + "]"));
        return out;
    }

    static ApiException type(String name, String expected, JsonValue got) {
        String shown = got.toString();
        if (shown.length() > 40) shown = shown.substring(0, 40) + "...";
        return ApiException.badRequest(name + " must be " + expected + ", got " + shown);
    }
}
