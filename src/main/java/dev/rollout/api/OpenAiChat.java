package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.chat.AssistantOutput;
import dev.rollout.chat.ChatTemplate;
import dev.rollout.chat.ChatTemplates;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.engine.TokenLogprob;
import dev.rollout.runtime.ServerSettings.ToolStrictLevel;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

/**
 * OpenAI's {@code POST /v1/chat/completions}: the conversation is rendered by the model's chat
 * template ({@link ChatTemplate}), tokenized, and run as the equivalent {@code /generate} call;
 * the answers are split into {@code reasoning_content}, {@code content} and {@code tool_calls}
 * ({@link AssistantOutput}), whole or as {@code chat.completion.chunk} events.
 *
 * <p>{@code tool_choice} "none" leaves the tools out of the prompt (as SGLang does); "auto" lets the
 * model write text or calls, and where enforced ({@link #autoTag}: a strict tool, or the server's
 * {@code rollout.tool-strict-level}) holds every call it opens to an offered tool's format;
 * "required" and a named function constrain the answer to calls of the offered tools in the
 * template's format ({@link #toolCallTag}), which are then parsed into {@code tool_calls}.
 * {@code response_format} and vLLM's {@code guided_*} constrain the answer
 * ({@link OpenAi#constraint}): all of it is then {@code content}, or, beside tools under "auto",
 * either such content or calls ({@link #formatOrCalls}).
 */
final class OpenAiChat {
    private static final Set<String> UNSUPPORTED = Set.of("audio", "modalities", "prediction", "functions",
            "function_call", "web_search_options", "chat_template");
    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant", "tool");

    private OpenAiChat() {}

    /** What the request asks beyond its /generate body: how to read the answers back. */
    record Plan(JsonObject generate, String prefill, boolean reasoning, boolean startsInReasoning, boolean parseTools,
                boolean includeUsage, boolean tokenIds, boolean promptTokenIds, String constraintField) {
        AssistantOutput parser() {
            AssistantOutput p = new AssistantOutput(reasoning, startsInReasoning, parseTools);
            p.feed(prefill);   // the call's opening is in the prompt; the parser reads it as the answer's start
            return p;
        }
    }

    /** A conversation rendered by the model's chat template, with what rendering decided. */
    record Rendered(String prompt, ChatTemplate template, boolean withTools, String toolChoice) {}

    /**
     * The prompt for a chat request's messages, tools and template options (also what
     * {@code /tokenize} with messages encodes). 400s name the request's fields.
     */
    static Rendered render(JsonObject o, ChatTemplates templates) {
        if (templates == null) throw ApiException.badRequest("this model has no chat template (tokenizer_config.json); send a prompt");
        List<Object> messages = messages(o.get("messages"));
        List<Object> tools = tools(o.get("tools"));
        String choice = toolChoice(o.get("tool_choice"), tools);
        boolean addGenerationPrompt = !Fields.present(o, "add_generation_prompt") || OpenAi.flag(o, "add_generation_prompt");
        boolean continueFinal = OpenAi.flag(o, "continue_final_message");
        if (continueFinal && addGenerationPrompt && Fields.present(o, "add_generation_prompt"))
            throw ApiException.badRequest("continue_final_message and add_generation_prompt cannot both be true");
        if (continueFinal) addGenerationPrompt = false;

        Map<String, Object> variables = new HashMap<>(templates.specialTokens());
        if (Fields.present(o, "chat_template_kwargs")) {
            if (!(o.get("chat_template_kwargs") instanceof JsonObject kw)) throw Fields.type("chat_template_kwargs", "an object", o.get("chat_template_kwargs"));
            kw.forEach((k, v) -> variables.put(k, java(v)));
        }
        variables.put("add_generation_prompt", addGenerationPrompt);
        boolean withTools = tools != null && !choice.equals("none");
        try {
            ChatTemplate template = templates.select(withTools);
            String prompt = template.render(messages, withTools ? tools : null, variables);
            return new Rendered(continueFinal ? continueFinalMessage(prompt, messages) : prompt, template, withTools, choice);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest(e.getMessage());
        }
    }

    static Plan plan(JsonObject o, ChatTemplates templates, HfTokenizer tokenizer, int maxModelLen) {
        return plan(o, templates, tokenizer, maxModelLen, ToolStrictLevel.AUTO);
    }

    /** @param strictness when "auto" is enforced, and how strictly ({@code rollout.tool-strict-level}) */
    static Plan plan(JsonObject o, ChatTemplates templates, HfTokenizer tokenizer, int maxModelLen, ToolStrictLevel strictness) {
        return plan(o, templates, tokenizer, maxModelLen, strictness, null);
    }

    /**
     * @param settled the request's tools as the constraints read them, where the route settles a
     *     {@code strict} the client left out (the Responses API, {@link OpenAiResponses#toChat});
     *     the prompt shows the tools as sent. Null: as sent
     */
    static Plan plan(JsonObject o, ChatTemplates templates, HfTokenizer tokenizer, int maxModelLen, ToolStrictLevel strictness,
                     JsonArray settled) {
        for (String k : UNSUPPORTED)
            if (Fields.present(o, k)) throw ApiException.badRequest(k + " is not supported by this server's chat completions");
        OpenAi.refuseUnhonoured(o);
        if (tokenizer == null) throw ApiException.badRequest("this model has no tokenizer.json; use /v1/completions with token ids");
        OpenAi.Constraint format = OpenAi.constraint(o);
        Rendered r = render(o, templates);
        ChatTemplate template = r.template();
        String prompt = r.prompt(), choice = r.toolChoice();
        boolean withTools = r.withTools();

        boolean hermes = template.mentions(AssistantOutput.CALL_START);
        String prefill = "";   // nothing now: the forced call is constrained from its first token, all of it output
        boolean parallel = OpenAi.parallelToolCalls(o);
        // a constraint that shapes the whole answer from its first token (response_format, guided_*, a
        // forced call) leaves no room for reasoning before it (that is for later, issue #22); "auto"
        // enforced leaves the text free, a think block included
        boolean whole = format != null, formatUsed = format != null;
        String callTag = null, constraintField = format == null ? null : format.field();
        boolean separate = template.mentions(AssistantOutput.THINK_END)
                && (!Fields.present(o, "separate_reasoning") || OpenAi.flag(o, "separate_reasoning"));
        boolean startsInReasoning = separate && endsInThink(prompt, templates.specialTokens().get("eos_token"));
        JsonArray offered = !withTools ? null : settled != null ? settled : o.getJsonArray("tools");
        if (withTools && !choice.equals("auto")) {
            if (!hermes) throw ApiException.badRequest("tool_choice \"" + choice + "\" needs a template with <tool_call> blocks");
            callTag = toolCallTag(offered, choice.equals("required") ? null : choice, parallel);
            constraintField = choice.equals("required") ? "tools (tool_choice \"required\")"
                    : "tools[" + indexOf(offered, choice) + "].function.parameters";
            // the answer is calls: a response_format shapes a later turn's text, none of this one's
            // (OpenAI takes the two together; so does vLLM)
            whole = true;
            formatUsed = false;
        } else if (withTools && hermes && format != null) {
            callTag = formatOrCalls(offered, format, parallel, strictness);
            constraintField = format.field() + " or tools (tool_choice \"auto\")";
            formatUsed = false;   // inside the tag
        } else if (withTools && hermes && enforced(offered, strictness)) {
            callTag = autoTag(offered, parallel, strictness, separate, startsInReasoning);
            constraintField = "tools (tool_choice \"auto\")";
        }
        boolean reasoning = !whole && separate;
        startsInReasoning &= reasoning && prefill.isEmpty();
        prompt += prefill;

        int[] ids = GenerateRequestParser.encode(tokenizer, prompt, false, maxModelLen, null);
        JsonObjectBuilder g = JSON.createObjectBuilder().add("input_ids", OpenAi.ids(ids, 0));
        JsonObjectBuilder sp = OpenAi.sampling(o, maxTokens(o, maxModelLen - ids.length));
        if (format != null && !formatUsed) sp.remove(format.key());
        if (callTag != null) sp.add("structural_tag", callTag);
        g.add("sampling_params", sp);
        boolean logprobs = OpenAi.flag(o, "logprobs");
        if (Fields.present(o, "top_logprobs")) {
            long k = Fields.integer(o.get("top_logprobs"), "top_logprobs");
            if (k < 0 || k > 20) throw ApiException.badRequest("top_logprobs must be from 0 to 20, not " + k);
            if (!logprobs && k > 0) throw ApiException.badRequest("top_logprobs needs logprobs: true");
            g.add("top_logprobs_num", k);
        }
        if (logprobs) g.add("return_logprob", true);
        OpenAi.passThrough(o, g);
        return new Plan(g.build(), prefill, reasoning, startsInReasoning, withTools && hermes && (callTag != null || format == null),
                OpenAi.includeUsage(o), OpenAi.flag(o, "return_token_ids"),
                OpenAi.flag(o, "return_token_ids") || OpenAi.flag(o, "return_prompt_token_ids"), constraintField);
    }

    /** The template's opening and closing of one call around its arguments (Qwen's Hermes-style blocks). */
    static final String CALL_BEGIN = AssistantOutput.CALL_START + "\n{\"name\": \"", CALL_ARGUMENTS = "\", \"arguments\": ",
            CALL_END = "}\n" + AssistantOutput.CALL_END, CALL_SEPARATOR = "\n";

    /**
     * The structural tag (a constraint, {@code dev.rollout.constrain.StructuralTag}) of tool calls
     * as the template writes them: {@code <tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>},
     * ARGS valid under that tool's {@code parameters} and spelled as the template's {@code tojson}
     * spells it (Python's separators), so that the call re-renders into the next prompt as it was
     * sampled. One tag per tool, an alternative each; calls separated by the template's newline.
     * A named function ({@code only}) is called once; "required" one or more times, once where
     * {@code parallel_tool_calls} is false. Tools without {@code parameters} take {@code {}}, as OpenAI's do.
     */
    static String toolCallTag(JsonArray tools, String only, boolean parallel) {
        return tag(calls(callTags(tools, only, null), parallel, only != null));
    }

    /**
     * One tag per offered tool ({@code only}: that one), its arguments held to its parameters, or,
     * where {@code strictness} is given (enforced "auto"), as {@link #schemaHeld} says.
     */
    private static JsonArray callTags(JsonArray tools, String only, ToolStrictLevel strictness) {
        JsonArrayBuilder tags = JSON.createArrayBuilder();
        for (JsonValue t : tools) {
            JsonObject f = ((JsonObject) t).getJsonObject("function");
            String name = f.getString("name");
            if (only != null && !only.equals(name)) continue;
            JsonValue params = f.get("parameters");
            if (params == null || params == JsonValue.NULL) params = JSON.createObjectBuilder().add("type", "object")
                    .add("properties", JSON.createObjectBuilder()).add("additionalProperties", false).build();
            if (strictness != null && !schemaHeld(f, strictness)) params = ANY_ARGUMENTS;
            tags.add(JSON.createObjectBuilder().add("type", "tag").add("begin", CALL_BEGIN + name + CALL_ARGUMENTS).add("end", CALL_END)
                    .add("content", JSON.createObjectBuilder().add("type", "json_schema").add("json_schema", params)
                            .add("separators", JSON.createArrayBuilder().add(", ").add(": "))));
        }
        return tags.build();
    }

    /** One or more calls separated by the template's newline (exactly one where {@code once}). */
    private static JsonObject calls(JsonArray tags, boolean parallel, boolean once) {
        return JSON.createObjectBuilder().add("type", "tags_with_separator").add("tags", tags).add("separator", CALL_SEPARATOR)
                .add("at_least_one", true).add("stop_after_first", once || !parallel).build();
    }

    private static String tag(JsonObject format) {
        return JSON.createObjectBuilder().add("type", "structural_tag").add("format", format).build().toString();
    }

    /**
     * What a non-strict tool's arguments are held to under enforced "auto": any JSON object (the
     * compiler's free-form object, nested at most 3 deep), as SGLang gives such tools an empty
     * schema: the call is well-formed, its arguments are the model's.
     */
    static final JsonObject ANY_ARGUMENTS = JSON.createObjectBuilder().add("type", "object").build();

    /** Whether "auto" is enforced: some tool is strict, or the server says every request (ServerSettings.ToolStrictLevel). */
    static boolean enforced(JsonArray tools, ToolStrictLevel strictness) {
        if (strictness != ToolStrictLevel.AUTO) return true;
        for (JsonValue t : tools) if (strict(((JsonObject) t).getJsonObject("function"))) return true;
        return false;
    }

    private static boolean schemaHeld(JsonObject function, ToolStrictLevel strictness) {
        return strictness == ToolStrictLevel.PARAMETER || strict(function);
    }

    private static boolean strict(JsonObject function) {
        return function.get("strict") == JsonValue.TRUE;
    }

    /**
     * {@code tool_choice: "auto"} enforced: free text in which every {@code <tool_call>} the model
     * opens is a whole call of an offered tool ({@code triggered_tags}, the trigger the template's
     * {@code <tool_call>}), at most one where {@code parallel_tool_calls} is false (nothing follows
     * it). A think block the answer opens first ({@code <think>}, after any whitespace, as the
     * reply's parser reads it; or the prompt opened it) is free text of its own, as SGLang leaves
     * reasoning out of the grammar: only calls the parser would take are held to the format. The
     * answer may end inside the think block, as it may unconstrained.
     */
    static String autoTag(JsonArray tools, boolean parallel, ToolStrictLevel strictness, boolean reasoning, boolean startsInReasoning) {
        JsonObject calls = JSON.createObjectBuilder().add("type", "triggered_tags").add("triggers", JSON.createArrayBuilder().add(AssistantOutput.CALL_START))
                .add("tags", callTags(tools, null, strictness)).add("stop_after_first", !parallel).build();
        if (!reasoning) return tag(calls);
        return tag(JSON.createObjectBuilder().add("type", "reasoning").add("begin", AssistantOutput.THINK_START)
                .add("end", AssistantOutput.THINK_END).add("started", startsInReasoning).add("content", calls).build());
    }

    /**
     * {@code response_format} beside tools under "auto": the answer is either content the format
     * allows or one or more calls (one where {@code parallel_tool_calls} is false), as OpenAI
     * answers such a request; from the first token, as the format alone is.
     */
    static String formatOrCalls(JsonArray tools, OpenAi.Constraint format, boolean parallel, ToolStrictLevel strictness) {
        JsonObject f = switch (format.key()) {
            case "regex" -> JSON.createObjectBuilder().add("type", "regex").add("pattern", format.source()).build();
            case "ebnf" -> JSON.createObjectBuilder().add("type", "grammar").add("grammar", format.source()).build();
            case "structural_tag" -> {
                if (!(parse(format) instanceof JsonObject st) || !(st.get("format") instanceof JsonObject inner))
                    throw ApiException.badRequest(format.field() + " beside tools must be {\"type\": \"structural_tag\", \"format\": {...}} "
                            + "(the older form with structures and triggers is taken alone only)");
                yield inner;
            }
            default -> JSON.createObjectBuilder().add("type", "json_schema").add("json_schema", parse(format)).build();
        };
        return tag(or(f, calls(callTags(tools, null, strictness), parallel, false)));
    }

    private static JsonValue parse(OpenAi.Constraint c) {
        try {
            return JSON.createReader(new java.io.StringReader(c.source())).readValue();
        } catch (RuntimeException e) {
            throw ApiException.badRequest(c.field() + " is refused: not valid JSON: " + e.getMessage());
        }
    }

    private static JsonObject or(JsonObject... elements) {
        return group("or", elements);
    }

    private static JsonObject group(String type, JsonObject... elements) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (JsonObject e : elements) a.add(e);
        return JSON.createObjectBuilder().add("type", type).add("elements", a).build();
    }

    private static int indexOf(JsonArray tools, String name) {
        for (int i = 0; i < tools.size(); i++)
            if (name.equals(tools.getJsonObject(i).getJsonObject("function").getString("name"))) return i;
        return -1;
    }

    /**
     * max_completion_tokens (or the older max_tokens); by default, what the context leaves (at
     * least one, so that a prompt filling the context is refused as leaving no room).
     */
    private static long maxTokens(JsonObject o, int room) {
        for (String k : List.of("max_completion_tokens", "max_tokens"))
            if (Fields.present(o, k)) return Fields.integer(o.get(k), k);
        return Math.max(room, 1);
    }

    /**
     * Whether a rendered prompt leaves the answer inside a think block: a template that opens it
     * for the model, or a continued assistant turn that opened it. A {@code <think>} that some
     * turn's end (the template's eos token) follows is text of an earlier turn.
     */
    static boolean endsInThink(String prompt, Object eosToken) {
        int open = prompt.lastIndexOf(AssistantOutput.THINK_START);
        if (open < 0 || open < prompt.lastIndexOf(AssistantOutput.THINK_END)) return false;
        return !(eosToken instanceof String eos) || eos.isEmpty() || prompt.indexOf(eos, open) < 0;
    }

    /**
     * transformers' continue_final_message: the prompt ends where the last message's content
     * ends, so the model continues that message instead of closing it.
     */
    private static String continueFinalMessage(String prompt, List<Object> messages) {
        Object content = ((Map<?, ?>) messages.get(messages.size() - 1)).get("content");
        String last = content instanceof String s ? s : "";
        int at = last.isBlank() ? -1 : prompt.lastIndexOf(last.strip());
        if (at < 0) throw ApiException.badRequest("continue_final_message: the last message's content is not in the rendered prompt");
        int end = prompt.startsWith(last, at) ? at + last.length() : at + last.strip().length();
        return prompt.substring(0, end);
    }

    /** The messages as the template reads them, OpenAI's variants made plain. */
    private static List<Object> messages(JsonValue v) {
        if (!(v instanceof JsonArray a) || a.isEmpty()) throw Fields.type("messages", "a non-empty list of messages", v);
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) {
            String at = "messages[" + i + "]";
            if (!(a.get(i) instanceof JsonObject m)) throw Fields.type(at, "an object", a.get(i));
            if (!(m.get("role") instanceof JsonString r) || !ROLES.contains(r.getString()))
                throw ApiException.badRequest(at + ".role must be one of " + ROLES + ", got " + m.get("role"));
            @SuppressWarnings("unchecked")
            Map<String, Object> msg = (Map<String, Object>) java(m);
            // OpenAI's "developer" is the system prompt of newer clients
            if (r.getString().equals("developer")) msg.put("role", "system");
            msg.put("content", content(m.get("content"), at + ".content"));
            if (m.get("tool_calls") instanceof JsonArray calls) msg.put("tool_calls", toolCalls(calls, at + ".tool_calls"));
            else if (Fields.present(m, "tool_calls")) throw Fields.type(at + ".tool_calls", "a list", m.get("tool_calls"));
            out.add(msg);
        }
        return out;
    }

    /** A string; null as "" (templates test and slice it); text parts joined, as vLLM and SGLang join them. */
    private static String content(JsonValue v, String at) {
        if (v == null || v == JsonValue.NULL) return "";
        if (v instanceof JsonString s) return s.getString();
        if (!(v instanceof JsonArray parts)) throw Fields.type(at, "a string or a list of content parts", v);
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < parts.size(); i++) {
            if (!(parts.get(i) instanceof JsonObject p) || !(p.get("type") instanceof JsonString t))
                throw Fields.type(at + "[" + i + "]", "a content part with a type", parts.get(i));
            if (!t.getString().equals("text") || !(p.get("text") instanceof JsonString text))
                throw ApiException.badRequest(at + "[" + i + "] is a \"" + t.getString() + "\" part; this model reads text parts only");
            texts.add(text.getString());
        }
        return String.join("\n", texts);
    }

    /**
     * An assistant's earlier calls, arguments as objects: OpenAI clients send them as JSON text,
     * and templates write objects with {@code tojson}, as the model saw them in training.
     */
    private static List<Object> toolCalls(JsonArray calls, String at) {
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < calls.size(); i++) {
            if (!(calls.get(i) instanceof JsonObject c) || !(c.get("function") instanceof JsonObject f) || !(f.get("name") instanceof JsonString))
                throw Fields.type(at + "[" + i + "]", "{\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", calls.get(i));
            @SuppressWarnings("unchecked")
            Map<String, Object> call = (Map<String, Object>) java(c);
            @SuppressWarnings("unchecked")
            Map<String, Object> function = (Map<String, Object>) call.get("function");
            if (function.get("arguments") instanceof String s) {
                JsonLimits.check(s.getBytes(StandardCharsets.UTF_8));  // JSON inside a string: the body's limits apply to it too
                try {
                    JsonValue parsed = JSON.createReader(new java.io.StringReader(s)).readValue();
                    function.put("arguments", java(parsed));
                } catch (RuntimeException notJson) {
                    throw ApiException.badRequest(at + "[" + i + "].function.arguments is not valid JSON: " + s);
                }
            }
            out.add(call);
        }
        return out;
    }

    private static List<Object> tools(JsonValue v) {
        if (v == null || v == JsonValue.NULL) return null;
        if (!(v instanceof JsonArray a)) throw Fields.type("tools", "a list of tools", v);
        for (int i = 0; i < a.size(); i++) {
            if (!(a.get(i) instanceof JsonObject t) || !"function".equals(t.getString("type", null))
                    || !(t.get("function") instanceof JsonObject f) || !(f.get("name") instanceof JsonString))
                throw Fields.type("tools[" + i + "]", "{\"type\": \"function\", \"function\": {\"name\", ...}}", a.get(i));
        }
        @SuppressWarnings("unchecked")
        List<Object> tools = (List<Object>) java(a);
        return tools.isEmpty() ? null : tools;
    }

    /** "none", "auto", "required", or the name of the one function to call. */
    private static String toolChoice(JsonValue v, List<Object> tools) {
        if (v == null || v == JsonValue.NULL) return tools == null ? "none" : "auto";
        String choice;
        if (v instanceof JsonString s && Set.of("none", "auto", "required").contains(s.getString())) {
            choice = s.getString();
        } else if (v instanceof JsonObject o && o.get("function") instanceof JsonObject f && f.get("name") instanceof JsonString n) {
            choice = n.getString();
            boolean known = tools != null && tools.stream().anyMatch(t -> choice.equals(((Map<?, ?>) ((Map<?, ?>) t).get("function")).get("name")));
            if (!known) throw ApiException.badRequest("tool_choice names \"" + choice + "\", which is not in tools");
        } else {
            throw Fields.type("tool_choice", "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}", v);
        }
        if (tools == null && !choice.equals("none")) throw ApiException.badRequest("tool_choice \"" + choice + "\" needs tools");
        return choice;
    }

    /** JSON-P as plain Java for the template: maps in order, lists, strings, BigInteger or Double. */
    static Object java(JsonValue v) {
        return switch (v.getValueType()) {
            case NULL -> null;
            case TRUE -> true;
            case FALSE -> false;
            case STRING -> ((JsonString) v).getString();
            case NUMBER -> ((JsonNumber) v).isIntegral() ? (Object) ((JsonNumber) v).bigIntegerValue() : (Object) ((JsonNumber) v).doubleValue();
            case ARRAY -> {
                List<Object> l = new ArrayList<>();
                for (JsonValue x : (JsonArray) v) l.add(java(x));
                yield l;
            }
            case OBJECT -> {
                Map<String, Object> m = new LinkedHashMap<>();
                ((JsonObject) v).forEach((k, x) -> m.put(k, java(x)));
                yield m;
            }
        };
    }

    /** The answers: a message per choice, or a stream of deltas. */
    static final class Format implements GenerationRelay.Format {
        private final PendingGeneration pending;
        private final HfTokenizer tokenizer;
        private final Plan plan;
        private final String id, model;
        private final long created = System.currentTimeMillis() / 1000;
        private final AssistantOutput[] parsers;
        private final int[] sentTokens, sentChars, calls;
        private final boolean[] started;
        private boolean promptSent;

        Format(PendingGeneration pending, HfTokenizer tokenizer, Plan plan, String model) {
            this.pending = pending;
            this.tokenizer = tokenizer;
            this.plan = plan;
            this.id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
            this.model = model;
            int n = pending.size();
            parsers = new AssistantOutput[n];
            for (int i = 0; i < n; i++) parsers[i] = plan.parser();
            sentTokens = new int[n];
            sentChars = new int[n];
            calls = new int[n];
            started = new boolean[n];
        }

        @Override
        public String event(SequenceOutput ev) {
            int i = ev.index();
            String text = ev.text() == null ? "" : ev.text();
            AssistantOutput.Delta d = parsers[i].feed(text.substring(Math.min(sentChars[i], text.length())));
            sentChars[i] = text.length();
            boolean finished = ev.finishReason() != null;
            if (finished) d = merge(d, parsers[i].finish());
            boolean newTokens = ev.outputIds().length > sentTokens[i];
            if (d.isEmpty() && started[i] && !finished && !(newTokens && logprobs())) return null;
            JsonObjectBuilder delta = JSON.createObjectBuilder();
            if (!started[i]) delta.add("role", "assistant");
            if (!d.reasoning().isEmpty()) delta.add("reasoning_content", d.reasoning());
            if (!d.content().isEmpty() || !started[i]) delta.add("content", d.content());
            if (!d.toolCalls().isEmpty()) delta.add("tool_calls", toolCalls(d.toolCalls(), i, true));
            started[i] = true;
            JsonObjectBuilder c = JSON.createObjectBuilder().add("index", i).add("delta", delta);
            if (logprobs()) c.add("logprobs", logprobs(ev.outputLogprobs(), sentTokens[i]));
            else c.addNull("logprobs");
            if (finished) c.add("finish_reason", finishReason(ev, i));
            else c.addNull("finish_reason");
            OpenAi.matchedStop(c, ev.finishReason());
            if (plan.tokenIds()) c.add("token_ids", OpenAi.ids(ev.outputIds(), sentTokens[i]));
            sentTokens[i] = ev.outputIds().length;
            JsonObjectBuilder chunk = head("chat.completion.chunk").add("choices", JSON.createArrayBuilder().add(c));
            if (plan.promptTokenIds() && !promptSent) {   // once, in the first chunk
                chunk.add("prompt_token_ids", OpenAi.ids(pending.item(0).inputIds(), 0));
                promptSent = true;
            }
            return "data: " + chunk.build() + "\n\n";
        }

        @Override
        public String end(SequenceOutput[] finals) {
            return OpenAi.streamEnd(head("chat.completion.chunk"), plan.includeUsage(), pending, finals);
        }

        @Override
        public String whole(SequenceOutput[] finals) {
            JsonArrayBuilder choices = JSON.createArrayBuilder();
            for (SequenceOutput f : finals) {
                if (f == null) return Errors.body(504, "no answer from the engine").toString();
                int i = f.index();
                AssistantOutput parser = plan.parser();
                AssistantOutput.Delta d = merge(parser.feed(f.text() == null ? "" : f.text()), parser.finish());
                JsonObjectBuilder message = JSON.createObjectBuilder().add("role", "assistant");
                if (d.content().isEmpty() && !d.toolCalls().isEmpty()) message.addNull("content");
                else message.add("content", d.content());
                if (!d.reasoning().isEmpty()) message.add("reasoning_content", d.reasoning());
                if (!d.toolCalls().isEmpty()) message.add("tool_calls", toolCalls(d.toolCalls(), i, false));
                JsonObjectBuilder c = JSON.createObjectBuilder().add("index", i).add("message", message);
                if (logprobs()) c.add("logprobs", logprobs(f.outputLogprobs(), 0));
                else c.addNull("logprobs");
                c.add("finish_reason", finishReason(f, i));
                OpenAi.matchedStop(c, f.finishReason());
                if (plan.tokenIds()) c.add("token_ids", OpenAi.ids(f.outputIds(), 0));
                choices.add(c);
            }
            JsonObjectBuilder r = head("chat.completion").add("choices", choices).add("usage", OpenAi.usage(pending, finals))
                    .add("metadata", OpenAi.metadata(finals[0]));
            if (plan.promptTokenIds()) r.add("prompt_token_ids", OpenAi.ids(pending.item(0).inputIds(), 0));
            return r.build().toString();
        }

        private JsonObjectBuilder head(String object) {
            return JSON.createObjectBuilder().add("id", id).add("object", object).add("created", created).add("model", model);
        }

        private boolean logprobs() {
            return pending.item(0).logprobs().returnLogprob();
        }

        /** "tool_calls" when the model stopped after calling tools, as OpenAI reports it. */
        private String finishReason(SequenceOutput out, int i) {
            String r = OpenAi.finishReason(out.finishReason());
            return r.equals("stop") && calls[i] > 0 ? "tool_calls" : r;
        }

        /** Numbered per choice across the stream; a streamed call comes whole in one delta. */
        private JsonArrayBuilder toolCalls(List<AssistantOutput.ToolCall> parsed, int choice, boolean streaming) {
            JsonArrayBuilder a = JSON.createArrayBuilder();
            for (AssistantOutput.ToolCall call : parsed) {
                JsonObjectBuilder c = JSON.createObjectBuilder();
                if (streaming) c.add("index", calls[choice]);
                c.add("id", "call_" + UUID.randomUUID().toString().replace("-", "").substring(0, 24)).add("type", "function")
                        .add("function", JSON.createObjectBuilder().add("name", call.name()).add("arguments", call.argumentsJson()));
                calls[choice]++;
                a.add(c);
            }
            return a;
        }

        /** The chat shape: content[] of {token, logprob, bytes, top_logprobs[]}. */
        private JsonObject logprobs(List<TokenLogprob> lps, int from) {
            JsonArrayBuilder content = JSON.createArrayBuilder();
            for (int k = from; k < lps.size(); k++) {
                TokenLogprob t = lps.get(k);
                JsonArrayBuilder tops = JSON.createArrayBuilder();
                for (int j = 0; j < t.topIds().length; j++) tops.add(token(t.topIds()[j], t.topLogprobs()[j]));
                content.add(token(t.tokenId(), t.logprob()).add("top_logprobs", tops));
            }
            return JSON.createObjectBuilder().add("content", content).addNull("refusal").build();
        }

        private JsonObjectBuilder token(int id, float logprob) {
            String piece = tokenizer.decode(new int[] {id}, false);
            JsonArrayBuilder bytes = JSON.createArrayBuilder();
            for (byte b : piece.getBytes(StandardCharsets.UTF_8)) bytes.add(b & 0xff);
            return JSON.createObjectBuilder().add("token", piece).add("logprob", OpenAi.finite(logprob)).add("bytes", bytes);
        }

        private static AssistantOutput.Delta merge(AssistantOutput.Delta a, AssistantOutput.Delta b) {
            List<AssistantOutput.ToolCall> calls = new ArrayList<>(a.toolCalls());
            calls.addAll(b.toolCalls());
            return new AssistantOutput.Delta(a.reasoning() + b.reasoning(), a.content() + b.content(), calls);
        }
    }

}
