package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code logit_bias} and {@code stop_regex} over HTTP, on /generate (SGLang's sampling_params) and
 * on OpenAI's routes (OpenAI's {@code logit_bias}, SGLang's extra {@code stop_regex}). The model's
 * weights are random, so the checks are structural, as SGLang's logit_bias tests ban and force
 * tokens: a forced token is all there is, a banned one never appears, and a forced "x" written
 * three times matches {@code x{3}}.
 */
class LogitBiasStopRegexIT {
    static int x;  // the token "x"
    static String model;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        JsonArray t = Http.post("/tokenize", "{\"prompt\": \"x\"}").object().getJsonArray("tokens");
        assertEquals(1, t.size());
        x = t.getInt(0);
        model = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
    }

    static JsonObject generate(String samplingParams) {
        Http.Reply r = Http.post("/generate", "{\"input_ids\": [9707, 11, 1879], \"sampling_params\": " + samplingParams + "}");
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    static Set<Integer> ids(JsonObject generated) {
        Set<Integer> out = new HashSet<>();
        for (int i = 0; i < generated.getJsonArray("output_ids").size(); i++) out.add(generated.getJsonArray("output_ids").getInt(i));
        return out;
    }

    @Test
    void aForcedTokenIsAllThereIsGreedyOrSampled() {
        for (String t : List.of("0", "1.0")) {
            JsonObject g = generate("{\"max_new_tokens\": 8, \"temperature\": " + t + ", \"ignore_eos\": true, \"logit_bias\": {\"" + x + "\": 100}}");
            assertEquals(Set.of(x), ids(g), g.toString());
            assertEquals("xxxxxxxx", g.getString("text"));
        }
    }

    @Test
    void aBannedTokenNeverAppears() {
        Set<Integer> greedy = ids(generate("{\"max_new_tokens\": 12, \"temperature\": 0, \"ignore_eos\": true}"));
        StringBuilder ban = new StringBuilder("{");
        for (int id : greedy) ban.append(ban.length() > 1 ? ", " : "").append('"').append(id).append("\": -100");
        ban.append('}');
        for (String t : List.of("0", "1.0", "1.0")) {
            Set<Integer> seen = ids(generate("{\"max_new_tokens\": 12, \"temperature\": " + t + ", \"ignore_eos\": true, \"logit_bias\": " + ban + "}"));
            for (int id : greedy) assertFalse(seen.contains(id), "banned " + id + " appeared at temperature " + t + ": " + seen);
        }
    }

    @Test
    void openAiRoutesTakeLogitBias() {
        JsonObject c = Http.post("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": [9707, 11], \"max_tokens\": 5, "
                + "\"temperature\": 1.0, \"logit_bias\": {\"" + x + "\": 100}}").object();
        assertEquals("xxxxx", c.getJsonArray("choices").getJsonObject(0).getString("text"), c.toString());
        JsonObject chat = Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", "
                + "\"content\": \"hi\"}], \"max_tokens\": 4, \"logit_bias\": {\"" + x + "\": 100}, "
                + "\"chat_template_kwargs\": {\"enable_thinking\": false}}").object();
        assertEquals("xxxx", chat.getJsonArray("choices").getJsonObject(0).getJsonObject("message").getString("content"), chat.toString());
    }

    /**
     * The parser takes any bias up to float's largest (3.4e38); the sampler divides by the
     * temperature after adding it, where such a logit could overflow to infinity and the
     * probabilities to NaN. The largest accepted bias must still force its token, and a
     * negative one still ban it, at every temperature.
     */
    @Test
    void theLargestAcceptedBiasStillForcesOrBans() {
        for (String t : List.of("0", "0.5", "1.0")) {
            JsonObject g = generate("{\"max_new_tokens\": 4, \"temperature\": " + t + ", \"ignore_eos\": true, \"logit_bias\": {\"" + x + "\": 3.4e38}}");
            assertEquals(Set.of(x), ids(g), "temperature " + t + ": " + g);
            JsonObject banned = generate("{\"max_new_tokens\": 4, \"temperature\": " + t + ", \"ignore_eos\": true, \"logit_bias\": {\"" + x + "\": -3.4e38}}");
            assertFalse(ids(banned).contains(x), "temperature " + t + ": " + banned);
        }
        assertEquals(200, Http.post("/generate", Checkpoints.greedyBody(2)).status(), "and the server goes on serving");
    }

    @Test
    void aKeyOutsideTheVocabularyIsA400NamingIt() {
        for (String[] call : new String[][] {
                {"/generate", "{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"999999999\": 1}}}"},
                {"/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": [1], \"logit_bias\": {\"999999999\": 1}}"},
                {"/generate", "{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"token\": 1}}}"}}) {
            Http.Reply r = Http.post(call[0], call[1]);
            assertEquals(400, r.status(), r.body());
            assertTrue(r.body().contains("logit_bias") && (r.body().contains("999999999") || r.body().contains("'token'")), r.body());
        }
    }

    @Test
    void stopRegexStopsOnTheMatchAndReportsThePattern() {
        JsonObject g = generate("{\"max_new_tokens\": 40, \"temperature\": 0, \"ignore_eos\": true, \"logit_bias\": {\"" + x + "\": 100}, "
                + "\"stop_regex\": [\"never\", \"x{3}\"]}");
        assertEquals("{\"type\":\"stop\",\"matched\":\"x{3}\"}", g.getJsonObject("meta_info").getJsonObject("finish_reason").toString());
        assertEquals(3, g.getJsonArray("output_ids").size());
        assertEquals("xxx", g.getString("text"), "SGLang trims only where the pattern's own text appears");

        JsonObject c = Http.post("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": [9707, 11], \"max_tokens\": 40, "
                + "\"temperature\": 0, \"logit_bias\": {\"" + x + "\": 100}, \"stop_regex\": \"x{4}\"}").object();
        JsonObject choice = c.getJsonArray("choices").getJsonObject(0);
        assertEquals("stop", choice.getString("finish_reason"), c.toString());
        assertEquals("xxxx", choice.getString("text"));
    }

    @Test
    void aStreamEndsWithTheMatchedPattern() {
        List<String> events = Sse.post("/generate", "{\"input_ids\": [9707, 11], \"stream\": true, \"sampling_params\": {\"max_new_tokens\": 40, "
                + "\"temperature\": 0, \"logit_bias\": {\"" + x + "\": 100}, \"stop_regex\": \"x{5}$\"}}");
        JsonObject last = Sse.json(events.get(events.size() - 2));
        assertEquals("x{5}$", last.getJsonObject("meta_info").getJsonObject("finish_reason").getString("matched"));
        assertEquals("[DONE]", events.get(events.size() - 1));
    }

    @Test
    void anInvalidPatternIsA400NamingIt() {
        Http.Reply r = Http.post("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"stop_regex\": [\"ok\", \"(unclosed\"]}}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("stop_regex") && r.body().contains("(unclosed"), r.body());
        assertEquals(400, Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                + "\"stop_regex\": \"[z-a]\"}").status());
        assertEquals(200, Http.post("/generate", Checkpoints.greedyBody(2)).status(), "and the server goes on serving");
    }
}
