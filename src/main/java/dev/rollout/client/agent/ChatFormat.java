package dev.rollout.client.agent;

import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import jakarta.json.spi.JsonProvider;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

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
    private static final Pattern CALL = Pattern.compile("<tool_call>(.*?)</tool_call>", Pattern.DOTALL);

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
        Matcher m = CALL.matcher(text);
        while (m.find()) calls.add(parse(m.group(1).strip()));
        // an opened call that never closed is a malformed one, not a final answer
        int open = text.lastIndexOf("<tool_call>");
        if (open >= 0 && text.indexOf("</tool_call>", open) < 0) calls.add(ToolCall.malformed("a <tool_call> without </tool_call>"));
        return calls;
    }

    private static ToolCall parse(String json) {
        JsonValue v;
        try (var r = JSON.createReader(new StringReader(json))) {
            v = r.readValue();
        } catch (RuntimeException e) {
            return ToolCall.malformed("the tool call is not valid JSON");
        }
        if (!(v instanceof JsonObject o && o.get("name") instanceof JsonString name))
            return ToolCall.malformed("a tool call needs a \"name\"");
        JsonValue args = o.getOrDefault("arguments", JsonValue.EMPTY_JSON_OBJECT);
        if (!(args instanceof JsonObject a)) return ToolCall.malformed("a tool call's \"arguments\" must be an object");
        return ToolCall.of(name.getString(), a);
    }
}
