package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.ServerProcess;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.net.URI;
import java.net.http.HttpRequest;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Issue #21 through a server started with SGLang's flag name for it
 * ({@code ROLLOUT_ENABLE_DETERMINISTIC_INFERENCE=true}) and {@code ROLLOUT_LOGPROBS_MODE=raw_logprobs},
 * the default model on the CPU: /server_info reports both; a greedy request (in the server's
 * mode), a seeded one (asking for SGLang's) and a seeded one with top-k and top-p (asking for
 * processed_logprobs) give the same tokens and the same logprobs, digit for digit in the JSON, alone
 * and sent at once with 24 others of random lengths; and each output token's logprob (and its top
 * logprobs) is what /generate reports for that position when prompt and output are sent back as one
 * prompt to be scored (a trainer's recompute). The processed request's top logprobs are its kept
 * 20 tokens, summing to 1, and then −∞ (−1e30).
 */
class DeterministicServerIT {
    private static final int NEW = 12, TOP_K = 20;

    /** What a target samples with, the logprobs_mode it asks for (null: the server's) and how many top logprobs. */
    private record Target(String sampling, String mode, int top) {}

    @Test
    void aRequestsLogprobsAreItsOwnAndEqualItsRescore() throws Exception {
        Http.awaitReady();
        int port = ServerProcessIT.freePort();
        try (ServerProcess server = ServerProcess.start(ServerProcessIT.secondServer("deterministic", port)
                .withEnvironment("ROLLOUT_ENABLE_DETERMINISTIC_INFERENCE", "true").withEnvironment("ROLLOUT_LOGPROBS_MODE", "raw_logprobs")
                .withEnvironment("ROLLOUT_TORCH_THREADS", "2")
                // C2, as in production: this server computes for a minute and more (the batch-invariant
                // arithmetic), long enough that C1's cheaper start (ServerProcessIT's default) may not pay
                .withEnvironment("JAVA_TOOL_OPTIONS", ""))) {
            String base = "http://localhost:" + port;
            Http.Reply info = Http.send(HttpRequest.newBuilder(URI.create(base + "/server_info")).GET());
            assertEquals(JsonValue.TRUE, info.object().get("enable_deterministic_inference"), info.body());
            assertEquals("raw_logprobs", info.object().getString("logprobs_mode"), info.body());

            SplittableRandom r = new SplittableRandom(3);
            String prompt = ids(r, 37);
            for (Target t : List.of(new Target("\"temperature\": 0", null, 3),
                    new Target("\"temperature\": 1.0, \"sampling_seed\": 77", "sglang", 3),
                    new Target("\"temperature\": 0.8, \"top_k\": " + TOP_K + ", \"top_p\": 0.95, \"sampling_seed\": 99", "processed_logprobs",
                            TOP_K + 1))) {
                String sampling = t.sampling() + (t.mode() == null ? "" : ", " + t.mode());
                String target = body(prompt, t, NEW, -1);
                JsonObject alone = generate(base, target);

                // the same request with 24 others at once: other batches, other prefill chunks
                List<CompletableFuture<JsonObject>> crowd = new ArrayList<>();
                for (int i = 0; i < 24; i++) {
                    String other = body(ids(r, r.nextInt(1, 120)), new Target(i % 2 == 0 ? "\"temperature\": 0" : "\"temperature\": 0.7"
                            + (i % 4 == 1 ? ", \"top_k\": 50" : ""), null, 3), r.nextInt(1, 30), -1);
                    crowd.add(CompletableFuture.supplyAsync(() -> generate(base, other)));
                    if (i == 12) crowd.add(CompletableFuture.supplyAsync(() -> generate(base, target)));
                }
                JsonObject crowded = crowd.get(13).join();
                crowd.forEach(CompletableFuture::join);
                assertEquals(alone.get("output_ids"), crowded.get("output_ids"), sampling + ": the tokens beside 24 others");
                assertEquals(alone.getJsonObject("meta_info").get("output_token_logprobs").toString(),
                        crowded.getJsonObject("meta_info").get("output_token_logprobs").toString(), sampling + ": the logprobs beside 24 others");
                assertEquals(alone.getJsonObject("meta_info").get("output_top_logprobs").toString(),
                        crowded.getJsonObject("meta_info").get("output_top_logprobs").toString(), sampling + ": the top logprobs beside 24 others");

                // prompt and output scored as one prompt: the output positions' logprobs are the decode's
                JsonArray out = alone.getJsonArray("output_ids");
                String whole = prompt.substring(0, prompt.length() - 1) + ", "
                        + out.stream().map(JsonValue::toString).collect(Collectors.joining(", ")) + "]";
                JsonObject rescored = generate(base, body(whole, t, 1, 0)).getJsonObject("meta_info");
                JsonArray decoded = alone.getJsonObject("meta_info").getJsonArray("output_token_logprobs");
                JsonArray scored = rescored.getJsonArray("input_token_logprobs");
                JsonArray decodedTop = alone.getJsonObject("meta_info").getJsonArray("output_top_logprobs");
                JsonArray scoredTop = rescored.getJsonArray("input_top_logprobs");
                int promptLen = 37;
                for (int i = 0; i < NEW; i++) {
                    assertEquals(decoded.get(i).toString(), scored.get(promptLen + i).toString(), sampling + ": output token " + i + " re-scored");
                    assertEquals(decodedTop.get(i).toString(), scoredTop.get(promptLen + i).toString(), sampling + ": its top logprobs re-scored");
                }
                if ("processed_logprobs".equals(t.mode())) keptTopK(decoded, decodedTop);
            }
        }
    }

    /**
     * processed_logprobs with top_k = 20 on a random model (whose flat distribution top_p 0.95 does
     * not cut within 20): at every position the 20 kept tokens sum to 1, the 21st is dropped (−∞,
     * written −1e30), and the drawn token is among the kept.
     */
    private static void keptTopK(JsonArray decoded, JsonArray top) {
        for (int i = 0; i < NEW; i++) {
            JsonArray entries = top.getJsonArray(i);
            double mass = 0;
            for (int k = 0; k < TOP_K; k++) mass += Math.exp(entries.getJsonArray(k).getJsonNumber(0).doubleValue());
            assertEquals(1.0, mass, 1e-4, "position " + i + ": the kept tokens' probabilities " + entries);
            assertEquals(-1e30, entries.getJsonArray(TOP_K).getJsonNumber(0).doubleValue(), "position " + i + ": the 21st is dropped");
            double drawn = decoded.getJsonArray(i).getJsonNumber(0).doubleValue();
            assertTrue(drawn > -1e29 && drawn <= 0, "position " + i + ": the drawn token is kept, " + drawn);
        }
    }

    private static String ids(SplittableRandom r, int n) {
        return IntStream.range(0, n).mapToObj(i -> String.valueOf(r.nextInt(10, 5000))).collect(Collectors.joining(", ", "[", "]"));
    }

    private static String body(String inputIds, Target t, int tokens, int logprobStart) {
        return "{\"input_ids\": " + inputIds + ", \"sampling_params\": {" + t.sampling() + ", \"max_new_tokens\": " + tokens
                + ", \"ignore_eos\": true}, \"return_logprob\": true, \"top_logprobs_num\": " + t.top() + ", \"logprob_start_len\": "
                + logprobStart + (t.mode() == null ? "" : ", \"logprobs_mode\": \"" + t.mode() + "\"") + "}";
    }

    private static JsonObject generate(String base, String body) {
        Http.Reply r = Http.send(HttpRequest.newBuilder(URI.create(base + "/generate")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)));
        assertEquals(200, r.status(), r.body());
        return r.object();
    }
}
