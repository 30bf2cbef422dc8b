package dev.rollout.client.agent;

import jakarta.json.JsonObject;

/**
 * One tool call the model wrote: a function name and its JSON arguments, or, when the model's
 * text between the tags is not a valid call, the reason, which goes back to the model as the
 * observation.
 */
public record ToolCall(String name, JsonObject arguments, String malformed) {
    public static ToolCall of(String name, JsonObject arguments) {
        return new ToolCall(name, arguments, null);
    }

    public static ToolCall malformed(String why) {
        return new ToolCall(null, null, why);
    }

    public boolean isMalformed() {
        return malformed != null;
    }
}
