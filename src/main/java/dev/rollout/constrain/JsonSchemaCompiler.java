package dev.rollout.constrain;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A JSON Schema, the subset agent frameworks emit (zod, pydantic, OpenAI's strict mode), as an
 * {@link Rx} for the compact JSON texts that satisfy it. What the output looks like:
 * <ul>
 *   <li>Compact, as {@link JsonLiteral} writes it: no whitespace between tokens (so the
 *       constraint, not the model, decides when a value ends), canonical string escapes.</li>
 *   <li>An object's properties come in the schema's order; a required one always, an optional one
 *       (not in {@code required}) may be left out. No other property is ever written, whatever
 *       {@code additionalProperties} says, except in an object without {@code properties} whose
 *       {@code additionalProperties} is a schema (a map), where any keys go.</li>
 *   <li>Integers are written without fraction or exponent, at most 19 digits; numbers at most 19
 *       integer digits, 17 fraction digits and 3 exponent digits. A schema with nothing to say
 *       about a value (no {@code type}, {@code true}) takes any JSON value nested at most
 *       {@value #ANY_DEPTH} deep.</li>
 *   <li>{@code $ref} to {@code #}, {@code #/$defs/...} or {@code #/definitions/...}; a recursive
 *       reference is refused (a regular language cannot nest without bound).</li>
 * </ul>
 * Anything else that constrains a value (minimum, format, oneOf, uniqueItems, ...) is refused
 * with the keyword's name, rather than ignored: ignoring it would let through output the client's
 * validator rejects. Annotations (title, description, default, examples, ...) are ignored.
 */
public final class JsonSchemaCompiler {
    static final int ANY_DEPTH = 3;
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema", "$id",
            "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "strict");
    private static final Set<String> HANDLED = Set.of("type", "enum", "const", "anyOf", "allOf", "$ref", "properties", "required",
            "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "uniqueItems");
    static final Rx INTEGER = RegexParser.parse("-?(0|[1-9][0-9]{0,18})", ConstraintLimits.DEFAULT);
    static final Rx NUMBER = RegexParser.parse("-?(0|[1-9][0-9]{0,18})(\\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?", ConstraintLimits.DEFAULT);
    private static final Rx STRING_CHAR = new Rx.Chars(CodePointSet.ALL, true);
    private static final Rx QUOTE = Rx.literal("\"");
    private static final List<Rx> ANY = new ArrayList<>();
    private static final List<Rx> ANY_OBJECT = new ArrayList<>();

    static {
        for (int d = 0; d <= ANY_DEPTH; d++) {
            ANY.add(makeAny(d));  // uses ANY and ANY_OBJECT at d - 1
            ANY_OBJECT.add(makeAnyObject(d));  // uses ANY at d
        }
    }

    private final JsonElement root;
    private final ConstraintLimits limits;
    private final Deque<String> refs = new ArrayDeque<>();

    private JsonSchemaCompiler(JsonElement root, ConstraintLimits limits) {
        this.root = root;
        this.limits = limits;
    }

    public static Rx compile(String schemaJson, ConstraintLimits limits) {
        if (schemaJson.length() > limits.maxPatternChars())
            throw new ConstraintException("json_schema is " + schemaJson.length() + " characters, more than the limit of " + limits.maxPatternChars());
        JsonElement root;
        try {
            root = JsonParser.parseString(schemaJson);
        } catch (JsonParseException e) {
            throw new ConstraintException("json_schema is not valid JSON: " + e.getMessage());
        }
        return new JsonSchemaCompiler(root, limits).schema(root, "#", 0);
    }

    private Rx schema(JsonElement s, String at, int depth) {
        if (s.isJsonPrimitive() && s.getAsJsonPrimitive().isBoolean()) {
            if (s.getAsBoolean()) return any(ANY_DEPTH);
            throw error(at, "the schema false allows no value");
        }
        if (!s.isJsonObject()) throw error(at, "a schema must be an object or a boolean");
        JsonObject o = s.getAsJsonObject();
        for (String key : o.keySet()) {
            if (!ANNOTATIONS.contains(key) && !HANDLED.contains(key) && !key.startsWith("x-"))
                throw error(at, "the keyword '" + key + "' is not supported");
        }
        if (o.has("$ref")) {
            if (o.keySet().stream().anyMatch(k -> HANDLED.contains(k) && !k.equals("$ref")))
                throw error(at, "$ref beside other validation keywords is not supported");
            return ref(string(o, "$ref", at), at, depth);
        }
        if (o.has("const")) return Rx.literal(JsonLiteral.of(o.get("const")));
        if (o.has("enum")) {
            JsonArray values = array(o, "enum", at);
            if (values.isEmpty()) throw error(at, "enum is empty");
            List<Rx> options = new ArrayList<>();
            for (JsonElement v : values) options.add(Rx.literal(JsonLiteral.of(v)));
            return Rx.alt(options);
        }
        if (o.has("anyOf") || o.has("allOf")) {
            String key = o.has("anyOf") ? "anyOf" : "allOf";
            JsonArray options = array(o, key, at);
            if (options.isEmpty()) throw error(at, key + " is empty");
            if (key.equals("allOf") && options.size() != 1) throw error(at, "allOf with more than one schema is not supported");
            if (o.has("anyOf") && o.has("allOf")) throw error(at, "anyOf beside allOf is not supported");
            if (o.has("type")) throw error(at, key + " beside type is not supported: put the type in each option");
            List<Rx> rx = new ArrayList<>();
            for (int i = 0; i < options.size(); i++) rx.add(schema(options.get(i), at + "/" + key + "/" + i, depth));
            return Rx.alt(rx);
        }
        List<String> types = new ArrayList<>();
        if (o.has("type")) {
            JsonElement t = o.get("type");
            if (t.isJsonArray()) for (JsonElement e : t.getAsJsonArray()) types.add(e.getAsString());
            else types.add(t.getAsString());
            if (types.isEmpty()) throw error(at, "type is an empty list");
        } else if (o.has("properties") || o.has("additionalProperties") || o.has("required")) {
            types.add("object");
        } else if (o.has("items")) {
            types.add("array");
        } else if (o.has("minLength") || o.has("maxLength") || o.has("pattern")) {
            types.add("string");
        } else {
            return any(ANY_DEPTH);
        }
        List<Rx> rx = new ArrayList<>();
        for (String t : types) {
            rx.add(switch (t) {
                case "string" -> string(o, at);
                case "integer" -> INTEGER;
                case "number" -> NUMBER;
                case "boolean" -> Rx.alt(Rx.literal("true"), Rx.literal("false"));
                case "null" -> Rx.literal("null");
                case "array" -> array(o, at, depth);
                case "object" -> object(o, at, depth);
                default -> throw error(at, "unknown type '" + t + "'");
            });
        }
        return Rx.alt(rx);
    }

    private Rx ref(String ref, String at, int depth) {
        if (refs.contains(ref)) throw error(at, "recursive $ref '" + ref + "' is not supported");
        if (depth >= limits.maxRefDepth()) throw error(at, "$ref nests deeper than the limit of " + limits.maxRefDepth());
        if (!ref.startsWith("#")) throw error(at, "only local $refs (#/...) are supported, not '" + ref + "'");
        JsonElement target = root;
        String pointer = ref.substring(1);
        if (!pointer.isEmpty()) {
            if (!pointer.startsWith("/")) throw error(at, "$ref '" + ref + "' is not a JSON pointer");
            for (String part : pointer.substring(1).split("/", -1)) {
                String key = part.replace("~1", "/").replace("~0", "~");
                if (target.isJsonObject() && target.getAsJsonObject().has(key)) target = target.getAsJsonObject().get(key);
                else if (target.isJsonArray() && key.matches("\\d+") && Integer.parseInt(key) < target.getAsJsonArray().size())
                    target = target.getAsJsonArray().get(Integer.parseInt(key));
                else throw error(at, "$ref '" + ref + "' points to nothing");
            }
        }
        refs.push(ref);
        try {
            return schema(target, ref, depth + 1);
        } finally {
            refs.pop();
        }
    }

    private Rx string(JsonObject o, String at) {
        int min = count(o, "minLength", 0, at);
        int max = count(o, "maxLength", -1, at);
        if (max >= 0 && min > max) throw error(at, "minLength " + min + " is above maxLength " + max);
        if (o.has("pattern")) {
            if (o.has("minLength") || o.has("maxLength")) throw error(at, "pattern beside minLength/maxLength is not supported");
            String pattern = string(o, "pattern", at);
            try {
                return Rx.seq(QUOTE, RegexParser.parse(pattern, true, true, limits), QUOTE);
            } catch (ConstraintException e) {
                throw error(at, "pattern: " + e.getMessage());
            }
        }
        return Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, min, max), QUOTE);
    }

    private Rx array(JsonObject o, String at, int depth) {
        if (o.has("uniqueItems") && o.get("uniqueItems").getAsBoolean()) throw error(at, "uniqueItems is not supported");
        int min = count(o, "minItems", 0, at);
        int max = count(o, "maxItems", -1, at);
        if (max >= 0 && min > max) throw error(at, "minItems " + min + " is above maxItems " + max);
        Rx item = o.has("items") ? schema(o.get("items"), at + "/items", depth) : any(ANY_DEPTH - 1);
        if (max == 0) return Rx.literal("[]");
        Rx more = new Rx.Repeat(Rx.seq(Rx.literal(","), item), Math.max(0, min - 1), max < 0 ? -1 : max - 1);
        Rx items = Rx.seq(item, more);
        return Rx.seq(Rx.literal("["), min == 0 ? Rx.optional(items) : items, Rx.literal("]"));
    }

    private Rx object(JsonObject o, String at, int depth) {
        JsonObject props = o.has("properties") ? o.getAsJsonObject("properties") : new JsonObject();
        Set<String> required = new java.util.HashSet<>();
        if (o.has("required")) for (JsonElement r : array(o, "required", at)) required.add(r.getAsString());
        for (String r : required)
            if (!props.has(r)) throw error(at, "required property '" + r + "' is not among the properties");
        JsonElement additional = o.get("additionalProperties");
        if (props.isEmpty() && additional != null && additional.isJsonObject()) {
            Rx value = schema(additional, at + "/additionalProperties", depth);
            Rx member = Rx.seq(Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, 0, -1), QUOTE), Rx.literal(":"), value);
            return Rx.seq(Rx.literal("{"), Rx.optional(Rx.seq(member, new Rx.Repeat(Rx.seq(Rx.literal(","), member), 0, -1))), Rx.literal("}"));
        }
        if (props.isEmpty() && (additional == null || additional.isJsonPrimitive() && additional.getAsBoolean())) return anyObject(ANY_DEPTH - 1);
        List<Rx> members = new ArrayList<>();
        List<Boolean> isRequired = new ArrayList<>();
        for (Map.Entry<String, JsonElement> p : props.entrySet()) {
            members.add(Rx.seq(Rx.literal(JsonLiteral.string(p.getKey()) + ":"), schema(p.getValue(), at + "/properties/" + p.getKey(), depth)));
            isRequired.add(required.contains(p.getKey()));
        }
        return Rx.seq(Rx.literal("{"), members(members, isRequired, 0, false), Rx.literal("}"));
    }

    /**
     * Members {@code i..} in order, each optional one present or not, with commas only between
     * those present: after something was written every present member takes a comma (a linear
     * sequence); before, the first present member decides (one branch per member that may be first).
     */
    private static Rx members(List<Rx> m, List<Boolean> required, int i, boolean written) {
        if (i == m.size()) return Rx.EMPTY;
        Rx comma = Rx.literal(",");
        if (written) {
            List<Rx> parts = new ArrayList<>();
            for (int k = i; k < m.size(); k++) {
                Rx one = Rx.seq(comma, m.get(k));
                parts.add(required.get(k) ? one : Rx.optional(one));
            }
            return new Rx.Seq(parts);
        }
        Rx present = Rx.seq(m.get(i), members(m, required, i + 1, true));
        return required.get(i) ? present : Rx.alt(present, members(m, required, i + 1, false));
    }

    /** Any JSON value, arrays and objects nested at most {@code depth} deep; one object per depth, so each compiles once. */
    private static Rx any(int depth) {
        return ANY.get(depth);
    }

    private static Rx makeAny(int depth) {
        List<Rx> options = new ArrayList<>(List.of(Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, 0, -1), QUOTE), NUMBER,
                Rx.literal("true"), Rx.literal("false"), Rx.literal("null")));
        if (depth > 0) {
            Rx item = any(depth - 1);
            options.add(Rx.seq(Rx.literal("["), Rx.optional(Rx.seq(item, new Rx.Repeat(Rx.seq(Rx.literal(","), item), 0, -1))), Rx.literal("]")));
            options.add(anyObject(depth - 1));
        }
        return Rx.alt(options);
    }

    private static Rx anyObject(int depth) {
        return depth < 0 ? makeAnyObject(-1) : ANY_OBJECT.get(depth);
    }

    private static Rx makeAnyObject(int depth) {
        Rx member = Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, 0, -1), QUOTE, Rx.literal(":"), depth >= 0 ? any(depth) : Rx.literal("null"));
        return Rx.seq(Rx.literal("{"), Rx.optional(Rx.seq(member, new Rx.Repeat(Rx.seq(Rx.literal(","), member), 0, -1))), Rx.literal("}"));
    }

    private int count(JsonObject o, String key, int absent, String at) {
        if (!o.has(key)) return absent;
        JsonElement e = o.get(key);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) throw error(at, key + " must be a number");
        double v = e.getAsDouble();
        if (v < 0 || v != Math.rint(v)) throw error(at, key + " must be a non-negative integer");
        if (v > limits.maxRepeat()) throw error(at, key + " " + (long) v + " is above the limit of " + limits.maxRepeat());
        return (int) v;
    }

    private static String string(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) throw error(at, key + " must be a string");
        return e.getAsString();
    }

    private static JsonArray array(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (!e.isJsonArray()) throw error(at, key + " must be an array");
        return e.getAsJsonArray();
    }

    private static ConstraintException error(String at, String what) {
        return new ConstraintException("json_schema at " + at + ": " + what);
    }
}
