package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.FinishReason;
import dev.rollout.engine.LogprobsMode;
import dev.rollout.engine.SequenceOutput;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import java.io.StringReader;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The OpenAI routes' SGLang contract: model names, refused fields, matched_stop and metadata. */
class OpenAiContractTest {
    static final String SERVED = "rollout-default-qwen3-tiny";
    static final Set<String> PATHS = Set.of("/models/Qwen3-0.6B");

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    @ParameterizedTest
    @ValueSource(strings = {SERVED, "default", "/models/Qwen3-0.6B"})
    void theServedNameDefaultAndThePathAreAcceptedAndEchoed(String model) {
        assertEquals(model, OpenAi.checkModel(json("{\"model\": \"" + model + "\"}"), SERVED, PATHS));
    }

    @Test
    void aMissingModelIsSglangsDefault() {
        assertEquals("default", OpenAi.checkModel(json("{}"), SERVED, PATHS));
        assertEquals("default", OpenAi.checkModel(json("{\"model\": null}"), SERVED, PATHS));
    }

    @Test
    void anotherModelIsA400NamingItAndTheServedName() {
        ApiException e = assertThrows(ApiException.class, () -> OpenAi.checkModel(json("{\"model\": \"gpt-4o\"}"), SERVED, PATHS));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains("The model `gpt-4o` does not exist"), e.getMessage());
        assertTrue(e.getMessage().contains("The served model name is `" + SERVED + "`"), e.getMessage());
    }

    @Test
    void aLoraAdapterOfTheServedModelSaysLoraIsNotEnabled() {
        ApiException e = assertThrows(ApiException.class,
                () -> OpenAi.checkModel(json("{\"model\": \"" + SERVED + ":my-adapter\"}"), SERVED, PATHS));
        assertTrue(e.getMessage().contains("LoRA is not enabled"), e.getMessage());
        assertTrue(!e.getMessage().contains("does not exist"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"\"lora_path\": \"x\"",
            "\"return_hidden_states\": true"})
    void fieldsThatWouldChangeTheOutputAreRefusedByName(String field) {
        ApiException e = assertThrows(ApiException.class, () -> OpenAi.refuseUnhonoured(json("{" + field + "}")));
        String name = field.substring(1, field.indexOf('"', 1));
        assertTrue(e.getMessage().startsWith(name + " is not supported"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"\"regex\": null", "\"json_schema\": \"\"", "\"lora_path\": null", "\"return_hidden_states\": false",
            "\"ebnf\": null"})
    void theirDefaultsAreAccepted(String field) {
        OpenAi.refuseUnhonoured(json("{" + field + "}"));
    }

    @Test
    void matchedStopIsTheIdOrStringThatStoppedAndNullOtherwise() {
        assertEquals(151645, choice(FinishReason.stopToken(151645)).getInt("matched_stop"));
        assertEquals("\n", choice(FinishReason.stopString("\n")).getString("matched_stop"));
        assertTrue(choice(FinishReason.length(5)).isNull("matched_stop"));
        assertTrue(choice(FinishReason.abort("cut")).isNull("matched_stop"));
        assertTrue(choice(null).isNull("matched_stop"));
    }

    @Test
    void metadataCarriesTheVersionAndSpansOfTheFirstChoice() {
        SequenceOutput out = new SequenceOutput("r", 0, new int[] {5, 6, 7}, "abc", FinishReason.length(3), 2, 0, 0, List.of(), List.of(),
                "v2", List.of(new SequenceOutput.VersionSpan("v1", 0, 1), new SequenceOutput.VersionSpan("v2", 1, 3)), 0.1, 0.05);
        JsonObject m = OpenAi.metadata(out);
        assertEquals("v2", m.getString("weight_version"));
        assertEquals(json("{\"a\": [{\"version\": \"v1\", \"start\": 0, \"end\": 1}, {\"version\": \"v2\", \"start\": 1, \"end\": 3}]}")
                .getJsonArray("a"), m.getJsonArray("weight_versions"));
    }

    private static JsonObject choice(FinishReason r) {
        var c = JsonBodies.JSON.createObjectBuilder();
        OpenAi.matchedStop(c, r);
        return c.build();
    }

    /**
     * logprobs_mode rides in the body (what OpenAI SDKs send from extra_body) to the /generate
     * request, where the parser validates it as on /generate: a bad one is the same 400.
     */
    @Test
    void logprobsModeIsPassedThroughAndValidatedAsOnGenerate() {
        GenerateRequestParser parser = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 64, 10_000, 4, 8), null);
        JsonObject g = OpenAiCompletions.toGenerate(json("{\"prompt\": [1, 2, 3], \"logprobs\": 2, \"logprobs_mode\": \"processed_logprobs\"}"));
        assertEquals("processed_logprobs", g.getString("logprobs_mode"));
        assertEquals(LogprobsMode.PROCESSED_LOGPROBS, parser.parse(g).items().get(0).logprobs().mode());
        assertEquals(LogprobsMode.SGLANG, parser.parse(OpenAiCompletions.toGenerate(json("{\"prompt\": [1], \"logprobs\": 1}")))
                .items().get(0).logprobs().mode(), "none sent: the server's default");

        ApiException e = assertThrows(ApiException.class,
                () -> parser.parse(OpenAiCompletions.toGenerate(json("{\"prompt\": [1], \"logprobs\": 1, \"logprobs_mode\": \"raw\"}"))));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().startsWith("logprobs_mode must be one of sglang, raw_logprobs, raw_logits, processed_logits, "
                + "processed_logprobs"), e.getMessage());
        // chat completions build their body through the same pass-through
        JsonObjectBuilder chat = Json.createObjectBuilder().add("input_ids", Json.createArrayBuilder().add(1));
        OpenAi.passThrough(json("{\"logprobs_mode\": 5}"), chat);
        e = assertThrows(ApiException.class, () -> parser.parse(chat.build()));
        assertTrue(e.getMessage().startsWith("logprobs_mode must be one of"), e.getMessage());
    }
}
