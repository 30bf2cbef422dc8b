package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.FinishReason;
import dev.rollout.engine.SequenceOutput;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/** What OpenAI's completions and chat completions share: the model check, refusals, sampling fields, usage, SGLang's extras. */
final class OpenAi {
    /** OpenAI field -> /generate's sampling_params field, same value. */
    private static final List<String[]> SAMPLING = List.of(
            new String[] {"temperature", "temperature"}, new String[] {"top_p", "top_p"}, new String[] {"n", "n"},
            new String[] {"stop", "stop"}, new String[] {"seed", "seed"}, new String[] {"presence_penalty", "presence_penalty"},
            new String[] {"frequency_penalty", "frequency_penalty"}, new String[] {"top_k", "top_k"}, new String[] {"min_p", "min_p"},
            new String[] {"repetition_penalty", "repetition_penalty"}, new String[] {"ignore_eos", "ignore_eos"},
            new String[] {"stop_token_ids", "stop_token_ids"}, new String[] {"min_tokens", "min_new_tokens"},
            new String[] {"skip_special_tokens", "skip_special_tokens"},
            new String[] {"logit_bias", "logit_bias"}, new String[] {"stop_regex", "stop_regex"});

    private OpenAi() {}

    /**
     * SGLang's OpenAI protocol fields that would change the output and that this server cannot
     * honour yet: each is a 400 naming it when it carries a value (null, false and empty values
     * are what clients send as defaults, and stay accepted).
     */
    private static final List<String> UNHONOURED = List.of("lora_path", "return_hidden_states", "return_routed_experts");

    /**
     * The model a request names: SGLang's clients send the served name, {@code "default"} (the
     * protocol's default, which SGLang's own kits send) or the model's path; a missing model is
     * {@code "default"}, as in SGLang's protocol. Any other name is a 400, as SGLang's strict
     * validation answers; {@code name:adapter} asks for a LoRA adapter, which this server has not.
     *
     * @return the name to echo in answers: what the request said, as SGLang echoes it
     */
    static String checkModel(JsonObject o, String served, Set<String> aliases) {
        if (!Fields.present(o, "model")) return "default";
        String m = Fields.string(o.get("model"), "model");
        if (m.equals(served) || m.equals("default") || aliases.contains(m)) return m;
        int colon = m.lastIndexOf(':');
        if (colon > 0 && (m.substring(0, colon).equals(served) || aliases.contains(m.substring(0, colon))))
            throw ApiException.badRequest("The model `" + m + "` names a LoRA adapter, and LoRA is not enabled on this server");
        throw ApiException.badRequest("The model `" + m + "` does not exist. The served model name is `" + served + "`"
                + " (\"default\" and the model's path are accepted too; GET /v1/models)");
    }

    /** A 400 naming the first field of {@link #UNHONOURED} that carries a value. */
    static void refuseUnhonoured(JsonObject o) {
        for (String k : UNHONOURED)
            if (hasValue(o.get(k)))
                throw ApiException.badRequest(k + " is not supported by this server" + switch (k) {
                    case "lora_path" -> " (LoRA is not enabled)";
                    case "return_hidden_states" -> "";
                    default -> " on the OpenAI routes: /generate returns them";
                });
    }

    /** Whether a field carries something other than a default: null, false, "", [] and {} do not. */
    static boolean hasValue(JsonValue v) {
        if (v == null) return false;
        return switch (v.getValueType()) {
            case NULL, FALSE -> false;
            case STRING -> !((JsonString) v).getString().isEmpty();
            case ARRAY -> ((JsonArray) v).stream().anyMatch(OpenAi::hasValue);
            case OBJECT -> !((JsonObject) v).isEmpty();
            default -> true;
        };
    }

    /**
     * SGLang's {@code matched_stop}: the stop token id or stop string that ended the choice, null
     * for any other end (length, abort) and while it runs.
     */
    static void matchedStop(JsonObjectBuilder choice, FinishReason r) {
        if (r == null || r.type() != FinishReason.Type.STOP || r.matched() == null) choice.addNull("matched_stop");
        else if (r.matched() instanceof Integer id) choice.add("matched_stop", id);
        else choice.add("matched_stop", String.valueOf(r.matched()));
    }

    /**
     * SGLang's response {@code metadata}: the weight version and the version spans of the first
     * choice (one block for the whole answer, so with n > 1 it describes choice 0, as SGLang's does).
     */
    static JsonObject metadata(SequenceOutput first) {
        return JSON.createObjectBuilder().add("weight_version", first.weightVersion())
                .add("weight_versions", GenerateResponses.spans(first)).build();
    }

    /** /generate's sampling_params for an OpenAI request, generating at most {@code maxNewTokens}. */
    static JsonObjectBuilder sampling(JsonObject o, long maxNewTokens) {
        JsonObjectBuilder sp = JSON.createObjectBuilder().add("max_new_tokens", maxNewTokens);
        for (String[] f : SAMPLING) if (Fields.present(o, f[0])) sp.add(f[1], o.get(f[0]));
        Constraint c = constraint(o);
        if (c != null) sp.add(c.key(), c.source());
        return sp;
    }

    /**
     * A constraint an OpenAI request asks for: /generate's sampling_params key ({@code json_schema},
     * {@code regex}, {@code structural_tag} or {@code ebnf}) and text, and the request's field it came from (what a refusal names).
     */
    record Constraint(String key, String source, String field) {}

    /**
     * What {@code response_format: {"type": "json_object"}} compiles: any JSON object (the
     * compiler's free-form object: any keys, values nested at most 3 deep, compact). Its strings
     * and lists are unbounded, so the model or max_tokens ends it, not the constraint.
     */
    static final String JSON_OBJECT = "{\"type\":\"object\"}";

    /**
     * The constraint of an OpenAI request, or null: OpenAI's {@code response_format}, SGLang's
     * extras {@code json_schema} and {@code regex}, vLLM's {@code guided_json}, {@code guided_regex},
     * {@code guided_choice} (a list of strings, exactly one of which is the output) and its newer
     * {@code structured_outputs} ({@code json}, {@code regex}, {@code choice}, {@code json_object},
     * {@code grammar}, {@code structural_tag}); EBNF grammars as SGLang's {@code ebnf} or vLLM's
     * {@code guided_grammar}. Structural tags ({@code response_format} of that type,
     * {@code structured_outputs.structural_tag}) in xgrammar's format, our subset. Two
     * constraints are a 400 naming both.
     * Defaults that clients send (null, "", {@code {"type": "text"}}) ask for none.
     */
    static Constraint constraint(JsonObject o) {
        List<Constraint> found = new java.util.ArrayList<>();
        JsonValue rf = o.get("response_format");
        if (hasValue(rf)) {
            if (!(rf instanceof JsonObject f) || !(f.get("type") instanceof JsonString t))
                throw Fields.type("response_format", "an object with a type: text, json_object or json_schema", rf);
            switch (t.getString()) {
                case "text" -> { }
                case "json_object" -> found.add(new Constraint("json_schema", JSON_OBJECT, "response_format"));
                case "json_schema" -> {
                    if (!(f.get("json_schema") instanceof JsonObject js))
                        throw Fields.type("response_format.json_schema", "an object with the schema under \"schema\"", f.get("json_schema"));
                    JsonValue schema = js.get("schema");
                    if (!(schema instanceof JsonObject) && schema != JsonValue.TRUE)
                        throw Fields.type("response_format.json_schema.schema", "a JSON schema (an object)", schema);
                    found.add(new Constraint("json_schema", schema.toString(), "response_format.json_schema.schema"));
                }
                // the whole object is xgrammar's {"type": "structural_tag", "format": ...}; the older
                // {structures, triggers} form is refused by the compiler, by name
                case "structural_tag" -> found.add(new Constraint("structural_tag", f.toString(), "response_format"));
                default -> throw ApiException.badRequest("response_format.type must be text, json_object or json_schema, not \""
                        + t.getString() + "\"");
            }
        }
        for (String k : List.of("json_schema", "guided_json")) {
            JsonValue v = o.get(k);
            if (hasValue(v)) found.add(new Constraint("json_schema", v instanceof JsonString s ? s.getString() : v.toString(), k));
        }
        for (String k : List.of("regex", "guided_regex"))
            if (hasValue(o.get(k))) found.add(new Constraint("regex", Fields.string(o.get(k), k), k));
        if (hasValue(o.get("guided_choice"))) found.add(choice(o.get("guided_choice"), "guided_choice"));
        for (String k : List.of("ebnf", "guided_grammar"))
            if (hasValue(o.get(k))) found.add(new Constraint("ebnf", Fields.string(o.get(k), k), k));
        if (o.get("structured_outputs") instanceof JsonObject so) {
            if (hasValue(so.get("grammar")))
                found.add(new Constraint("ebnf", Fields.string(so.get("grammar"), "structured_outputs.grammar"), "structured_outputs.grammar"));
            JsonValue tag = so.get("structural_tag");
            if (hasValue(tag)) found.add(new Constraint("structural_tag", tag instanceof JsonString s ? s.getString() : tag.toString(),
                    "structured_outputs.structural_tag"));
            JsonValue json = so.get("json");
            if (hasValue(json))
                found.add(new Constraint("json_schema", json instanceof JsonString s ? s.getString() : json.toString(), "structured_outputs.json"));
            if (hasValue(so.get("regex")))
                found.add(new Constraint("regex", Fields.string(so.get("regex"), "structured_outputs.regex"), "structured_outputs.regex"));
            if (hasValue(so.get("choice"))) found.add(choice(so.get("choice"), "structured_outputs.choice"));
            if (so.get("json_object") == JsonValue.TRUE) found.add(new Constraint("json_schema", JSON_OBJECT, "structured_outputs.json_object"));
        } else if (hasValue(o.get("structured_outputs"))) {
            throw Fields.type("structured_outputs", "an object", o.get("structured_outputs"));
        }
        if (found.size() > 1)
            throw ApiException.badRequest(found.get(0).field() + " and " + found.get(1).field() + " both constrain the output: send one");
        return found.isEmpty() ? null : found.get(0);
    }

    /** The request field a refused constraint came from, or null where there is none. */
    static String constraintField(JsonObject o) {
        Constraint c = constraint(o);
        return c == null ? null : c.field();
    }

    /** vLLM's guided_choice: the output is exactly one of the strings, as a regex of their escaped alternatives. */
    private static Constraint choice(JsonValue v, String field) {
        List<String> options = Fields.stringOrList(v, field);
        if (options.isEmpty()) throw ApiException.badRequest(field + " cannot be empty");
        StringBuilder rx = new StringBuilder();
        for (String option : options) {
            if (rx.length() > 0) rx.append('|');
            rx.append('(').append(escapeRegex(option)).append(')');
        }
        return new Constraint("regex", rx.toString(), field);
    }

    /** {@code s} as a regex literal in Python's syntax (what the constraint engine reads): every metacharacter escaped. */
    static String escapeRegex(String s) {
        StringBuilder b = new StringBuilder(s.length() + 8);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if ("\\.^$|?*+()[]{}".indexOf(c) >= 0) b.append('\\');
            b.append(c);
        }
        return b.toString();
    }

    /**
     * The stream and the extras every OpenAI route passes through to /generate, which validates
     * them: SGLang's {@code rid}, and {@code logprobs_mode} (vLLM's name; clients send it in
     * {@code extra_body}).
     */
    static void passThrough(JsonObject o, JsonObjectBuilder g) {
        if (Fields.present(o, "stream")) g.add("stream", Fields.bool(o.get("stream"), "stream"));
        if (Fields.present(o, "rid")) g.add("rid", o.get("rid"));
        if (Fields.present(o, "logprobs_mode")) g.add("logprobs_mode", o.get("logprobs_mode"));
    }

    /** Whether the request asked for the usage chunk at the end of a stream. */
    static boolean includeUsage(JsonObject o) {
        return o.get("stream_options") instanceof JsonObject so && so.getBoolean("include_usage", false);
    }

    static boolean flag(JsonObject o, String name) {
        return Fields.present(o, name) && Fields.bool(o.get(name), name);
    }

    /**
     * {@code parallel_tool_calls}, OpenAI's default true: several calls in one answer; false, one
     * at most (chat completions and the Responses API read it alike).
     */
    static boolean parallelToolCalls(JsonObject o) {
        return !Fields.present(o, "parallel_tool_calls") || flag(o, "parallel_tool_calls");
    }

    static String finishReason(FinishReason r) {
        return switch (r.type()) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case ABORT -> "abort";
        };
    }

    /**
     * JSON has no infinities; OpenAI clients expect numbers: -inf (and NaN) as OpenAI's -9999, +inf
     * (a logits mode's, after a +inf logit_bias) as 9999. A logits mode's real values can pass
     * either (docs/api.md).
     */
    static double finite(float logprob) {
        if (logprob == Float.POSITIVE_INFINITY) return 9999.0;
        return logprob == Float.NEGATIVE_INFINITY || Float.isNaN(logprob) ? -9999.0 : logprob;
    }

    static JsonArrayBuilder ids(int[] ids, int from) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (int k = from; k < ids.length; k++) a.add(ids[k]);
        return a;
    }

    /** What closes an OpenAI stream: the usage chunk (no choices) when asked for, then [DONE]. */
    static String streamEnd(JsonObjectBuilder head, boolean includeUsage, PendingGeneration pending, SequenceOutput[] finals) {
        String usage = includeUsage
                ? "data: " + head.add("choices", JSON.createArrayBuilder()).add("usage", usage(pending, finals)).build() + "\n\n" : "";
        return usage + "data: [DONE]\n\n";
    }

    /** Usage over all choices; the n samples of a prompt share it, so each prompt counts once, as OpenAI counts. */
    static JsonObject usage(PendingGeneration pending, SequenceOutput[] finals) {
        int prompt = 0, completion = 0;
        Set<GenerateRequest.Item> counted = Collections.newSetFromMap(new IdentityHashMap<>());
        for (SequenceOutput f : finals) {
            if (f == null) continue;
            completion += f.completionTokens();
            if (counted.add(pending.item(f.index()))) prompt += f.promptTokens();
        }
        return JSON.createObjectBuilder().add("prompt_tokens", prompt).add("completion_tokens", completion)
                .add("total_tokens", prompt + completion).build();
    }
}
