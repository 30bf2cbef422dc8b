package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.bench.ToolModel;
import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonReader;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@code /v1/chat/completions} and {@code /tokenize} with messages over HTTP, for what the OpenAI
 * SDK test does not reach: transformers' renderings through the server, the RL extras (token ids),
 * reasoning split off, template kwargs, and refusals.
 */
@ExtendWith(RestoresServedWeights.class)
class ChatCompletionsIT {
    static String model;

    @BeforeAll
    static void loadToolModel() throws IOException {
        Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + ToolModel.materialize() + "\", \"weight_version\": \"tool-model\"}");
        model = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
    }

    static int[] ints(JsonArray a) {
        return a.getValuesAs(JsonNumber.class).stream().mapToInt(JsonNumber::intValue).toArray();
    }

    @Test
    void tokenizeWithMessagesGivesTransformersIds() throws IOException {
        JsonObject fixtures;
        try (InputStream in = Files.newInputStream(Path.of("src/test/resources/chat/qwen3-fixtures.json")); JsonReader r = Json.createReader(in)) {
            fixtures = r.readObject();
        }
        for (JsonObject f : fixtures.getJsonArray("fixtures").getValuesAs(JsonObject.class)) {
            JsonObject kwargs = f.getJsonObject("kwargs");
            // the fixture's template kwargs other than add_generation_prompt go where a request puts them
            var body = Json.createObjectBuilder().add("messages", f.get("messages"))
                    .add("add_generation_prompt", kwargs.getBoolean("add_generation_prompt", false))
                    .add("chat_template_kwargs", Json.createObjectBuilder(kwargs).remove("add_generation_prompt"));
            if (f.get("tools") instanceof JsonArray tools) body.add("tools", tools);
            String json = body.build().toString();
            for (String path : new String[] {"/tokenize", "/v1/tokenize"}) {
                Http.Reply r = Http.post(path, json);
                assertEquals(200, r.status(), f.getString("name") + ": " + r.body());
                assertEquals(Arrays.toString(ints(f.getJsonArray("input_ids"))), Arrays.toString(ints(r.object().getJsonArray("tokens"))),
                        f.getString("name"));
            }
        }
    }

    @Test
    void aMessageIsNeverRunAsTemplateCode() {
        Http.Reply r = Http.post("/tokenize", "{\"messages\": [{\"role\": \"user\", \"content\": \"{{ 7*7 }}{% if true %}!{% endif %}\"}]}");
        assertEquals(200, r.status(), r.body());
        String text = Http.post("/detokenize", "{\"tokens\": " + r.object().getJsonArray("tokens") + "}").object().getString("text");
        assertEquals("<|im_start|>user\n{{ 7*7 }}{% if true %}!{% endif %}<|im_end|>\n<|im_start|>assistant\n", text);
    }

    static JsonObject chat(String extra) {
        Http.Reply r = Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"temperature\": 0, "
                + "\"messages\": [{\"role\": \"user\", \"content\": \"What is 6*7?\"}]" + extra + "}");
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    @Test
    void tokenIdsForTrainers() {
        JsonObject o = chat(", \"max_tokens\": 48, \"return_token_ids\": true");
        int[] prompt = ints(o.getJsonArray("prompt_token_ids"));
        Http.Reply tok = Http.post("/tokenize", "{\"messages\": [{\"role\": \"user\", \"content\": \"What is 6*7?\"}]}");
        assertEquals(Arrays.toString(ints(tok.object().getJsonArray("tokens"))), Arrays.toString(prompt));
        JsonObject c = o.getJsonArray("choices").getJsonObject(0);
        int[] ids = ints(c.getJsonArray("token_ids"));
        assertEquals(o.getJsonObject("usage").getInt("completion_tokens"), ids.length);
        String text = Http.post("/detokenize", "{\"tokens\": " + Arrays.toString(ids) + ", \"skip_special_tokens\": true}").object().getString("text");
        assertEquals(c.getJsonObject("message").getString("content"), text);
    }

    @Test
    void reasoningIsSplitOffWhereThePromptOpensIt() {
        // continuing an assistant turn that opened <think>: what the model adds is reasoning until </think>
        String messages = ", \"messages\": [{\"role\": \"user\", \"content\": \"What is 6*7?\"}, "
                + "{\"role\": \"assistant\", \"content\": \"<think>\\nLet me see\"}], \"continue_final_message\": true, "
                + "\"max_tokens\": 6, \"return_token_ids\": true";
        Http.Reply r = Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"temperature\": 0" + messages + "}");
        assertEquals(200, r.status(), r.body());
        JsonObject c = r.object().getJsonArray("choices").getJsonObject(0);
        String text = Http.post("/detokenize", "{\"tokens\": " + c.getJsonArray("token_ids") + ", \"skip_special_tokens\": true}")
                .object().getString("text");
        assertFalse(text.contains("</think>"), text);
        assertEquals(text.strip(), c.getJsonObject("message").getString("reasoning_content").strip());
        assertEquals("", c.getJsonObject("message").getString("content"));
        // separate_reasoning false: all of it is content
        Http.Reply plain = Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"temperature\": 0, \"separate_reasoning\": false"
                + messages + "}");
        JsonObject m = plain.object().getJsonArray("choices").getJsonObject(0).getJsonObject("message");
        assertEquals(text, m.getString("content"));
        assertFalse(m.containsKey("reasoning_content"));
    }

    @Test
    void templateKwargsReachTheTemplate() {
        int[] on = ints(chat(", \"max_tokens\": 1, \"return_prompt_token_ids\": true").getJsonArray("prompt_token_ids"));
        int[] off = ints(chat(", \"max_tokens\": 1, \"return_prompt_token_ids\": true, \"chat_template_kwargs\": {\"enable_thinking\": false}")
                .getJsonArray("prompt_token_ids"));
        int[] emptyThink = ints(Http.post("/tokenize", "{\"prompt\": \"<think>\\n\\n</think>\\n\\n\"}").object().getJsonArray("tokens"));
        assertEquals(Arrays.toString(Arrays.copyOf(on, on.length)), Arrays.toString(Arrays.copyOf(off, on.length)));
        assertEquals(Arrays.toString(emptyThink), Arrays.toString(Arrays.copyOfRange(off, on.length, off.length)));
    }

    @Test
    void refusalsNameTheProblem() {
        String m = "\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
        String[][] cases = {
            {"{" + m + ", \"continue_final_message\": true, \"add_generation_prompt\": true}", "continue_final_message"},
            {"{" + m + ", \"chat_template_kwargs\": [1]}", "chat_template_kwargs"},
            {"{" + m + ", \"logit_bias\": {\"999999999\": 5}}", "logit_bias"},  // accepted now; a key outside the vocabulary is not
            {"{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": "
                    + "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{oops\"}}]}]}", "arguments is not valid JSON"},
            {"{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": 7}]}", "messages[0].content"},
            {"{" + m + ", \"tools\": [{\"type\": \"function\"}]}", "tools[0]"},
        };
        for (String[] c : cases) {
            Http.Reply r = Http.post("/v1/chat/completions", c[0]);
            assertEquals(400, r.status(), c[0]);
            String message = r.object().getJsonObject("error").getString("message");
            assertTrue(message.contains(c[1]), c[1] + " not in " + message);
        }
        // and the server goes on serving
        assertEquals("stop", chat(", \"max_tokens\": 48").getJsonArray("choices").getJsonObject(0).getString("finish_reason").replace("tool_calls", "stop"));
        assertEquals(400, Http.post("/tokenize", "{\"prompt\": \"x\", \"messages\": []}").status());
    }
}
