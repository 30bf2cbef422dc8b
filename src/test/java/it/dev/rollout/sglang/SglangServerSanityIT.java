package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code python/sglang/test/kits/server_sanity_kit.py} at commit
 * {@code 178dcdfbb16fd33e424521305ac33a880e7d38ea} ({@code ServerSanityMixin}), every case, over
 * plain HTTP.
 *
 * <p>The kit's answers ("paris", "391", "yellow"), its gibberish and repetition detectors need a
 * trained model; the default model has random weights. Each becomes a check of what the kit
 * guards against that holds for any weights: greedy decoding repeats itself exactly (also through
 * the prefix cache, which is where KV corruption shows), the text is the output ids decoded, a
 * stream ends where the whole answer ends, concurrent requests answer as they do alone. The long
 * prompt is cut to fit the default model's 4,096-token context (SGLang's is 8k tokens).
 */
class SglangServerSanityIT {
    static final int SHORT = 64, LONG = 128;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    /** The kit's {@code _sanity_generate}, returning the whole answer, not only its text. */
    static JsonObject sanityGenerate(String prompt, int maxNewTokens, List<String> stop) {
        JsonObject sp = stop == null ? obj("temperature", 0.0, "max_new_tokens", maxNewTokens)
                : obj("temperature", 0.0, "max_new_tokens", maxNewTokens, "stop", stop);
        return Sglang.generate(obj("text", prompt, "sampling_params", sp));
    }

    /** Random weights: the kit's expected word becomes "the same answer twice, the second through the prefix cache". */
    static void deterministic(String prompt, int maxNewTokens) {
        JsonObject first = sanityGenerate(prompt, maxNewTokens, null), second = sanityGenerate(prompt, maxNewTokens, null);
        assertEquals(first.getJsonArray("output_ids"), second.getJsonArray("output_ids"));
        assertEquals(first.getString("text"), second.getString("text"));
        assertEquals(first.getJsonArray("output_ids").size(), first.getJsonObject("meta_info").getInt("completion_tokens"));
        assertTrue(first.getJsonArray("output_ids").size() <= maxNewTokens);
    }

    @Test
    void test_health() {
        assertEquals(200, Http.get("/health").status());
    }

    @Test
    void test_health_generate() {
        assertEquals(200, Http.get("/health_generate").status());
    }

    @Test
    void test_capital_france() {
        deterministic("Q: What is the capital of France?\nA:", SHORT);
    }

    @Test
    void test_basic_math() {
        deterministic("Q: What is 17 multiplied by 23? Reply with just the number.\nA:", SHORT);
    }

    @Test
    void test_color_completion() {
        deterministic("Q: The three primary colors are red, blue, and ___. Fill in the blank.\nA:", SHORT);
    }

    /** Gibberish is all a random model says: instead, the text is what its ids decode to (no encoding damage on the way). */
    @Test
    void test_ascii_ratio() {
        JsonObject out = sanityGenerate("Write a single sentence about a sunny day in the park.", LONG, null);
        String decoded = Sglang.ok("/detokenize", obj("tokens", out.getJsonArray("output_ids"), "skip_special_tokens", true))
                .object().getString("text");
        String text = out.getString("text");
        // a final token that ends inside a UTF-8 character decodes to U+FFFD alone; the streamed text holds it back
        assertEquals(decoded.replaceAll("\uFFFD+$", ""), text.replaceAll("\uFFFD+$", ""));
    }

    /** Repetition is what random weights may well do: instead, KV reuse gives the cold answer again. */
    @Test
    void test_no_repetition_blowup() {
        deterministic("Briefly explain what gravity is.", LONG);
    }

    @Test
    void test_max_token_one() {
        JsonObject out = sanityGenerate("Q: What is the capital of France? Just one word.\nA:", 1, null);
        // the kit's len(text) > 0: one token came out (a random model's one token may be special, so no text)
        assertEquals(1, out.getJsonArray("output_ids").size());
    }

    @Test
    void test_streaming_response() {
        String prompt = "Q: What is the capital of France?\nA:";
        List<JsonObject> chunks = Sglang.stream("/generate", obj("text", prompt,
                "sampling_params", obj("temperature", 0.0, "max_new_tokens", SHORT), "stream", true));
        assertTrue(chunks.size() > 0);
        // the kit's "paris" in the last text: the stream's last text is the whole answer's
        assertEquals(sanityGenerate(prompt, SHORT, null).getString("text"), chunks.get(chunks.size() - 1).getString("text"));
    }

    static final String PREFIX = "You are a helpful assistant. Answer with a single word.\n";
    static final String[] QUESTIONS = {"Q: What is the capital of France?\nA:", "Q: What is the capital of Germany?\nA:",
            "Q: What is the capital of Italy?\nA:", "Q: What is the capital of Japan?\nA:", "Q: What is the capital of Spain?\nA:",
            "Q: What is the capital of Egypt?\nA:", "Q: What is the capital of Russia?\nA:", "Q: What is the capital of Australia?\nA:"};

    /**
     * Eight concurrent requests with a shared prefix: each answers as it does alone (the kit's
     * canonical answers become each prompt's own answer). As the kit does, one miss is tolerated:
     * a batch of another size may round a near-tie differently.
     */
    @Test
    void test_concurrent_requests() throws Exception {
        List<String> alone = new ArrayList<>();
        for (String q : QUESTIONS) alone.add(sanityGenerate(PREFIX + q, SHORT, null).getString("text"));
        ExecutorService pool = Executors.newFixedThreadPool(QUESTIONS.length);
        try {
            List<CompletableFuture<JsonObject>> calls = new ArrayList<>();
            for (String q : QUESTIONS) calls.add(CompletableFuture.supplyAsync(() -> sanityGenerate(PREFIX + q, SHORT, null), pool));
            int same = 0;
            for (int i = 0; i < QUESTIONS.length; i++)
                if (calls.get(i).get(120, TimeUnit.SECONDS).getString("text").equals(alone.get(i))) same++;
            assertTrue(same >= QUESTIONS.length - 1, "concurrent answers equal to their answer alone: " + same + "/" + QUESTIONS.length);
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void test_long_prompt() {
        // SGLang's 800 repetitions are ~8k tokens; 300 are ~3k, several prefill chunks within our 4,096-token context
        String filler = "the quick brown fox jumps over the lazy dog. ".repeat(300);
        JsonObject out = sanityGenerate("Read the following text and then answer.\n" + filler + "\n\nQ: What is the capital of France?\nA:",
                SHORT, null);
        assertTrue(out.getJsonObject("meta_info").getInt("prompt_tokens") > 2048, out.getJsonObject("meta_info").toString());
        assertFalse(out.getJsonArray("output_ids").isEmpty());
    }

    @Test
    void test_determinism_temp_zero() {
        String prompt = "Q: What is the capital of France? Reply in one word.\nA:";
        String out1 = sanityGenerate(prompt, SHORT, List.of("\n")).getString("text");
        String out2 = sanityGenerate(prompt, SHORT, List.of("\n")).getString("text");  // the second through the cache
        assertEquals(out1.strip(), out2.strip());
    }
}
