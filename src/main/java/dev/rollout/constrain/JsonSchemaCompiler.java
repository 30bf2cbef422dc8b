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
 *       integer digits, 17 fraction digits and 3 exponent digits. {@code minimum}, {@code maximum}
 *       and their exclusive forms bound integers (any bound, rounded inward) and numbers
 *       (integer-valued bounds only; a bounded number is written without exponent): see
 *       {@link NumberRange}. A schema with nothing to say
 *       about a value (no {@code type}, {@code true}) takes any JSON value nested at most
 *       {@value #ANY_DEPTH} deep.</li>
 *   <li>{@code $ref} to {@code #}, {@code #/$defs/...} or {@code #/definitions/...}; a recursive
 *       reference is refused (a regular language cannot nest without bound).</li>
 * </ul>
 * The separators between items and after keys are compact ({@code ,} and {@code :}) or, for text
 * that a chat template writes with Python's {@code json.dumps} (tool-call arguments), Python's
 * ({@code ", "} and {@code ": "}): {@link Separators}.
 * Anything else that constrains a value (multipleOf, format, oneOf, uniqueItems, ...) is refused
 * with the keyword's name, rather than ignored: ignoring it would let through output the client's
 * validator rejects. Annotations (title, description, default, examples, ...) are ignored.
 */
public final class JsonSchemaCompiler {
    /**
     * What goes between a JSON text's items and after its keys: nothing else, ever (no free
     * whitespace, so the constraint ends the value). Python's are what {@code json.dumps} and so a
     * Hugging Face template's {@code tojson} write: a tool call in a model's format is spelled as the
     * template renders it back into the next turn's prompt, so a rollout's tokens and the re-rendered
     * conversation agree, and the model writes what it was trained on.
     */
    public record Separators(String item, String key) {
        public static final Separators COMPACT = new Separators(",", ":");
        public static final Separators PYTHON = new Separators(", ", ": ");
    }

    static final int ANY_DEPTH = 3;
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema", "$id",
            "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "strict");
    private static final Set<String> HANDLED = Set.of("type", "enum", "const", "anyOf", "allOf", "$ref", "properties", "required",
            "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "uniqueItems",
            "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");
    private static final List<String> BOUNDS = List.of("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");
    static final Rx INTEGER = RegexParser.parse("-?(0|[1-9][0-9]{0,18})", ConstraintLimits.DEFAULT);
    static final Rx NUMBER = RegexParser.parse("-?(0|[1-9][0-9]{0,18})(\\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?", ConstraintLimits.DEFAULT);
    private static final Rx.Chars STRING_CHAR = new Rx.Chars(CodePointSet.ALL, true);
    private static final Rx QUOTE = Rx.literal("\"");
    private static final AnyValues COMPACT_ANY = new AnyValues(Separators.COMPACT), PYTHON_ANY = new AnyValues(Separators.PYTHON);

    private final JsonElement root;
    private final ConstraintLimits limits;
    private final Separators sep;
    private final AnyValues anyValues;
    private final Deque<String> refs = new ArrayDeque<>();

    private JsonSchemaCompiler(JsonElement root, Separators sep, ConstraintLimits limits) {
        this.root = root;
        this.limits = limits;
        this.sep = sep;
        this.anyValues = sep.equals(Separators.COMPACT) ? COMPACT_ANY : sep.equals(Separators.PYTHON) ? PYTHON_ANY : new AnyValues(sep);
    }

    public static Rx compile(String schemaJson, ConstraintLimits limits) {
        return compile(schemaJson, Separators.COMPACT, limits);
    }

    public static Rx compile(String schemaJson, Separators sep, ConstraintLimits limits) {
        if (schemaJson.length() > limits.maxPatternChars())
            throw new ConstraintException("json_schema is " + schemaJson.length() + " characters, more than the limit of " + limits.maxPatternChars());
        JsonElement root;
        try {
            root = JsonParser.parseString(schemaJson);
        } catch (JsonParseException e) {
            throw new ConstraintException("json_schema is not valid JSON: " + e.getMessage());
        }
        return new JsonSchemaCompiler(root, sep, limits).schema(root, "#", 0);
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
        if (o.has("const")) return Rx.literal(JsonLiteral.of(o.get("const"), sep));
        if (o.has("enum")) {
            JsonArray values = array(o, "enum", at);
            if (values.isEmpty()) throw error(at, "enum is empty");
            List<Rx> options = new ArrayList<>();
            for (JsonElement v : values) options.add(Rx.literal(JsonLiteral.of(v, sep)));
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
        } else if (BOUNDS.stream().anyMatch(o::has)) {
            types.add("number");  // a bound says nothing of other types; writing a number is one valid reading
        } else {
            return any(ANY_DEPTH);
        }
        List<Rx> rx = new ArrayList<>();
        for (String t : types) {
            rx.add(switch (t) {
                case "string" -> string(o, at);
                case "integer" -> number(o, at, true);
                case "number" -> number(o, at, false);
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

    /** An integer or a number, within its bounds where it has any ({@link NumberRange}). */
    private Rx number(JsonObject o, String at, boolean integer) {
        NumberRange.Bound lower = bound(o, "minimum", "exclusiveMinimum", at, true), upper = bound(o, "maximum", "exclusiveMaximum", at, false);
        if (lower == null && upper == null) return integer ? INTEGER : NUMBER;
        if (!integer)
            for (NumberRange.Bound b : java.util.Arrays.asList(lower, upper))
                if (b != null && !NumberRange.integral(b.value()))
                    throw error(at, "a number's bound " + b.value().toPlainString() + " is not an integer: only integer bounds are "
                            + "supported on numbers (any bound on integers)");
        Rx rx = integer ? NumberRange.integers(lower, upper) : NumberRange.numbers(lower, upper);
        if (rx == null) throw error(at, "no " + (integer ? "integer" : "number") + " is within the bounds");
        return rx;
    }

    /**
     * The tighter of a schema's inclusive and exclusive bound on one side (draft 6+: exclusive
     * bounds are numbers; draft 4's boolean form is refused by name), or null where it has none.
     */
    private NumberRange.Bound bound(JsonObject o, String inclusiveKey, String exclusiveKey, String at, boolean lower) {
        NumberRange.Bound inclusive = o.has(inclusiveKey) ? new NumberRange.Bound(decimal(o, inclusiveKey, at), false) : null;
        NumberRange.Bound exclusive = null;
        if (o.has(exclusiveKey)) {
            if (o.get(exclusiveKey).isJsonPrimitive() && o.get(exclusiveKey).getAsJsonPrimitive().isBoolean())
                throw error(at, exclusiveKey + " as a boolean (draft 4) is not supported: give the bound as its value");
            exclusive = new NumberRange.Bound(decimal(o, exclusiveKey, at), true);
        }
        if (inclusive == null || exclusive == null) return inclusive != null ? inclusive : exclusive;
        int c = exclusive.value().compareTo(inclusive.value());
        return (lower ? c >= 0 : c <= 0) ? exclusive : inclusive;
    }

    private static java.math.BigDecimal decimal(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) throw error(at, key + " must be a number");
        java.math.BigDecimal v = e.getAsBigDecimal();
        // far beyond the 19 digits written: clamp, so that a hostile 1e999999 costs nothing
        java.math.BigDecimal cap = new java.math.BigDecimal(NumberRange.MAX).add(java.math.BigDecimal.ONE);
        return v.abs().compareTo(cap) > 0 ? cap.multiply(java.math.BigDecimal.valueOf(v.signum())) : v;
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
        // an upper bound is also zod's, in UTF-16 units (an emoji counts 2): see Rx.StringChars
        return Rx.seq(QUOTE, max < 0 ? new Rx.Repeat(STRING_CHAR, min, -1) : new Rx.StringChars(STRING_CHAR, min, max), QUOTE);
    }

    private Rx array(JsonObject o, String at, int depth) {
        if (o.has("uniqueItems") && o.get("uniqueItems").getAsBoolean()) throw error(at, "uniqueItems is not supported");
        int min = count(o, "minItems", 0, at);
        int max = count(o, "maxItems", -1, at);
        if (max >= 0 && min > max) throw error(at, "minItems " + min + " is above maxItems " + max);
        Rx item = o.has("items") ? schema(o.get("items"), at + "/items", depth) : any(ANY_DEPTH - 1);
        if (max == 0) return Rx.literal("[]");
        Rx more = new Rx.Repeat(Rx.seq(Rx.literal(sep.item()), item), Math.max(0, min - 1), max < 0 ? -1 : max - 1);
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
            Rx member = Rx.seq(Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, 0, -1), QUOTE), Rx.literal(sep.key()), value);
            return Rx.seq(Rx.literal("{"), Rx.optional(Rx.seq(member, new Rx.Repeat(Rx.seq(Rx.literal(sep.item()), member), 0, -1))),
                    Rx.literal("}"));
        }
        if (props.isEmpty() && (additional == null || additional.isJsonPrimitive() && additional.getAsBoolean()))
            return anyValues.object(ANY_DEPTH - 1);
        List<Rx> members = new ArrayList<>();
        List<Boolean> isRequired = new ArrayList<>();
        for (Map.Entry<String, JsonElement> p : props.entrySet()) {
            members.add(Rx.seq(Rx.literal(JsonLiteral.string(p.getKey()) + sep.key()), schema(p.getValue(), at + "/properties/" + p.getKey(), depth)));
            isRequired.add(required.contains(p.getKey()));
        }
        return Rx.seq(Rx.literal("{"), members(members, isRequired, 0, false, Rx.literal(sep.item())), Rx.literal("}"));
    }

    /**
     * Members {@code i..} in order, each optional one present or not, with commas only between
     * those present: after something was written every present member takes a comma (a linear
     * sequence); before, the first present member decides (one branch per member that may be first).
     */
    private static Rx members(List<Rx> m, List<Boolean> required, int i, boolean written, Rx comma) {
        if (i == m.size()) return Rx.EMPTY;
        if (written) {
            List<Rx> parts = new ArrayList<>();
            for (int k = i; k < m.size(); k++) {
                Rx one = Rx.seq(comma, m.get(k));
                parts.add(required.get(k) ? one : Rx.optional(one));
            }
            return new Rx.Seq(parts);
        }
        Rx present = Rx.seq(m.get(i), members(m, required, i + 1, true, comma));
        return required.get(i) ? present : Rx.alt(present, members(m, required, i + 1, false, comma));
    }

    /** Any JSON value, arrays and objects nested at most {@code depth} deep. */
    private Rx any(int depth) {
        return anyValues.any(depth);
    }

    /**
     * Free-form values for one choice of separators: one object per depth, so that each compiles
     * once (the builder minimizes a repeated body once per object).
     */
    private static final class AnyValues {
        private final Separators sep;
        private final List<Rx> any = new ArrayList<>(), anyObject = new ArrayList<>();

        AnyValues(Separators sep) {
            this.sep = sep;
            for (int d = 0; d <= ANY_DEPTH; d++) {
                any.add(makeAny(d));  // uses any and anyObject at d - 1
                anyObject.add(makeAnyObject(d));  // uses any at d
            }
        }

        Rx any(int depth) {
            return any.get(depth);
        }

        Rx object(int depth) {
            return depth < 0 ? makeAnyObject(-1) : anyObject.get(depth);
        }

        private Rx makeAny(int depth) {
            List<Rx> options = new ArrayList<>(List.of(Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, 0, -1), QUOTE), NUMBER,
                    Rx.literal("true"), Rx.literal("false"), Rx.literal("null")));
            if (depth > 0) {
                Rx item = any(depth - 1);
                options.add(Rx.seq(Rx.literal("["), Rx.optional(Rx.seq(item, new Rx.Repeat(Rx.seq(Rx.literal(sep.item()), item), 0, -1))),
                        Rx.literal("]")));
                options.add(object(depth - 1));
            }
            return Rx.alt(options);
        }

        private Rx makeAnyObject(int depth) {
            Rx member = Rx.seq(QUOTE, new Rx.Repeat(STRING_CHAR, 0, -1), QUOTE, Rx.literal(sep.key()), depth >= 0 ? any(depth) : Rx.literal("null"));
            return Rx.seq(Rx.literal("{"), Rx.optional(Rx.seq(member, new Rx.Repeat(Rx.seq(Rx.literal(sep.item()), member), 0, -1))),
                    Rx.literal("}"));
        }
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
