package dev.rollout.constrain;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.IntFunction;

/**
 * A structural tag, xgrammar's format that SGLang and vLLM take as {@code structural_tag}: literal
 * text, JSON-schema values, regexes, grammars and free text in sequence or as alternatives,
 * wrapped in begin/end tags, repeated with a separator, or dispatched on triggers inside free
 * text. It is how a model's tool-call format becomes one constraint:
 * {@code <tool_call>\n{"name": "f", "arguments": } + f's parameters + {@code }\n</tool_call>}, for
 * each offered f, one or more times (ADR 0029's addendum of slice 3), or anywhere in free text
 * under {@code tool_choice: "auto"} (the addendum on free text).
 *
 * <pre>{"type": "structural_tag", "format": FORMAT}</pre>
 * where FORMAT is one of
 * <ul>
 *   <li>{@code {"type": "const_string", "value": TEXT}}</li>
 *   <li>{@code {"type": "json_schema", "json_schema": SCHEMA}}, and our extension
 *       {@code "separators": [ITEM, KEY]} (Python's {@code json.dumps} name and order; compact by
 *       default, as everywhere else)</li>
 *   <li>{@code {"type": "regex", "pattern": REGEX}}; {@code {"type": "grammar", "grammar": EBNF}}</li>
 *   <li>{@code {"type": "any_text", "excludes": [TEXT, ...], "max_chars": N}}: any text (valid
 *       UTF-8) containing none of the excludes, nor the end of the tag it is inside</li>
 *   <li>{@code {"type": "sequence", "elements": [FORMAT, ...]}} and {@code {"type": "or", ...}};
 *       {@code optional}, {@code star}, {@code plus} ({@code content}) and {@code repeat}
 *       ({@code content}, {@code min}, {@code max}, −1 for no bound)</li>
 *   <li>{@code {"type": "tag", "begin": TEXT, "content": FORMAT, "end": TEXT or [TEXT, ...]}}</li>
 *   <li>{@code {"type": "tags_with_separator", "tags": [TAG, ...], "separator": TEXT,
 *       "at_least_one": false, "stop_after_first": false}}: zero or more of the tags (one or more,
 *       at most one), separated</li>
 *   <li>{@code {"type": "triggered_tags", "triggers": [TEXT, ...], "tags": [TAG, ...],
 *       "excludes": [TEXT, ...], "at_least_one": false, "stop_after_first": false}}: free text in
 *       which each trigger, the moment it is written, starts one of the tags whose begin starts
 *       with it; text again after the tag. {@code at_least_one}: a tag first, no text before it;
 *       {@code stop_after_first}: nothing after the first tag ({@link #triggered}).</li>
 *   <li>{@code {"type": "dispatch", "rules": [[TEXT, FORMAT], ...], "loop": true, "excludes": [...]}}:
 *       the same with each pattern a whole begin and no end ({@link #dispatch})</li>
 *   <li>our extension {@code {"type": "reasoning", "begin": "<think>", "end": "</think>",
 *       "started": false, "content": FORMAT}}: an optional reasoning block of free text first, then
 *       the content ({@link #reasoning})</li>
 * </ul>
 * SGLang's older form, {@code {"type": "structural_tag", "structures": [{"begin", "schema",
 * "end"}, ...], "triggers": [...]}}, is read as the {@code triggered_tags} it means. Token-level
 * formats ({@code token}, {@code token_triggered_tags}, ...) and {@code any_text}'s
 * {@code max_tokens} are refused by name: the automaton reads text, not token ids.
 */
public final class StructuralTag {
    /** How deep formats may nest (each level is a Java stack frame while compiling). */
    static final int MAX_NESTING = 16;
    private static final Set<String> TOKEN_LEVEL = Set.of("token", "exclude_token", "any_tokens", "token_triggered_tags", "token_dispatch");
    /** How a refusal starts: the path that follows is the field's, from the tag's top ({@code format.elements[2]}). */
    private static final String PREFIX = "structural_tag at ";
    private static final String TYPES = "const_string, json_schema, regex, grammar, any_text, sequence, or, optional, star, plus, repeat, "
            + "tag, tags_with_separator, triggered_tags, dispatch, reasoning";

    private final ConstraintLimits limits;
    private final long deadline;

    private StructuralTag(ConstraintLimits limits, long deadline) {
        this.limits = limits;
        this.deadline = deadline;
    }

    /** The tag's minimal DFA: its free text and its whole automaton built within one time limit. */
    static ByteDfa dfa(String text, ConstraintLimits limits) {
        long deadline = AutomatonBuilder.cpuNanos() + limits.maxMillis() * 1_000_000L;
        return AutomatonBuilder.compile(compile(text, limits, deadline), limits, deadline);
    }

    /** The tag as an {@link Rx}; its free-text parts are compiled already ({@link FreeText}). */
    public static Rx compile(String text, ConstraintLimits limits) {
        return compile(text, limits, AutomatonBuilder.cpuNanos() + limits.maxMillis() * 1_000_000L);
    }

    private static Rx compile(String text, ConstraintLimits limits, long deadline) {
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
        StructuralTag st = new StructuralTag(limits, deadline);
        if (!o.has("format") && (o.has("structures") || o.has("triggers"))) return st.format(legacy(o), "structures", 0, List.of());
        if (!(o.get("type") instanceof com.google.gson.JsonPrimitive t) || !t.isString() || !t.getAsString().equals("structural_tag")
                || !o.has("format"))
            throw new ConstraintException("structural_tag must be {\"type\": \"structural_tag\", \"format\": {...}}");
        return st.format(o.get("format"), "format", 0, List.of());
    }

    /**
     * SGLang's older form (what it sends itself for {@code tool_choice: "auto"} with strict tools),
     * as the triggered tags it stands for: xgrammar reads it so, free text up to a trigger, then
     * one of the structures whose begin starts with it, then text again.
     */
    private static JsonObject legacy(JsonObject o) {
        if (!(o.get("structures") instanceof JsonArray structures) || !(o.get("triggers") instanceof JsonArray triggers))
            throw new ConstraintException("structural_tag: the older form needs structures (a list of {begin, schema, end}) and triggers (a list)");
        JsonArray tags = new JsonArray();
        for (int i = 0; i < structures.size(); i++) {
            if (!structures.get(i).isJsonObject()) throw error("structures[" + i + "]", "must be {\"begin\", \"schema\", \"end\"}");
            JsonObject s = structures.get(i).getAsJsonObject();
            JsonObject content = new JsonObject();
            content.addProperty("type", "json_schema");
            content.add("json_schema", s.has("schema") ? s.get("schema") : new JsonObject());
            JsonObject tag = new JsonObject();
            tag.addProperty("type", "tag");
            tag.add("begin", s.get("begin"));
            tag.add("content", content);
            tag.add("end", s.get("end"));
            tags.add(tag);
        }
        JsonObject f = new JsonObject();
        f.addProperty("type", "triggered_tags");
        f.add("triggers", triggers);
        f.add("tags", tags);
        if (o.has("at_least_one")) f.add("at_least_one", o.get("at_least_one"));
        return f;
    }

    /**
     * @param ends the end strings of the nearest tag around this format: free text inside a tag
     *     must not contain them, or the tag could not tell its end from its content (xgrammar
     *     adds them to the excludes the same way)
     */
    private Rx format(JsonElement e, String at, int depth, List<String> ends) {
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
            case "grammar" -> grammar(string(o, "grammar", at, false), at);
            case "any_text" -> anyText(o, at, ends);
            case "sequence", "or" -> {
                JsonArray elements = array(o, "elements", at);
                List<Rx> parts = new ArrayList<>();
                for (int i = 0; i < elements.size(); i++) parts.add(format(elements.get(i), at + ".elements[" + i + "]", depth + 1, ends));
                yield type.equals("or") ? Rx.alt(parts) : new Rx.Seq(parts);
            }
            case "optional", "star", "plus" -> {
                if (!o.has("content")) throw error(at, type + " needs content (a format)");
                Rx c = format(o.get("content"), at + ".content", depth + 1, ends);
                yield type.equals("optional") ? Rx.optional(c) : new Rx.Repeat(c, type.equals("plus") ? 1 : 0, -1);
            }
            case "repeat" -> {
                if (!o.has("content")) throw error(at, "repeat needs content (a format)");
                int min = integer(o, "min", at), max = integer(o, "max", at);
                if (min < 0 || max < -1 || max >= 0 && max < min)
                    throw error(at, "repeat needs 0 <= min <= max, or max -1 for no bound (min " + min + ", max " + max + ")");
                if (Math.max(min, max) > limits.maxRepeat())
                    throw error(at, "repeat bound " + Math.max(min, max) + " is more than the limit of " + limits.maxRepeat());
                yield new Rx.Repeat(format(o.get("content"), at + ".content", depth + 1, ends), min, max);
            }
            case "tag" -> tag(o, at, depth);
            case "tags_with_separator" -> {
                List<Rx> options = new ArrayList<>();
                JsonArray tags = array(o, "tags", at);
                for (int i = 0; i < tags.size(); i++) options.add(tag(tagObject(tags, i, at), at + ".tags[" + i + "]", depth + 1));
                Rx one = Rx.alt(options);
                String separator = string(o, "separator", at, false);
                boolean atLeastOne = bool(o, "at_least_one", at), onlyOne = bool(o, "stop_after_first", at);
                Rx some = onlyOne ? one : Rx.seq(one, new Rx.Repeat(Rx.seq(Rx.literal(separator), one), 0, -1));
                yield atLeastOne ? some : Rx.optional(some);
            }
            case "triggered_tags" -> triggered(o, Spelling.TRIGGERED_TAGS, at, depth, ends);
            case "dispatch" -> triggered(dispatch(o, at), Spelling.DISPATCH, at, depth, ends);
            case "reasoning" -> reasoning(o, at, depth, ends);
            default -> throw error(at, TOKEN_LEVEL.contains(type) ? "the format type " + type + " is not supported: it works on token ids, and "
                    + "this engine's automata read text (write the token's text as a string)"
                    : "unknown format type '" + type + "' (" + TYPES + ")");
        };
    }

    /** A tag: begin, content, one of the ends. */
    private Rx tag(JsonObject o, String at, int depth) {
        Parts p = parts(o, at, at + ".content", depth);
        return Rx.seq(Rx.literal(p.begin()), p.content(), p.end());
    }

    /** A tag's begin, and its content and ends as one automaton each (shared where a tag is used twice). */
    private record Parts(String begin, Rx content, Rx end) {}

    private Parts parts(JsonObject o, String at, String contentAt, int depth) {
        if (!o.has("content")) throw error(at, "a tag needs content (a format)");
        String begin = string(o, "begin", at, false);
        List<String> ends = ends(o, at);
        Rx content = format(o.get("content"), contentAt, depth + 1, ends);
        List<Rx> endRx = new ArrayList<>();
        for (String end : ends) endRx.add(Rx.literal(end));
        return new Parts(begin, content, Rx.alt(endRx));
    }

    private static List<String> ends(JsonObject o, String at) {
        JsonElement end = o.get("end");
        List<String> ends = new ArrayList<>();
        if (end != null && end.isJsonArray()) {
            for (JsonElement x : end.getAsJsonArray()) {
                if (!x.isJsonPrimitive() || !x.getAsJsonPrimitive().isString()) throw error(at, "end must be a string or a list of strings");
                ends.add(x.getAsString());
            }
            if (ends.isEmpty()) throw error(at, "end is an empty list");
        } else {
            ends.add(string(o, "end", at, false));
        }
        return ends;
    }

    private static JsonObject tagObject(JsonArray tags, int i, String at) {
        String tagAt = at + ".tags[" + i + "]";
        if (!tags.get(i).isJsonObject() || !"tag".equals(string(tags.get(i).getAsJsonObject(), "type", tagAt, true)))
            throw error(tagAt, "must be a format of type tag");
        return tags.get(i).getAsJsonObject();
    }

    /**
     * Any text without the excludes (and the surrounding tag's ends). {@code max_chars} bounds it
     * in characters; {@code max_tokens} is refused: tokens are not in the text the automaton reads.
     */
    private Rx anyText(JsonObject o, String at, List<String> ends) {
        if (o.has("max_tokens") && !o.get("max_tokens").isJsonNull())
            throw error(at, "any_text's max_tokens is not supported: the automaton reads text, not tokens (max_chars bounds characters)");
        int maxChars = -1;
        if (o.has("max_chars") && !o.get("max_chars").isJsonNull()) {
            maxChars = integer(o, "max_chars", at);
            if (maxChars < 0) throw error(at, "max_chars must be 0 or more, not " + maxChars);
            if (maxChars > limits.maxRepeat()) throw error(at, "max_chars " + maxChars + " is more than the limit of " + limits.maxRepeat());
        }
        List<String> own = strings(o, "excludes", at, true), excludes = withEnds(own, ends);
        if (excludes.isEmpty() && maxChars < 0) return new Rx.Repeat(Rx.chars(CodePointSet.ALL), 0, -1);
        return new Rx.Compiled(new FreeText(List.of(), excludes, where(at, i -> at, own.size()), limits, deadline).text(maxChars));
    }

    /**
     * Free text in which a trigger starts a tag ({@link FreeText} builds the text and the text up
     * to each trigger), as xgrammar's tag dispatch reads it:
     * <ul>
     *   <li>neither flag: (text, trigger, rest of a tag)*, text;</li>
     *   <li>{@code stop_after_first}: text, or text, trigger and the rest of a tag, and then nothing;</li>
     *   <li>{@code at_least_one}: a whole tag first (no text before it), then as with neither flag;</li>
     *   <li>both: exactly one whole tag.</li>
     * </ul>
     * Each tag's begin must start with exactly one of the triggers; the text excludes
     * {@code excludes} and the ends of the tag around this format. Refusals name the fields of
     * the spelling the client wrote ({@link Spelling}).
     */
    private Rx triggered(JsonObject o, Spelling spelling, String at, int depth, List<String> ends) {
        List<String> triggers = strings(o, "triggers", at, false);
        if (triggers.isEmpty()) throw error(at, "triggers must be a non-empty list");
        List<String> own = strings(o, "excludes", at, true), excludes = withEnds(own, ends);
        FreeText.Where where = where(at, i -> spelling.trigger(at, i), own.size());
        FreeText.check(triggers, excludes, where);   // before the tags: a trigger listed twice is named as that
        JsonArray tags = array(o, "tags", at);
        boolean atLeastOne = bool(o, "at_least_one", at), onlyOne = bool(o, "stop_after_first", at);
        Map<Integer, List<Rx>> rests = new LinkedHashMap<>();
        List<Rx> whole = new ArrayList<>();
        for (int i = 0; i < tags.size(); i++) {
            JsonObject tag = tagObject(tags, i, at);
            String tagAt = spelling.tag(at, i);
            Parts p = parts(tag, tagAt, spelling.content(at, i), depth + 1);
            String begin = p.begin();
            int trigger = -1;
            for (int t = 0; t < triggers.size(); t++) {
                if (!begin.startsWith(triggers.get(t))) continue;
                if (trigger >= 0) throw error(tagAt, "its begin starts with two triggers, " + FreeText.quote(triggers.get(trigger)) + " and "
                        + FreeText.quote(triggers.get(t)));
                trigger = t;
            }
            if (trigger < 0) throw error(tagAt, "its begin " + FreeText.quote(begin) + " starts with none of the triggers");
            whole.add(Rx.seq(Rx.literal(begin), p.content(), p.end()));
            // the rest of the tag, after the trigger the free text ended with
            String rest = begin.substring(triggers.get(trigger).length());
            rests.computeIfAbsent(trigger, t -> new ArrayList<>()).add(Rx.seq(Rx.literal(rest), p.content(), p.end()));
        }
        if (atLeastOne && onlyOne) return Rx.alt(whole);
        // the free text is built once per trigger (and once alone), each about as large as the trie of
        // the triggers and excludes: a hostile tag set is refused before any of it is built
        long bytes = 0;
        for (String x : triggers) bytes += x.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        for (String x : excludes) bytes += x.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        long estimate = (bytes + 1) * (rests.size() + 1);
        if (estimate > limits.maxNfaStates())
            throw error(at, rests.size() + " triggers in use and " + bytes + " bytes of triggers and excludes expand to about " + estimate
                    + " automaton states before determinizing, more than the limit of " + limits.maxNfaStates());
        FreeText free = new FreeText(triggers, excludes, where, limits, deadline);
        Rx text = new Rx.Compiled(free.text(-1));
        List<Rx> dispatch = new ArrayList<>();
        for (Map.Entry<Integer, List<Rx>> r : rests.entrySet())
            dispatch.add(Rx.seq(new Rx.Compiled(free.upTo(r.getKey())), Rx.alt(r.getValue())));
        Rx one = Rx.alt(dispatch);
        if (onlyOne) return Rx.alt(text, one);
        Rx loop = Rx.seq(new Rx.Repeat(one, 0, -1), text);
        return atLeastOne ? Rx.seq(Rx.alt(whole), loop) : loop;
    }

    /**
     * Our extension, for reasoning models: {@code {"type": "reasoning", "begin": "<think>", "end":
     * "</think>", "started": false, "content": FORMAT}}. The text may open (after ASCII
     * whitespace) with a reasoning block, begin, free text without end, end, and then the content
     * follows; it may stop inside the block. Where {@code started} the prompt opened the block: the
     * text starts inside it. A text that does not open the block is the content's. This is
     * SGLang's reasoning parser, which leaves the block out of the grammar, as one automaton: the
     * content (tool calls under "auto") is held only where the reply's parser reads content.
     * Built as the union of the two readings with the content's texts that open the block taken
     * out ({@link FreeText#notOpeningWith}), so that the two never run side by side.
     */
    private Rx reasoning(JsonObject o, String at, int depth, List<String> ends) {
        String begin = string(o, "begin", at, false), end = string(o, "end", at, false);
        if (begin.isEmpty() || end.isEmpty()) throw error(at, "begin and end must not be empty");
        if (!o.has("content")) throw error(at, "reasoning needs content (a format)");
        ByteDfa content = AutomatonBuilder.compile(format(o.get("content"), at + ".content", depth + 1, ends), limits, deadline);
        Rx thought = new Rx.Compiled(new FreeText(List.of(), withEnds(List.of(end), ends), FreeText.Where.of(PREFIX + at), limits, deadline)
                .text(-1));
        Rx after = Rx.seq(Rx.literal(end), new Rx.Compiled(content));
        if (bool(o, "started", at)) return Rx.alt(Rx.seq(thought, after), thought);
        Rx block = Rx.seq(new Rx.Repeat(Rx.chars(CodePointSet.ofRanges(0x09, 0x0D, ' ', ' ')), 0, -1), Rx.literal(begin), thought,
                Rx.optional(after));
        ByteDfa rest = FreeText.notOpeningWith(content, begin, limits, deadline);
        return rest == null ? block : Rx.alt(block, new Rx.Compiled(rest));
    }

    /**
     * xgrammar's {@code dispatch} ({@code rules: [[PATTERN, FORMAT], ...]}, {@code loop}, default
     * true, {@code excludes}) is triggered tags whose begin is the whole trigger and whose end is
     * nothing: free text, a pattern, its format, free text again (only once where {@code loop} is false).
     */
    private static JsonObject dispatch(JsonObject o, String at) {
        JsonArray rules = array(o, "rules", at), triggers = new JsonArray(), tags = new JsonArray();
        for (int i = 0; i < rules.size(); i++) {
            JsonElement r = rules.get(i);
            if (!r.isJsonArray() || r.getAsJsonArray().size() != 2 || !r.getAsJsonArray().get(0).isJsonPrimitive()
                    || !r.getAsJsonArray().get(0).getAsJsonPrimitive().isString())
                throw error(at + ".rules[" + i + "]", "a rule must be [PATTERN, FORMAT]");
            triggers.add(r.getAsJsonArray().get(0));
            JsonObject tag = new JsonObject();
            tag.addProperty("type", "tag");
            tag.add("begin", r.getAsJsonArray().get(0));
            tag.add("content", r.getAsJsonArray().get(1));
            tag.addProperty("end", "");
            tags.add(tag);
        }
        JsonObject f = new JsonObject();
        f.add("triggers", triggers);
        f.add("tags", tags);
        if (o.has("excludes")) f.add("excludes", o.get("excludes"));
        JsonElement loop = o.get("loop");
        if (loop != null && !loop.isJsonNull() && (!loop.isJsonPrimitive() || !loop.getAsJsonPrimitive().isBoolean()))
            throw error(at, "loop must be true or false");
        f.addProperty("stop_after_first", loop != null && !loop.isJsonNull() && !loop.getAsBoolean());
        return f;
    }

    /**
     * Where a triggered format's parts are in the request: {@code triggered_tags}' own fields, or
     * {@code dispatch}'s rules ({@code [PATTERN, FORMAT]}, read as the same triggered tags), so that a
     * refusal names the field the client wrote, not one of the tags it was read as.
     */
    private record Spelling(String trigger, String tag, String content) {
        static final Spelling TRIGGERED_TAGS = new Spelling("%s.triggers[%d]", "%s.tags[%d]", "%s.tags[%d].content");
        static final Spelling DISPATCH = new Spelling("%s.rules[%d][0]", "%s.rules[%d]", "%s.rules[%d][1]");

        String trigger(String at, int i) {
            return trigger.formatted(at, i);
        }

        String tag(String at, int i) {
            return tag.formatted(at, i);
        }

        String content(String at, int i) {
            return content.formatted(at, i);
        }
    }

    /**
     * What free text's refusals name: each trigger by {@code trigger}'s path, each of the format's
     * own excludes as {@code at.excludes[i]}, and the ends of the tag around it (excluded too) as the format.
     */
    private static FreeText.Where where(String at, IntFunction<String> trigger, int ownExcludes) {
        return new FreeText.Where(PREFIX + at, i -> PREFIX + trigger.apply(i), i -> PREFIX + (i < ownExcludes ? at + ".excludes[" + i + "]" : at));
    }

    private static List<String> withEnds(List<String> excludes, List<String> ends) {
        List<String> all = new ArrayList<>(excludes);
        for (String end : ends) if (!end.isEmpty() && !all.contains(end)) all.add(end);
        return all;
    }

    private Rx grammar(String grammar, String at) {
        long left = (deadline - AutomatonBuilder.cpuNanos()) / 1_000_000L;
        if (left <= 0) throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile");
        ConstraintLimits part = new ConstraintLimits(limits.maxPatternChars(), limits.maxRepeat(), limits.maxNfaStates(), limits.maxDfaStates(),
                left, limits.maxRefDepth(), limits.maxGrammarDepth());
        try {
            return new Rx.Compiled(EbnfCompiler.compile(grammar, part));
        } catch (ConstraintException x) {
            // the grammar counts its time from what was left; the client's limit is the tag's
            throw error(at + ".grammar", x.getMessage().replace("more than " + left + " ms", "more than " + limits.maxMillis() + " ms"));
        }
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

    /** A list of strings; absent or null is empty where {@code optional}. */
    private static List<String> strings(JsonObject o, String key, String at, boolean optional) {
        JsonElement e = o.get(key);
        if ((e == null || e.isJsonNull()) && optional) return List.of();
        if (e == null || !e.isJsonArray()) throw error(at, key + " must be a list of strings");
        List<String> out = new ArrayList<>();
        for (JsonElement x : e.getAsJsonArray()) {
            if (!x.isJsonPrimitive() || !x.getAsJsonPrimitive().isString()) throw error(at, key + " must be a list of strings");
            out.add(x.getAsString());
        }
        return out;
    }

    private static boolean bool(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (e == null || e.isJsonNull()) return false;
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) throw error(at, key + " must be true or false");
        return e.getAsBoolean();
    }

    private static int integer(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) throw error(at, key + " must be an integer");
        java.math.BigDecimal d = e.getAsBigDecimal();
        try {
            return d.intValueExact();
        } catch (ArithmeticException notAnInt) {
            throw error(at, key + " must be an integer, not " + d);
        }
    }

    private static JsonArray array(JsonObject o, String key, String at) {
        JsonElement e = o.get(key);
        if (e == null || !e.isJsonArray() || e.getAsJsonArray().isEmpty()) throw error(at, key + " must be a non-empty list");
        return e.getAsJsonArray();
    }

    private static ConstraintException error(String at, String what) {
        return new ConstraintException(PREFIX + at + ": " + what);
    }
}
