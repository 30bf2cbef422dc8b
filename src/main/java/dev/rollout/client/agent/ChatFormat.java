package dev.rollout.client.agent;

import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import jakarta.json.spi.JsonProvider;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;

/**
 * What the agent loop writes between the model's turns, in the Qwen chat format with Hermes-style
 * tool calls as Qwen2.5's and Qwen3's chat templates write it: calls as
 * {@code <tool_call>{"name": ..., "arguments": {...}}</tool_call>} in the assistant turn, and the
 * environment's answers in a user turn as {@code <tool_response>...</tool_response>}.
 *
 * <p>The first prompt comes from the server, rendered by the model's own chat template
 * ({@link dev.rollout.client.RolloutClient#tokenizeChatAsync}). After that the loop renders text
 * only for what it appends (each set of tool responses) and tokenizes just that: the model's own
 * tokens are kept as ids, so nothing the model wrote is ever re-tokenized (and drifts) between turns.
 */
public final class ChatFormat {
    private static final JsonProvider JSON = JsonProvider.provider();
    private static final String CALL_START = "<tool_call>", CALL_END = "</tool_call>";

    private ChatFormat() {}

    /** A user message, for the first prompt, which the server renders with the model's chat template. */
    public static JsonObject user(String question) {
        return JSON.createObjectBuilder().add("role", "user").add("content", question).build();
    }

    /**
     * What follows an assistant turn that ended in tool calls (its {@code <|im_end|>} is the
     * model's own last token): the answers in one user turn, then an open assistant turn.
     */
    public static String toolResponses(List<String> observations) {
        StringBuilder s = new StringBuilder("\n<|im_start|>user");
        for (String o : observations) s.append("\n<tool_response>\n").append(o).append("\n</tool_response>");
        return s.append("<|im_end|>\n<|im_start|>assistant\n").toString();
    }

    /** The tool calls in an assistant turn's text, in order; none when it is a final answer. */
    public static List<ToolCall> toolCalls(String text) {
        List<ToolCall> calls = new ArrayList<>();
        for (int open = text.indexOf(CALL_START); open >= 0; ) {
            int body = open + CALL_START.length(), end = callEnd(text, body);
            if (end < 0) {   // an opened call that never closed is a malformed one, not a final answer
                calls.add(ToolCall.malformed("a <tool_call> without </tool_call>"));
                break;
            }
            calls.add(parse(text.substring(body, end).strip()));
            open = text.indexOf(CALL_START, end + CALL_END.length());
        }
        return calls;
    }

    /**
     * Where the call whose body starts at {@code body} ends: the first end tag before which the
     * body is JSON, else the first end tag (a malformed call), or −1 for none. A string argument
     * may hold the text {@code </tool_call>} (a constrained call's may), so the first end tag is
     * not always the call's. The server's parser ({@code dev.rollout.chat.AssistantOutput}) finds
     * the same end while the text streams in; the client jar carries none of its classes.
     */
    private static int callEnd(String text, int body) {
        int first = text.indexOf(CALL_END, body);
        for (int at = first; at >= 0; at = text.indexOf(CALL_END, at + 1))
            if (json(text.substring(body, at)) != null) return at;
        return first;
    }

    /** The JSON value the text is, or null. */
    private static JsonValue json(String text) {
        try (var r = JSON.createReader(new StringReader(text))) {
            return r.readValue();
        } catch (RuntimeException notJson) {
            return null;
        }
    }

    private static ToolCall parse(String json) {
        JsonValue v = json(json);
        if (v == null) return ToolCall.malformed("the tool call is not valid JSON");
        if (!(v instanceof JsonObject o && o.get("name") instanceof JsonString name))
            return ToolCall.malformed("a tool call needs a \"name\"");
        JsonValue args = o.getOrDefault("arguments", JsonValue.EMPTY_JSON_OBJECT);
        if (!(args instanceof JsonObject a)) return ToolCall.malformed("a tool call's \"arguments\" must be an object");
        return ToolCall.of(name.getString(), a);
    }
}
