package it.dev.rollout;

import dev.rollout.bench.ToolModel;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The official OpenAI Node SDK (npm {@code openai}) against this server, unchanged: the tests
 * under src/test/node run by {@code node --test}. Completions run on the served weights; chat
 * completions on the tool-calling test model, which makes real tool calls.
 */
@ExtendWith(RestoresServedWeights.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class OpenAiSdkIT {
    static final List<String> SDK = List.of("openai@6.30.1");

    @Test
    @Order(1)
    void completions() throws Exception {
        NodeTests.assertPasses("openai-sdk", SDK, "openai-sdk.test.mjs", 4, Map.of());
    }

    @Test
    @Order(2)
    void chatCompletionsWithToolCalls() throws Exception {
        Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + ToolModel.materialize() + "\", \"weight_version\": \"tool-model\"}");
        NodeTests.assertPasses("openai-sdk", SDK, "openai-chat.test.mjs", 5, Map.of());
    }
}
