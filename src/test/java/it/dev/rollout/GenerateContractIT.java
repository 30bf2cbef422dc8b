package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonObject;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The parts of SGLang's generation contract (issue #17) that its ported tests do not reach: a rid
 * runs once at a time, fields the server cannot honour are 400s naming them (their defaults are
 * not), and the OpenAI routes take the names SGLang's clients send for the model.
 */
class GenerateContractIT {
    static String served, path;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        served = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
        path = Http.get("/get_model_info").object().getString("model_path");
    }

    @Test
    void aRunningRidIsRefusedOnEveryRouteUntilItEnds() throws Exception {
        CompletableFuture<Http.Reply> first = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [5, 6, 7], \"rid\": \"contract-dup\", \"sampling_params\": {\"max_new_tokens\": 3000, \"ignore_eos\": true}}"));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (Http.get("/rl/state").object().getInt("in_flight") == 0) {
            assertTrue(System.nanoTime() < deadline, "the first request never ran");
            Thread.sleep(10);
        }
        Http.Reply again = Http.post("/generate", "{\"input_ids\": [8], \"rid\": \"contract-dup\", \"sampling_params\": {\"max_new_tokens\": 1}}");
        assertEquals(400, again.status(), again.body());
        assertTrue(again.object().getJsonObject("error").getString("message").contains("'contract-dup' is already running"), again.body());
        Http.Reply openAi = Http.post("/v1/completions", "{\"model\": \"default\", \"prompt\": [8], \"max_tokens\": 1, \"rid\": \"contract-dup\"}");
        assertEquals(400, openAi.status(), openAi.body());
        assertEquals("invalid_request_error", openAi.object().getJsonObject("error").getString("type"));
        // the refusals left the first request alone; once it ends the rid is free again
        assertEquals(200, Http.post("/abort_request", "{\"rid\": \"contract-dup\"}").status());
        JsonObject ended = first.get(120, TimeUnit.SECONDS).object();
        assertEquals("abort", ended.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        Http.Reply reused = Http.post("/generate", "{\"input_ids\": [8], \"rid\": \"contract-dup\", \"sampling_params\": {\"max_new_tokens\": 1}}");
        assertEquals(200, reused.status(), reused.body());
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource(delimiter = '|', textBlock = """
        /generate            | "custom_logit_processor": "{\\"callable\\": \\"gASV\\"}" | custom_logit_processor
        /generate            | "lora_path": "adapter-1"                                 | lora_path
        /generate            | "return_hidden_states": true                             | return_hidden_states
        /v1/completions      | "lora_path": "adapter-1"                                 | lora_path
        /v1/chat/completions | "return_hidden_states": true                             | return_hidden_states
        """)
    void fieldsThatWouldChangeTheOutputAre400s(String route, String field, String named) {
        Http.Reply r = Http.post(route, body(route, field));
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getJsonObject("error").getString("message").startsWith(named), r.body());
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource(delimiter = '|', textBlock = """
        /generate            | "custom_logit_processor": null, "lora_path": null, "return_hidden_states": false
        /v1/completions      | "regex": null, "json_schema": null, "ebnf": null, "lora_path": null, "return_hidden_states": false
        /v1/chat/completions | "regex": null, "lora_path": null, "return_hidden_states": false
        """)
    void theirDefaultsAreAccepted(String route, String fields) {
        Http.Reply r = Http.post(route, body(route, fields));
        assertEquals(200, r.status(), r.body());
    }

    static String body(String route, String extra) {
        return switch (route) {
            case "/generate" -> "{\"input_ids\": [1, 2], \"sampling_params\": {\"max_new_tokens\": 1}, " + extra + "}";
            case "/v1/completions" -> "{\"model\": \"default\", \"prompt\": [1, 2], \"max_tokens\": 1, " + extra + "}";
            default -> "{\"model\": \"default\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 1, " + extra + "}";
        };
    }

    /** SGLang's kits send "default", its tests the model's path; answers echo the name sent, as SGLang's do. */
    @Test
    void theModelIsNamedAsSglangClientsNameIt() {
        for (String model : new String[] {served, "default", path}) {
            Http.Reply r = Http.post("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": [1, 2], \"max_tokens\": 1}");
            assertEquals(200, r.status(), model + ": " + r.body());
            assertEquals(model, r.object().getString("model"));
        }
        Http.Reply none = Http.post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 1}");
        assertEquals(200, none.status(), none.body());
        Http.Reply other = Http.post("/v1/chat/completions", "{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
        assertEquals(400, other.status(), other.body());
        assertTrue(other.object().getJsonObject("error").getString("message").contains("The served model name is `" + served + "`"), other.body());
    }
}
