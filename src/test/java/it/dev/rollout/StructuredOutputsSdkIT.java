package it.dev.rollout;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Issue #22's frameworks against the server with the random-weight default model, unchanged:
 * the official OpenAI Node SDK ({@code chat.completions.parse} with {@code zodResponseFormat},
 * tool calls under {@code tool_choice: "required"} and a named function), LangChain JS
 * ({@code withStructuredOutput}, its jsonSchema and functionCalling methods) and the Vercel AI SDK
 * ({@code generateObject}, {@code generateText} with {@code toolChoice: 'required'}) in one
 * {@code node --test} run of src/test/node/structured-outputs.test.mjs, one npm install. Every answer
 * is checked with zod, sampled ones too (zod counts string lengths in UTF-16 units). Versions are
 * pinned to ones that run on Node 20 (the README's floor; the newest of each need 22). The Responses API too: {@code client.responses.create} with a zod text
 * format, and the Vercel provider's default model, which speaks it.
 */
class StructuredOutputsSdkIT {
    static final List<String> PACKAGES = List.of("openai@6.30.1", "zod@4.6.7", "@langchain/openai@1.3.1", "@langchain/core@1.1.40",
            "ai@6.0.333", "@ai-sdk/openai@3.0.141");

    @Test
    void openAiLangChainAndVercelReturnSchemaValidObjects() throws Exception {
        NodeTests.assertPasses("structured-sdks", PACKAGES, "structured-outputs.test.mjs", 7, Map.of());
    }
}
