package dev.rollout.constrain;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A structural tag, xgrammar's format that SGLang and vLLM take as {@code structural_tag}: literal
 * text, JSON-schema values and regexes in sequence or as alternatives, wrapped in begin/end tags,
 * repeated with a separator. It is how a model's tool-call format becomes one constraint:
 * {@code <tool_call>\n{"name": "f", "arguments": } + f's parameters + {@code }\n</tool_call>}, for
 * each offered f, one or more times (ADR 0029's addendum of slice 3).
 *
 * <pre>{"type": "structural_tag", "format": FORMAT}</pre>
 * where FORMAT is one of
 * <ul>
 *   <li>{@code {"type": "const_string", "value": TEXT}}</li>
 *   <li>{@code {"type": "json_schema", "json_schema": SCHEMA}}, and our extension
 *       {@code "separators": [ITEM, KEY]} (Python's {@code json.dumps} name and order; compact by
 *       default, as everywhere else)</li>
 *   <li>{@code {"type": "regex", "pattern": REGEX}}</li>
 *   <li>{@code {"type": "sequence", "elements": [FORMAT, ...]}} and {@code {"type": "or", ...}}</li>
 *   <li>{@code {"type": "tag", "begin": TEXT, "content": FORMAT, "end": TEXT or [TEXT, ...]}}</li>
 *   <li>{@code {"type": "tags_with_separator", "tags": [TAG, ...], "separator": TEXT,
 *       "at_least_one": false, "stop_after_first": false}}: zero or more of the tags (one or more,
 *       at most one), separated</li>
 * </ul>
 * Refused by name, for now: {@code any_text} and {@code triggered_tags} (free text up to a tag or
 * a trigger: a regular language, but one whose free part must exclude the tag, which this engine
 * does not build yet), {@code grammar} (EBNF), and the older {@code structures}/{@code triggers} form.
 */
public final class StructuralTag {
    /** How deep formats may nest (each level is a Java stack frame while compiling). */
    static final int MAX_NESTING = 16;
    private static final Set<String> LATER = Set.of("any_text", "triggered_tags", "grammar");

    private final ConstraintLimits limits;

    private StructuralTag(ConstraintLimits limits) {
        this.limits = limits;
    }

    public static Rx compile(String text, ConstraintLimits limits) {
        if (text.length() > limits.maxPatternChars())
            throw new ConstraintException("structural_tag is " + text.length() + " characters, more than the limit of " + limits.maxPatternChars());
        JsonElement root;
        try {
            root = JsonParser.parseString(text);
        } catch (JsonParseException | StackOverflowError e) {
            throw new ConstraintException("structural_tag is not valid JSON: " + e.getMessage());
        }
        if (!root.isJsonObject()) throw new ConstraintException("structural_tag must be {\"type\": \"structural_tag\", \"format\": {...}}");
        JsonObject o = root.getAsJsonObject();
        if (o.has("structures") || o.has("triggers"))
            throw new ConstraintException("structural_tag: the older form with structures and triggers is not supported (the text before a trigger is "
                    + "free, which this engine does not build yet): send {\"type\": \"structural_tag\", \"format\": {...}}");
        if (!(o.get("type") instanceof com.google.gson.JsonPrimitive t) || !t.isString() || !t.getAsString().equals("structural_tag")
                || !o.has("format"))
            throw new ConstraintException("structural_tag must be {\"type\": \"structural_tag\", \"format\": {...}}");
        return new StructuralTag(limits).format(o.get("format"), "format", 0);
    }

    private Rx format(JsonElement e, String at, int depth) {
        if (depth >= MAX_NESTING) throw error(at, "formats nest deeper than the limit of " + MAX_NESTING);
        if (!e.isJsonObject()) throw error(at, "a format must be an object with a type");
        JsonObject o = e.getAsJsonObject();
        String type = string(o, "type", at, false);
        return switch (type) {
            case "const_string" -> {
                String value = string(o, "value", at, false);
                if (value.isEmpty()) throw error(at, "value is empty");
                yield Rx.literal(value);
            }
            case "json_schema" -> jsonSchema(o, at);
            case "regex" -> {
                try {
                    yield RegexParser.parse(string(o, "pattern", at, false), limits);
                } catch (ConstraintException x) {
                    throw error(at + ".pattern", x.getMessage());
                }
            }
            case "sequence", "or" -> {
                JsonArray elements = array(o, "elements", at);
                List<Rx> parts = new ArrayList<>();
                for (int i = 0; i < elements.size(); i++) parts.add(format(elements.get(i), at + ".elements[" + i + "]", depth + 1));
                yield type.equals("or") ? Rx.alt(parts) : new Rx.Seq(parts);
            }
            case "tag" -> tag(o, at, depth);
            case "tags_with_separator" -> {
                JsonArray tags = array(o, "tags", at);
                List<Rx> options = new ArrayList<>();
                for (int i = 0; i < tags.size(); i++) {
                    String tagAt = at + ".tags[" + i + "]";
                    if (!tags.get(i).isJsonObject() || !"tag".equals(string(tags.get(i).getAsJsonObject(), "type", tagAt, true)))
                        throw error(tagAt, "must be a format of type tag");
                    options.add(tag(tags.get(i).getAsJsonObject(), tagAt, depth + 1));
                }
                Rx one = Rx.alt(options);
                String separator = string(o, "separator", at, false);
                boolean atLeastOne = bool(o, "at_least_one", at), onlyOne = bool(o, "stop_after_first", at);
                Rx some = onlyOne ? one : Rx.seq(one, new Rx.Repeat(Rx.seq(Rx.literal(separator), one), 0, -1));
                yield atLeastOne ? some : Rx.optional(some);
            }
            default -> throw error(at, LATER.contains(type) ? "the format type " + type + " is not supported yet"
                    : "unknown format type '" + type + "' (const_string, json_schema, regex, sequence, or, tag, tags_with_separator)");
        };
    }

    private Rx tag(JsonObject o, String at, int depth) {
        if (!o.has("content")) throw error(at, "a tag needs content (a format)");
        Rx content = format(o.get("content"), at + ".content", depth + 1);
        JsonElement end = o.get("end");
        List<Rx> ends = new ArrayList<>();
        if (end != null && end.isJsonArray()) {
            for (JsonElement x : end.getAsJsonArray()) {
                if (!x.isJsonPrimitive() || !x.getAsJsonPrimitive().isString()) throw error(at, "end must be a string or a list of strings");
                ends.add(Rx.literal(x.getAsString()));
            }
            if (ends.isEmpty()) throw error(at, "end is an empty list");
        } else {
            ends.add(Rx.literal(string(o, "end", at, false)));
        }
        return Rx.seq(Rx.literal(string(o, "begin", at, false)), content, Rx.alt(ends));
    }

    private Rx jsonSchema(JsonObject o, String at) {
        JsonElement schema = o.get("json_schema");
        if (schema == null || !(schema.isJsonObject() || schema.isJsonPrimitive() && schema.getAsJsonPrimitive().isBoolean()))
            throw error(at, "json_schema must be a JSON schema (an object)");
        JsonSchemaCompiler.Separators sep = JsonSchemaCompiler.Separators.COMPACT;
        if (o.has("separators")) {
            JsonElement s = o.get("separators");
            if (!s.isJsonArray() || s.getAsJsonArray().size() != 2 || !s.getAsJsonArray().get(0).isJsonPrimitive()
                    || !s.getAsJsonArray().get(1).isJsonPrimitive())
                throw error(at, "separators must be [ITEM, KEY], e.g. [\", \", \": \"]");
            sep = new JsonSchemaCompiler.Separators(s.getAsJsonArray().get(0).getAsString(), s.getAsJsonArray().get(1).getAsString());
            if (!sep.item().strip().equals(",") || !sep.key().strip().equals(":") || sep.item().length() > 4 || sep.key().length() > 4)
                throw error(at, "separators must be a comma and a colon with at most a few spaces around them");
        }
        try {
            return JsonSchemaCompiler.compile(schema.toString(), sep, limits);
        } catch (ConstraintException x) {
            throw error(at, x.getMessage());
        }
    }

    private static String string(JsonObject o, String key, String at, boolean optional) {
        JsonElement e = o.get(key);
        if (e == null && optional) return null;
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) throw error(at, key + " must be a string");
        return e.getAsString();
    }

    private static boolean bool(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (e == null || e.isJsonNull()) return false;
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) throw error(at, key + " must be true or false");
        return e.getAsBoolean();
    }

    private static JsonArray array(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (e == null || !e.isJsonArray() || e.getAsJsonArray().isEmpty()) throw error(at, key + " must be a non-empty list");
        return e.getAsJsonArray();
    }

    private static ConstraintException error(String at, String what) {
        return new ConstraintException("structural_tag at " + at + ": " + what);
    }
}
