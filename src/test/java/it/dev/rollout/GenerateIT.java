package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** /generate against the embedded default model: shapes, sampling, logprobs, stops, n > 1, streaming. */
class GenerateIT {
    static final String PROMPT_IDS = "[9707, 11, 1879, 0, 576, 6722, 3283, 315]";

    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    static JsonObject generate(String body) {
        Http.Reply r = Http.post("/generate", body);
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    static int[] ids(JsonArray a) {
        return a.getValuesAs(jakarta.json.JsonNumber.class).stream().mapToInt(jakarta.json.JsonNumber::intValue).toArray();
    }

    @Test
    void textInTextOut() {
        JsonObject o = generate("{\"text\": \"The capital of France is\", \"sampling_params\": {\"max_new_tokens\": 8, \"temperature\": 0}}");
        assertEquals(8, o.getJsonArray("output_ids").size());
        assertTrue(o.containsKey("text"));
        JsonObject m = o.getJsonObject("meta_info");
        assertEquals("length", m.getJsonObject("finish_reason").getString("type"));
        assertEquals(8, m.getJsonObject("finish_reason").getInt("length"));
        assertEquals(5, m.getInt("prompt_tokens"));
        assertEquals(8, m.getInt("completion_tokens"));
        assertEquals("default", m.getString("weight_version"));
        assertTrue(m.getJsonNumber("e2e_latency").doubleValue() > 0);
        assertFalse(m.getString("id").isEmpty());
    }

    @Test
    void greedyIsDeterministicAndSeedsReproduce() {
        String greedy = "{\"input_ids\": " + PROMPT_IDS + ", \"sampling_params\": {\"max_new_tokens\": 12, \"temperature\": 0}}";
        assertEquals(generate(greedy).getJsonArray("output_ids"), generate(greedy).getJsonArray("output_ids"));
        String seeded = "{\"input_ids\": " + PROMPT_IDS + ", \"sampling_params\": {\"max_new_tokens\": 12, \"temperature\": 1.0, "
                + "\"top_p\": 0.9, \"top_k\": 50, \"sampling_seed\": 7}}";
        assertEquals(generate(seeded).getJsonArray("output_ids"), generate(seeded).getJsonArray("output_ids"));
        String other = seeded.replace("\"sampling_seed\": 7", "\"sampling_seed\": 8");
        assertFalse(generate(seeded).getJsonArray("output_ids").equals(generate(other).getJsonArray("output_ids")),
                "different seeds should sample differently");
    }

    @Test
    void batchOfInputIdsAnswersWithAList() {
        Http.Reply r = Http.post("/generate", "{\"input_ids\": [[1, 2, 3], [4, 5, 6, 7]], \"rid\": \"batch\", "
                + "\"sampling_params\": [{\"max_new_tokens\": 3, \"temperature\": 0}, {\"max_new_tokens\": 5, \"temperature\": 0}]}");
        assertEquals(200, r.status(), r.body());
        JsonArray a = r.array();
        assertEquals(2, a.size());
        assertEquals(3, a.getJsonObject(0).getJsonArray("output_ids").size());
        assertEquals(5, a.getJsonObject(1).getJsonArray("output_ids").size());
        assertEquals("batch_0", a.getJsonObject(0).getJsonObject("meta_info").getString("id"));
        assertEquals("batch_1", a.getJsonObject(1).getJsonObject("meta_info").getString("id"));
    }

    @Test
    void nSamplesShareThePromptKv() {
        // 40 tokens: two full 16-token blocks that the siblings should find in the prefix cache
        StringBuilder p = new StringBuilder("[");
        for (int i = 0; i < 40; i++) p.append(i == 0 ? "" : ",").append(1000 + i * 7);
        Http.Reply r = Http.post("/generate", "{\"input_ids\": " + p + "], \"rid\": \"fan\", "
                + "\"sampling_params\": {\"n\": 4, \"max_new_tokens\": 6, \"temperature\": 1.0, \"sampling_seed\": 3}}");
        assertEquals(200, r.status(), r.body());
        JsonArray a = r.array();
        assertEquals(4, a.size());
        int cached = 0;
        for (int i = 0; i < 4; i++) {
            JsonObject m = a.getJsonObject(i).getJsonObject("meta_info");
            assertEquals("fan_" + i, m.getString("id"));
            assertEquals(6, a.getJsonObject(i).getJsonArray("output_ids").size());
            cached += m.getInt("cached_tokens");
        }
        assertTrue(cached >= 3 * 32, "the three siblings reuse the leader's two full blocks, cached=" + cached);
    }

    @Test
    void logprobOptions() {
        JsonObject o = generate("{\"input_ids\": " + PROMPT_IDS + ", \"return_logprob\": true, \"logprob_start_len\": 0, "
                + "\"top_logprobs_num\": 3, \"token_ids_logprob\": [0, 1, 2], \"return_text_in_logprobs\": true, "
                + "\"sampling_params\": {\"max_new_tokens\": 4, \"temperature\": 0}}");
        JsonObject m = o.getJsonObject("meta_info");
        int[] out = ids(o.getJsonArray("output_ids"));
        JsonArray olp = m.getJsonArray("output_token_logprobs");
        assertEquals(4, olp.size());
        for (int i = 0; i < 4; i++) {
            JsonArray t = olp.getJsonArray(i);
            assertTrue(t.getJsonNumber(0).doubleValue() <= 0);
            assertEquals(out[i], t.getInt(1));
            assertEquals(JsonValue.ValueType.STRING, t.get(2).getValueType(), "text requested in logprobs");
            // greedy: the chosen token is the best of the top-3, with the same logprob
            JsonArray top = m.getJsonArray("output_top_logprobs").getJsonArray(i);
            assertEquals(3, top.size());
            assertEquals(out[i], top.getJsonArray(0).getInt(1));
            assertEquals(t.getJsonNumber(0).doubleValue(), top.getJsonArray(0).getJsonNumber(0).doubleValue(), 1e-6);
            assertEquals(3, m.getJsonArray("output_token_ids_logprobs").getJsonArray(i).size());
        }
        JsonArray in = m.getJsonArray("input_token_logprobs");
        assertEquals(8, in.size());
        assertEquals(JsonValue.NULL, in.getJsonArray(0).get(0), "nothing predicts the first prompt token");
        assertEquals(9707, in.getJsonArray(0).getInt(1));
        for (int i = 1; i < 8; i++) assertTrue(in.getJsonArray(i).getJsonNumber(0).doubleValue() < 0);
        assertEquals(8, m.getJsonArray("input_top_logprobs").size());

        JsonObject from4 = generate("{\"input_ids\": " + PROMPT_IDS + ", \"return_logprob\": true, \"logprob_start_len\": 4, "
                + "\"sampling_params\": {\"max_new_tokens\": 1, \"temperature\": 0}}");
        JsonArray in4 = from4.getJsonObject("meta_info").getJsonArray("input_token_logprobs");
        assertEquals(4, in4.size());
        assertEquals(in.getJsonArray(4).getJsonNumber(0).doubleValue(), in4.getJsonArray(0).getJsonNumber(0).doubleValue(), 1e-4);
    }

    @Test
    void scoringWithZeroNewTokens() {
        JsonObject o = generate("{\"input_ids\": " + PROMPT_IDS + ", \"return_logprob\": true, \"logprob_start_len\": 0, "
                + "\"sampling_params\": {\"max_new_tokens\": 0}}");
        assertEquals(0, o.getJsonArray("output_ids").size());
        assertEquals(8, o.getJsonObject("meta_info").getJsonArray("input_token_logprobs").size());
        assertEquals("length", o.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
    }

    @Test
    void stopTokenIdsAndStopStrings() {
        String base = "{\"input_ids\": " + PROMPT_IDS + ", \"sampling_params\": {\"max_new_tokens\": 16, \"temperature\": 0, \"ignore_eos\": true";
        JsonObject free = generate(base + "}}");
        int[] out = ids(free.getJsonArray("output_ids"));
        JsonObject stopped = generate(base + ", \"stop_token_ids\": [" + out[5] + "]}}");
        JsonObject fr = stopped.getJsonObject("meta_info").getJsonObject("finish_reason");
        assertEquals("stop", fr.getString("type"));
        assertEquals(out[5], fr.getInt("matched"));
        int[] cut = ids(stopped.getJsonArray("output_ids"));
        assertEquals(out[cut.length - 1], out[5]);
        assertTrue(cut.length <= 6);

        String text = free.getString("text");
        String needle = null;
        for (int len = 3; len >= 1 && needle == null; len--)
            for (int at = Math.min(text.length() - len, 6); at >= 1; at--) {
                String cand = text.substring(at, at + len);
                if (!cand.isBlank() && text.indexOf(cand) == at) { needle = cand; break; }
            }
        if (needle != null) {
            JsonObject s = generate(base + ", \"stop\": " + jakarta.json.Json.createArrayBuilder().add(needle).build() + "}}");
            JsonObject sfr = s.getJsonObject("meta_info").getJsonObject("finish_reason");
            assertEquals("stop", sfr.getString("type"));
            assertEquals(needle, sfr.getString("matched"));
            assertEquals(text.substring(0, text.indexOf(needle)), s.getString("text"));
        }
    }

    @Test
    void streamsServerSentEvents() {
        List<String> events = Sse.post("/generate", "{\"input_ids\": " + PROMPT_IDS
                + ", \"stream\": true, \"return_logprob\": true, \"sampling_params\": {\"max_new_tokens\": 6, \"temperature\": 0}}");
        assertEquals("[DONE]", events.get(events.size() - 1));
        List<JsonObject> chunks = new ArrayList<>();
        for (String e : events.subList(0, events.size() - 1)) chunks.add(Sse.json(e));
        assertEquals(6, chunks.size(), "one event per token");
        for (int i = 0; i < chunks.size(); i++) {
            assertEquals(i + 1, chunks.get(i).getJsonArray("output_ids").size(), "output_ids are cumulative");
            boolean last = i == chunks.size() - 1;
            assertEquals(last, chunks.get(i).getJsonObject("meta_info").get("finish_reason") != JsonValue.NULL);
        }
        JsonObject whole = generate("{\"input_ids\": " + PROMPT_IDS + ", \"sampling_params\": {\"max_new_tokens\": 6, \"temperature\": 0}}");
        assertArrayEquals(ids(whole.getJsonArray("output_ids")), ids(chunks.get(5).getJsonArray("output_ids")));
        assertEquals(whole.getString("text"), chunks.get(5).getString("text"));
    }

    @Test
    void streamIntervalSpacesTheEventsAndKeepsTheLast() {
        List<String> events = Sse.post("/generate", "{\"input_ids\": " + PROMPT_IDS
                + ", \"stream\": true, \"sampling_params\": {\"max_new_tokens\": 10, \"temperature\": 0, \"stream_interval\": 4}}");
        assertEquals("[DONE]", events.get(events.size() - 1));
        List<Integer> sizes = new ArrayList<>();
        for (String e : events.subList(0, events.size() - 1)) sizes.add(Sse.json(e).getJsonArray("output_ids").size());
        assertEquals(List.of(4, 8, 10), sizes, "an event every 4 tokens, and the finishing one");
    }
}
