package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.chat.AssistantOutput;
import dev.rollout.engine.FinishReason;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * One answer in the Responses API's shape, built from what the chat parser reads out of the
 * generated text ({@link AssistantOutput.Delta}s): output items (reasoning, a message with
 * {@code output_text}, function calls) and, when streaming, the server-sent events that announce
 * them in order. Free of the engine and of HTTP, so that both directions are unit-tested with
 * records in and records out.
 *
 * <p>The wire shapes are records ({@link Item}, {@link Usage}, {@link Response}) each writing its
 * own JSON: the unit tests run without a JSON-B implementation, and the stream must be written
 * event by event anyway.
 */
final class ResponsesOutput {
    /** An output item, as the response's {@code output} list and the stream's item events carry it. */
    sealed interface Item permits Reasoning, Message, FunctionCall {
        String id();

        JsonObject json();
    }

    /** The model's reasoning ({@code <think>}), as a {@code reasoning_text} part. */
    record Reasoning(String id, String status, String text) implements Item {
        public JsonObject json() {
            JsonArrayBuilder content = JSON.createArrayBuilder();
            if (text != null) content.add(JSON.createObjectBuilder().add("type", "reasoning_text").add("text", text));
            return JSON.createObjectBuilder().add("type", "reasoning").add("id", id).add("summary", JSON.createArrayBuilder())
                    .add("content", content).add("status", status).build();
        }
    }

    /** The assistant's text; no content part yet while {@code text} is null (the item just added). */
    record Message(String id, String status, String text) implements Item {
        public JsonObject json() {
            JsonArrayBuilder content = JSON.createArrayBuilder();
            if (text != null) content.add(part(text));
            return JSON.createObjectBuilder().add("type", "message").add("id", id).add("status", status).add("role", "assistant")
                    .add("content", content).build();
        }

        static JsonObject part(String text) {
            return JSON.createObjectBuilder().add("type", "output_text").add("text", text).add("annotations", JSON.createArrayBuilder())
                    .add("logprobs", JSON.createArrayBuilder()).build();
        }
    }

    /** A call of one of the request's function tools; its {@code call_id} is what the client's function_call_output answers. */
    record FunctionCall(String id, String status, String callId, String name, String arguments) implements Item {
        public JsonObject json() {
            return JSON.createObjectBuilder().add("type", "function_call").add("id", id).add("call_id", callId).add("name", name)
                    .add("arguments", arguments).add("status", status).build();
        }
    }

    /** Token counts; cached tokens are the prompt's prefix-cache hits. Reasoning tokens are not counted apart (0). */
    record Usage(int inputTokens, int cachedTokens, int outputTokens) {
        JsonObject json() {
            return JSON.createObjectBuilder().add("input_tokens", inputTokens)
                    .add("input_tokens_details", JSON.createObjectBuilder().add("cached_tokens", cachedTokens))
                    .add("output_tokens", outputTokens)
                    .add("output_tokens_details", JSON.createObjectBuilder().add("reasoning_tokens", 0))
                    .add("total_tokens", inputTokens + outputTokens).build();
        }
    }

    /**
     * The response object. {@code status} is completed, or incomplete with a reason: OpenAI's
     * {@code max_output_tokens} when the length limit ended it, {@code abort} (SGLang's finish
     * reason, as chat completions report it) when the server aborted it. {@code store} is false:
     * nothing is stored. {@code output_text} is not written: it is the SDKs' convenience, not wire.
     */
    record Response(String id, long createdAt, String status, String incompleteReason, String model, List<Item> output,
                    OpenAiResponses.Echo echo, Usage usage) {
        JsonObject json() {
            JsonObjectBuilder b = JSON.createObjectBuilder().add("id", id).add("object", "response").add("created_at", createdAt)
                    .add("status", status).add("error", JsonValue.NULL)
                    .add("incomplete_details", incompleteReason == null ? JsonValue.NULL
                            : JSON.createObjectBuilder().add("reason", incompleteReason).build())
                    .add("model", model);
            JsonArrayBuilder items = JSON.createArrayBuilder();
            for (Item i : output) items.add(i.json());
            b.add("output", items).add("previous_response_id", JsonValue.NULL).add("store", false);
            echo.addTo(b);
            b.add("usage", usage == null ? JsonValue.NULL : usage.json());
            return b.build();
        }
    }

    private final String id = "resp_" + hex(32), model;
    private final long createdAt = System.currentTimeMillis() / 1000;
    private final OpenAiResponses.Echo echo;
    private final boolean streaming;
    private final StringBuilder events = new StringBuilder();
    private final List<Item> done = new ArrayList<>();
    private int sequence;
    private boolean started;
    /** The item being written: a reasoning or a message item whose text grows, or null. */
    private Item open;
    private final StringBuilder openText = new StringBuilder();

    ResponsesOutput(String model, OpenAiResponses.Echo echo, boolean streaming) {
        this.model = model;
        this.echo = echo;
        this.streaming = streaming;
    }

    /** Takes what the parser read next; returns the events it completes (empty when not streaming, or when nothing is due). */
    String feed(AssistantOutput.Delta d) {
        start();
        if (!d.reasoning().isEmpty()) text(d.reasoning(), true);
        if (!d.content().isEmpty()) text(d.content(), false);
        for (AssistantOutput.ToolCall c : d.toolCalls()) {
            close();
            FunctionCall call = new FunctionCall("fc_" + hex(32), "completed", "call_" + hex(24), c.name(), c.argumentsJson());
            int index = done.size();
            emit("response.output_item.added", JSON.createObjectBuilder().add("output_index", index)
                    .add("item", new FunctionCall(call.id(), "in_progress", call.callId(), call.name(), "").json()));
            emit("response.function_call_arguments.delta", JSON.createObjectBuilder().add("item_id", call.id()).add("output_index", index)
                    .add("delta", call.arguments()));
            emit("response.function_call_arguments.done", JSON.createObjectBuilder().add("item_id", call.id()).add("output_index", index)
                    .add("name", call.name()).add("arguments", call.arguments()));
            emit("response.output_item.done", JSON.createObjectBuilder().add("output_index", index).add("item", call.json()));
            done.add(call);
        }
        return drain();
    }

    /**
     * Closes the answer: the open item is done, an answer with no item gets an empty message (the
     * chat route's {@code content: ""}), and the stream ends with the event of the final status.
     */
    String finish(FinishReason reason, Usage usage) {
        start();
        close();
        if (done.isEmpty()) {
            text("", false);
            close();
        }
        Response r = response(reason, usage);
        emit(switch (r.status()) {
            case "completed" -> "response.completed";
            default -> "response.incomplete";
        }, JSON.createObjectBuilder().add("response", r.json()));
        return drain();
    }

    Response response(FinishReason reason, Usage usage) {
        String status = "completed", why = null;
        if (reason != null && reason.type() == FinishReason.Type.LENGTH) {
            status = "incomplete";
            why = "max_output_tokens";
        } else if (reason == null || reason.type() == FinishReason.Type.ABORT) {
            status = "incomplete";
            why = "abort";
        }
        return new Response(id, createdAt, status, why, model, List.copyOf(done), echo, usage);
    }

    /** The first events of a stream: the response created, and in progress. */
    private void start() {
        if (started) return;
        started = true;
        JsonObject r = new Response(id, createdAt, "in_progress", null, model, List.of(), echo, null).json();
        emit("response.created", JSON.createObjectBuilder().add("response", r));
        emit("response.in_progress", JSON.createObjectBuilder().add("response", r));
    }

    /** Appends text to the open item of its kind, opening one (and closing another kind) when needed. */
    private void text(String t, boolean reasoning) {
        boolean same = reasoning ? open instanceof Reasoning : open instanceof Message;
        if (!same) {
            close();
            open = reasoning ? new Reasoning("rs_" + hex(32), "in_progress", null) : new Message("msg_" + hex(32), "in_progress", null);
            openText.setLength(0);
            emit("response.output_item.added", JSON.createObjectBuilder().add("output_index", done.size()).add("item", open.json()));
            emit("response.content_part.added", at().add("part", part("")));
        }
        openText.append(t);
        if (!t.isEmpty()) emit(reasoning ? "response.reasoning_text.delta" : "response.output_text.delta",
                textEvent(at().add("delta", t), reasoning));
    }

    private void close() {
        if (open == null) return;
        String t = openText.toString();
        boolean reasoning = open instanceof Reasoning;
        emit(reasoning ? "response.reasoning_text.done" : "response.output_text.done", textEvent(at().add("text", t), reasoning));
        emit("response.content_part.done", at().add("part", part(t)));
        Item item = reasoning ? new Reasoning(open.id(), "completed", t) : new Message(open.id(), "completed", t);
        emit("response.output_item.done", JSON.createObjectBuilder().add("output_index", done.size()).add("item", item.json()));
        done.add(item);
        open = null;
    }

    private JsonObjectBuilder at() {
        return JSON.createObjectBuilder().add("item_id", open.id()).add("output_index", done.size()).add("content_index", 0);
    }

    private JsonObjectBuilder textEvent(JsonObjectBuilder b, boolean reasoning) {
        return reasoning ? b : b.add("logprobs", JSON.createArrayBuilder());
    }

    private JsonObject part(String text) {
        return open instanceof Reasoning ? JSON.createObjectBuilder().add("type", "reasoning_text").add("text", text).build()
                : Message.part(text);
    }

    /** An SSE event as OpenAI writes them: the type named twice (event line and payload), numbered in order. */
    private void emit(String type, JsonObjectBuilder payload) {
        if (!streaming) return;
        JsonObject data = JSON.createObjectBuilder().add("type", type).add("sequence_number", sequence++).addAll(payload).build();
        events.append("event: ").append(type).append("\ndata: ").append(data).append("\n\n");
    }

    private String drain() {
        String s = events.toString();
        events.setLength(0);
        return s;
    }

    private static String hex(int n) {
        return (UUID.randomUUID().toString() + UUID.randomUUID()).replace("-", "").substring(0, n);
    }
}
