package dev.rollout.client.agent;

/**
 * What a tool call gave the model to read, and whether the tool itself failed (every try lost or
 * refused), which an episode counts; a tool error the model caused (a bad expression) is an
 * answer, not a failure.
 */
public record ToolResult(String content, boolean failed) {
    public static ToolResult answer(String content) {
        return new ToolResult(content, false);
    }
}
