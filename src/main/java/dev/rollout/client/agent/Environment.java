package dev.rollout.client.agent;

import jakarta.json.JsonObject;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/** What an agent loop needs of an environment: its tools, their answers, and the reward. */
public interface Environment {
    /** The tools in the OpenAI function format, listed to the model in the system turn. */
    List<JsonObject> tools();

    /** The observation for one call, as the model will read it; a tool error is an observation too. */
    CompletableFuture<ToolResult> call(ToolCall call);

    /** The reward for an episode that ended with {@code finalText} as the answer to {@code question}. */
    CompletableFuture<Double> reward(String question, String finalText);
}
