package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.chat.AssistantOutput;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.JsonSchemaCompiler;
import dev.rollout.engine.SequenceOutput;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * OpenAI's {@code POST /v1/responses} (the Responses API), stateless: a request is translated into
 * the chat completions request it means ({@link #toChat}) and runs as one, through the same
 * template rendering, tool parsing and constraints ({@link OpenAiChat#plan}); the answer is written
 * back in the Responses shape by {@link ResponsesOutput}. One code path for both routes keeps
 * them agreeing on what a conversation renders to, which an RL trainer comparing the two relies on.
 *
 * <p>Stateless: nothing is stored, so {@code previous_response_id}, {@code conversation} and
 * {@code item_reference} inputs are refused with a 400 saying to send the whole conversation.
 * {@code store} is accepted and ignored (OpenAI's SDKs and the Vercel AI SDK send it by default),
 * and answered as {@code "store": false}.
 */
final class OpenAiResponses {
    static final String STATELESS = "this server does not store responses; send the whole conversation in `input`";

    /** Fields that ask for server-side state or hosted features this server has not: a 400 when they carry a value. */
    private static final Map<String, String> REFUSED = Map.of(
            "previous_response_id", "stateless: " + STATELESS,
            "conversation", "stateless: " + STATELESS,
            "prompt", "stored prompts are not supported: send the instructions and input",
            "background", "background responses are not supported: this server does not store responses");

    /** Sampling extras of SGLang's and vLLM's OpenAI protocols that pass to the chat request unchanged. */
    private static final List<String> EXTRAS = List.of("seed", "top_k", "min_p", "repetition_penalty", "presence_penalty",
            "frequency_penalty", "stop", "rid", "logprobs_mode", "chat_template_kwargs", "separate_reasoning");

    private static final Set<String> ROLES = Set.of("user", "system", "developer", "assistant");

    private OpenAiResponses() {}

    /**
     * What the request's answer echoes back, as OpenAI's response object carries it (the request's
     * values, or OpenAI's defaults).
     */
    record Echo(JsonValue instructions, JsonValue maxOutputTokens, boolean parallelToolCalls, JsonValue temperature,
                JsonValue topP, JsonObject text, JsonValue toolChoice, JsonArray tools, JsonObject metadata) {
        void addTo(JsonObjectBuilder b) {
            b.add("instructions", instructions).add("max_output_tokens", maxOutputTokens).add("parallel_tool_calls", parallelToolCalls)
                    .add("temperature", temperature).add("text", text).add("tool_choice", toolChoice).add("tools", tools)
                    .add("top_p", topP).add("metadata", metadata);
        }
    }

    /**
     * A Responses request as the chat request it means; its tools as the constraint reads them,
     * each {@code strict} settled ({@link #strictByDefault}; null for no tools), where the chat
     * request keeps them as sent, so that the prompt shows what the client wrote and one
     * conversation renders alike on both routes; its {@code text.format} (null for none); and
     * what the answer echoes.
     */
    record Translation(JsonObject chat, JsonArray tools, Format format, boolean stream, Echo echo) {
        /**
         * The field a refusal of the chat plan's constraint names ({@link OpenAiChat.Plan#constraintField}),
         * in this request's terms: {@code text.format.schema} for chat's
         * {@code response_format.json_schema.schema}, {@code tools[i].parameters} for chat's
         * {@code tools[i].function.parameters} (the tools keep their places).
         */
        String constraintField(String chatField) {
            if (chatField == null) return null;
            String f = chatField.replace(".function.parameters", ".parameters");
            boolean ofFormat = format != null && format.chatField() != null && f.startsWith(format.chatField());
            return ofFormat ? format.field() + f.substring(format.chatField().length()) : f;
        }
    }

    static Translation toChat(JsonObject o) {
        for (Map.Entry<String, String> r : REFUSED.entrySet())
            if (OpenAi.hasValue(o.get(r.getKey()))) throw ApiException.badRequest(r.getKey() + ": " + r.getValue());
        refuseLogprobs(o);
        JsonObjectBuilder chat = JSON.createObjectBuilder();
        if (Fields.present(o, "model")) chat.add("model", o.get("model"));

        JsonArrayBuilder messages = JSON.createArrayBuilder();
        if (Fields.present(o, "instructions"))
            messages.add(message("system", Fields.string(o.get("instructions"), "instructions")));
        JsonValue input = o.get("input");
        if (input instanceof JsonString s) messages.add(message("user", s.getString()));
        else if (input instanceof JsonArray items && !items.isEmpty()) items(items, messages);
        else throw Fields.type("input", "a string or a non-empty list of input items", input);
        chat.add("messages", messages);

        JsonArray tools = JsonValue.EMPTY_JSON_ARRAY, settled = null;
        if (Fields.present(o, "tools")) {
            if (!(o.get("tools") instanceof JsonArray a)) throw Fields.type("tools", "a list of tools", o.get("tools"));
            tools = settled(checked(a));
            if (!a.isEmpty()) {
                chat.add("tools", chatTools(a));
                settled = chatTools(tools);
            }
        }
        JsonValue toolChoice = JSON.createValue("auto");
        if (Fields.present(o, "tool_choice")) {
            toolChoice = o.get("tool_choice");
            chat.add("tool_choice", toolChoice(toolChoice));
        }
        Format format = null;
        JsonObject text = JSON.createObjectBuilder().add("format", JSON.createObjectBuilder().add("type", "text")).build();
        if (Fields.present(o, "text")) {
            if (!(o.get("text") instanceof JsonObject t)) throw Fields.type("text", "an object", o.get("text"));
            text = t;
            if (Fields.present(t, "format")) {
                format = format(t.get("format"));
                if (format.responseFormat() != null) chat.add("response_format", format.responseFormat());
            }
        }
        if (Fields.present(o, "max_output_tokens"))
            chat.add("max_completion_tokens", Fields.integer(o.get("max_output_tokens"), "max_output_tokens"));
        for (String k : List.of("temperature", "top_p")) if (Fields.present(o, k)) chat.add(k, Fields.number(o.get(k), k));
        for (String k : EXTRAS) if (Fields.present(o, k)) chat.add(k, o.get(k));
        boolean stream = OpenAi.flag(o, "stream");
        if (stream) chat.add("stream", true);

        JsonObject metadata = JsonValue.EMPTY_JSON_OBJECT;
        if (Fields.present(o, "metadata")) {
            if (!(o.get("metadata") instanceof JsonObject m)) throw Fields.type("metadata", "an object of strings", o.get("metadata"));
            metadata = m;
        }
        boolean parallel = OpenAi.parallelToolCalls(o);
        if (Fields.present(o, "parallel_tool_calls")) chat.add("parallel_tool_calls", parallel);   // chat's reading: one call at most where false
        Echo echo = new Echo(value(o, "instructions"), value(o, "max_output_tokens"), parallel,
                Fields.present(o, "temperature") ? o.get("temperature") : JSON.createValue(1.0),
                Fields.present(o, "top_p") ? o.get("top_p") : JSON.createValue(1.0), text, toolChoice, tools, metadata);
        return new Translation(chat.build(), settled, format, stream, echo);
    }

    private static JsonValue value(JsonObject o, String k) {
        return Fields.present(o, k) ? o.get(k) : JsonValue.NULL;
    }

    /** Log probabilities in the Responses shape are not written yet: asking for them is a 400, not a silent omission. */
    private static void refuseLogprobs(JsonObject o) {
        if (Fields.present(o, "top_logprobs") && Fields.integer(o.get("top_logprobs"), "top_logprobs") > 0)
            throw ApiException.badRequest("top_logprobs is not supported on /v1/responses yet: use /v1/chat/completions");
        if (Fields.present(o, "include")) {
            for (String k : Fields.stringOrList(o.get("include"), "include"))
                if (k.equals("message.output_text.logprobs"))
                    throw ApiException.badRequest("include: message.output_text.logprobs is not supported on /v1/responses yet: "
                            + "use /v1/chat/completions");
        }
    }

    private static JsonObject message(String role, String content) {
        return JSON.createObjectBuilder().add("role", role).add("content", content).build();
    }

    /**
     * Input items as chat messages: messages as they are; a run of {@code function_call} items
     * as one assistant message's {@code tool_calls} (joined to the assistant message just before
     * it, as a chat client would have sent it); a {@code function_call_output} as a tool message.
     * Earlier {@code reasoning} items are dropped: chat templates drop past reasoning too.
     */
    private static void items(JsonArray items, JsonArrayBuilder out) {
        Map<String, String> callNames = new HashMap<>();
        JsonObjectBuilder assistant = null;   // the assistant message that function calls join, until another item closes it
        JsonArrayBuilder calls = null;
        for (int i = 0; i < items.size(); i++) {
            String at = "input[" + i + "]";
            if (!(items.get(i) instanceof JsonObject item)) throw Fields.type(at, "an input item (an object)", items.get(i));
            String type = Fields.present(item, "type") ? Fields.string(item.get("type"), at + ".type") : "message";
            if (type.equals("function_call")) {
                String name = Fields.string(item.get("name"), at + ".name");
                String callId = Fields.string(item.get("call_id"), at + ".call_id");
                String args = Fields.present(item, "arguments") ? Fields.string(item.get("arguments"), at + ".arguments") : "{}";
                checkJson(args, at + ".arguments");
                callNames.put(callId, name);
                if (assistant == null) assistant = JSON.createObjectBuilder().add("role", "assistant").add("content", "");
                if (calls == null) calls = JSON.createArrayBuilder();
                calls.add(JSON.createObjectBuilder().add("id", callId).add("type", "function")
                        .add("function", JSON.createObjectBuilder().add("name", name).add("arguments", args)));
                continue;
            }
            if (type.equals("reasoning")) continue;
            if (assistant != null) {   // the assistant turn ends here
                if (calls != null) assistant.add("tool_calls", calls);
                out.add(assistant);
                assistant = null;
                calls = null;
            }
            switch (type) {
                case "message" -> {
                    String role = item.get("role") instanceof JsonString r ? r.getString() : null;
                    if (role == null || !ROLES.contains(role))
                        throw ApiException.badRequest(at + ".role must be one of " + ROLES + ", got " + item.get("role"));
                    String content = content(item.get("content"), at + ".content");
                    // an assistant message stays open: function calls right after it are part of the same turn
                    if (role.equals("assistant")) assistant = JSON.createObjectBuilder().add("role", "assistant").add("content", content);
                    else out.add(message(role, content));
                }
                case "function_call_output" -> {
                    String callId = Fields.string(item.get("call_id"), at + ".call_id");
                    JsonObjectBuilder tool = JSON.createObjectBuilder().add("role", "tool").add("tool_call_id", callId)
                            .add("content", content(item.get("output"), at + ".output"));
                    if (callNames.containsKey(callId)) tool.add("name", callNames.get(callId));  // templates that label results by name
                    out.add(tool);
                }
                case "item_reference" -> throw ApiException.badRequest(at + " is an item_reference: " + STATELESS);
                default -> throw ApiException.badRequest(at + ".type \"" + type + "\" is not supported: input items are messages, "
                        + "function_call and function_call_output");
            }
        }
        if (assistant != null) {
            if (calls != null) assistant.add("tool_calls", calls);
            out.add(assistant);
        }
    }

    /** A string, or text parts ({@code input_text}, and {@code output_text} of earlier answers) joined as chat joins its parts. */
    private static String content(JsonValue v, String at) {
        if (v instanceof JsonString s) return s.getString();
        if (!(v instanceof JsonArray parts)) throw Fields.type(at, "a string or a list of content parts", v);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < parts.size(); i++) {
            String pat = at + "[" + i + "]";
            if (!(parts.get(i) instanceof JsonObject p) || !(p.get("type") instanceof JsonString t))
                throw Fields.type(pat, "a content part with a type", parts.get(i));
            String text = switch (t.getString()) {
                case "input_text", "output_text", "text" -> Fields.string(p.get("text"), pat + ".text");
                case "refusal" -> Fields.string(p.get("refusal"), pat + ".refusal");
                default -> throw ApiException.badRequest(pat + " is an \"" + t.getString() + "\" part; this model reads text parts only");
            };
            if (i > 0) b.append('\n');
            b.append(text);
        }
        return b.toString();
    }

    private static void checkJson(String s, String at) {
        JsonLimits.check(s.getBytes(StandardCharsets.UTF_8));  // JSON inside a string: the body's limits apply to it too
        try (var r = JSON.createReader(new StringReader(s))) {
            r.readValue();
        } catch (RuntimeException notJson) {
            throw ApiException.badRequest(at + " is not valid JSON: " + s);
        }
    }

    /** Responses' flat function tools, checked; hosted tools (web search, files, ...) are refused by name. */
    private static JsonArray checked(JsonArray a) {
        for (int i = 0; i < a.size(); i++) {
            String at = "tools[" + i + "]";
            if (!(a.get(i) instanceof JsonObject t) || !(t.get("type") instanceof JsonString type))
                throw Fields.type(at, "{\"type\": \"function\", \"name\", \"parameters\", ...}", a.get(i));
            if (!type.getString().equals("function"))
                throw ApiException.badRequest(at + ".type \"" + type.getString() + "\" is not supported: this server runs function tools only");
            Fields.string(t.get("name"), at + ".name");
            if (Fields.present(t, "description")) Fields.string(t.get("description"), at + ".description");
            if (Fields.present(t, "parameters") && !(t.get("parameters") instanceof JsonObject))
                throw Fields.type(at + ".parameters", "a JSON schema (an object)", t.get("parameters"));
            if (Fields.present(t, "strict")) Fields.bool(t.get("strict"), at + ".strict");
        }
        return a;
    }

    /** Checked flat tools, each with its {@code strict} settled ({@link #strictByDefault}): what the constraint reads and the answer echoes. */
    private static JsonArray settled(JsonArray flat) {
        JsonArrayBuilder out = JSON.createArrayBuilder();
        for (JsonObject t : flat.getValuesAs(JsonObject.class))
            out.add(Fields.present(t, "strict") ? t : JSON.createObjectBuilder(t).add("strict", strictByDefault(t.get("parameters"))).build());
        return out.build();
    }

    /** Checked flat tools as chat's nested ones. */
    private static JsonArray chatTools(JsonArray flat) {
        JsonArrayBuilder out = JSON.createArrayBuilder();
        for (JsonObject t : flat.getValuesAs(JsonObject.class)) {
            JsonObjectBuilder f = JSON.createObjectBuilder().add("name", t.get("name"));
            for (String k : List.of("description", "parameters", "strict")) if (Fields.present(t, k)) f.add(k, t.get(k));
            out.add(JSON.createObjectBuilder().add("type", "function").add("function", f));
        }
        return out.build();
    }

    /**
     * Whether a function tool that does not say is strict. Unlike chat completions (false), the
     * Responses API makes it strict where it can: OpenAI's function-calling guide says it
     * normalizes such a schema into strict mode when possible and falls back to non-strict,
     * best-effort calling where the schema cannot be made compatible. So here: strict where the
     * constraint compiler takes the parameters (ADR 0029's subset, read into its expression
     * without building the automaton), and loose where it does not, rather than a 400 for a
     * request OpenAI serves. The schema is held as written: optional properties stay optional,
     * where OpenAI's normalization makes every property required (and models then fill the
     * optional ones with empty values).
     */
    private static boolean strictByDefault(JsonValue parameters) {
        if (parameters == null || parameters == JsonValue.NULL) return true;   // called with {}, as every tool without parameters
        try {
            JsonSchemaCompiler.compile(parameters.toString(), JsonSchemaCompiler.Separators.PYTHON, ConstraintLimits.DEFAULT);
            return true;
        } catch (RuntimeException notHeld) {   // a refusal by name, or a schema too malformed to read
            return false;
        }
    }

    /** "none", "auto", "required", or {@code {"type": "function", "name"}} as chat's {@code {"type": "function", "function": {"name"}}}. */
    private static JsonValue toolChoice(JsonValue v) {
        if (v instanceof JsonString s && Set.of("none", "auto", "required").contains(s.getString())) return v;
        if (v instanceof JsonObject o && "function".equals(o.getString("type", null)) && o.get("name") instanceof JsonString n)
            return JSON.createObjectBuilder().add("type", "function").add("function", JSON.createObjectBuilder().add("name", n)).build();
        throw Fields.type("tool_choice", "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"name\"}", v);
    }

    /**
     * {@code text.format} as chat's {@code response_format}; the field a bad schema's 400 names,
     * and chat's name for it (null for {@code text}, which constrains nothing).
     */
    record Format(JsonObject responseFormat, String field, String chatField) {}

    private static Format format(JsonValue v) {
        if (!(v instanceof JsonObject f) || !(f.get("type") instanceof JsonString t))
            throw Fields.type("text.format", "an object with a type: text, json_object or json_schema", v);
        return switch (t.getString()) {
            case "text" -> new Format(null, null, null);
            case "json_object" -> new Format(JSON.createObjectBuilder().add("type", "json_object").build(), "text.format", "response_format");
            case "json_schema" -> {
                JsonValue schema = f.get("schema");
                if (!(schema instanceof JsonObject) && schema != JsonValue.TRUE)
                    throw Fields.type("text.format.schema", "a JSON schema (an object)", schema);
                JsonObjectBuilder js = JSON.createObjectBuilder().add("schema", schema)
                        .add("name", Fields.present(f, "name") ? Fields.string(f.get("name"), "text.format.name") : "response");
                if (Fields.present(f, "strict")) js.add("strict", Fields.bool(f.get("strict"), "text.format.strict"));
                yield new Format(JSON.createObjectBuilder().add("type", "json_schema").add("json_schema", js).build(), "text.format.schema",
                        "response_format.json_schema.schema");
            }
            default -> throw ApiException.badRequest("text.format.type must be text, json_object or json_schema, not \"" + t.getString() + "\"");
        };
    }

    /**
     * The relay's writer: the chat plan's parser reads the generated text (reasoning, content,
     * tool calls, exactly as chat completions reads it) and {@link ResponsesOutput} writes it in
     * the Responses shape. One answer: the Responses API has no {@code n}.
     */
    static final class Relay implements GenerationRelay.Format {
        private final OpenAiChat.Plan plan;
        private final String model;
        private final OpenAiResponses.Echo echo;
        private ResponsesOutput stream;
        private AssistantOutput parser;
        private int sentChars;

        Relay(OpenAiChat.Plan plan, String model, Echo echo) {
            this.plan = plan;
            this.model = model;
            this.echo = echo;
        }

        @Override
        public String event(SequenceOutput ev) {
            if (stream == null) {
                stream = new ResponsesOutput(model, echo, true);
                parser = plan.parser();
            }
            String text = ev.text() == null ? "" : ev.text();
            String events = stream.feed(parser.feed(text.substring(Math.min(sentChars, text.length()))));
            sentChars = text.length();
            if (ev.finishReason() != null) events += stream.feed(parser.finish());
            return events.isEmpty() ? null : events;
        }

        @Override
        public String end(SequenceOutput[] finals) {
            if (stream == null) stream = new ResponsesOutput(model, echo, true);  // no snapshot came: the stream still opens and ends
            SequenceOutput f = finals[0];
            return stream.finish(f == null ? null : f.finishReason(), usage(f));
        }

        @Override
        public String whole(SequenceOutput[] finals) {
            SequenceOutput f = finals[0];
            if (f == null) return Errors.body(504, "no answer from the engine").toString();
            ResponsesOutput out = new ResponsesOutput(model, echo, false);
            AssistantOutput p = plan.parser();
            out.feed(p.feed(f.text() == null ? "" : f.text()));
            out.feed(p.finish());
            out.finish(f.finishReason(), usage(f));
            return out.response(f.finishReason(), usage(f)).json().toString();
        }

        private static ResponsesOutput.Usage usage(SequenceOutput f) {
            return f == null ? new ResponsesOutput.Usage(0, 0, 0) : new ResponsesOutput.Usage(f.promptTokens(), f.cachedTokens(), f.completionTokens());
        }
    }
}
