package dev.rollout.api;

import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.math.BigDecimal;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
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
            BigDecimal b;
            try {
                b = n.bigDecimalValue();
            } catch (RuntimeException e) {
                throw ApiException.badRequest(name + " is out of range: " + shown(v));
            }
            if (b.signum() == 0) return 0;
            // decided from precision and scale alone: 1e999999999 or 1e-999999999 must not make
            // BigDecimal build a power of ten with a billion digits
            long integerDigits = (long) b.precision() - b.scale();
            if (integerDigits <= 0) throw ApiException.badRequest(name + " must be an integer, got " + shown(v));
            if (integerDigits > 19) throw ApiException.badRequest(name + " is out of range: " + shown(v));
            try {
                return b.longValueExact();
            } catch (ArithmeticException e) {
                throw ApiException.badRequest(b.stripTrailingZeros().scale() > 0 ? name + " must be an integer, got " + shown(v)
                        : name + " is out of range: " + shown(v));
            }
        }
        throw type(name, "an integer", v);
    }

    /**
     * A duration in seconds: a finite number in [{@code min}, {@code max}], as a Duration of
     * whole milliseconds. Every seconds field of the API goes through here, so that none can
     * overflow the long of a Duration or a deadline ({@code timeout_s: 1e12} did).
     */
    static Duration seconds(JsonValue v, String name, double min, double max) {
        double s = number(v, name);
        if (!(s >= min && s <= max))
            throw ApiException.badRequest(name + " must be between " + plain(min) + " and " + plain(max) + " seconds, got " + plain(s));
        return Duration.ofMillis(Math.round(s * 1000));
    }

    private static String plain(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
    }

    /**
     * A file-system path from a request. A path the platform cannot represent (a NUL byte, on
     * Linux) is the caller's mistake: a 400 naming the field, not InvalidPathException's 500.
     */
    static Path path(JsonValue v, String name) {
        String s = string(v, name);
        try {
            return Path.of(s);
        } catch (InvalidPathException e) {
            throw ApiException.badRequest(name + " is not a valid path: " + e.getReason());
        }
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
        return ApiException.badRequest(name + " must be " + expected + ", got " + shown(got));
    }

    private static String shown(JsonValue v) {
        if (v == null) return "nothing";
        String shown = v.toString();
        return shown.length() > 40 ? shown.substring(0, 40) + "..." : shown;
    }
}
