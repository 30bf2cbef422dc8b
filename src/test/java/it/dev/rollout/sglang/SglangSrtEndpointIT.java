package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.arr;
import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code test/registered/core/test_srt_endpoint.py} at commit
 * {@code 3d0cf68aea9822eeaf235bdee9f925daeaefeb85}: both its classes ({@code TestSRTEndpoint},
 * {@code TestTokenizeDetokenize}), every case, over plain HTTP against the build's IT server.
 *
 * <p>Where they differ from SGLang's file, and why:
 * <ul>
 * <li>SGLang's {@code run_decode} cases only print; here they check the answer's shape.
 * <li>Lengths are cut to the default model's 4,096-token context: SGLang's 8000-repetition
 *     prompt, 10k..50k-token logprob inputs and 10k..11k-token cache prompts are 400s here; and
 *     {@code test_logprob_mixed} to what the engine's memory holds (see there).
 * <li>The prefix cache works in whole pages ({@code page_size}), SGLang's radix cache per token:
 *     {@code cached_tokens} is the token count rounded down to a page.
 * <li>Text checks that need a trained model become checks on ids.
 * <li>{@code custom_logit_processor} is serialized Python code: refused with a 400, by design
 *     (docs/api.md), so those cases check the refusal and that it disturbs nobody.
 * <li>{@code logit_bias} cases check ids, not text; each also checks what random weights make
 *     meaningful (a forbidden token the model does pick; the unbiased row of a mixed batch
 *     unchanged, greedy). {@code regex} (constrained decoding, issue #22) cases are skipped until it lands.
 * <li>{@code /detokenize} of a negative id is a 400 here, a 500 in SGLang: bad input is a 4xx.
 * </ul>
 */
class SglangSrtEndpointIT {
    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    // ---------------------------------------------------------------------------------------
    // TestSRTEndpoint

    /** SGLang's run_decode, with the shape checks it leaves to a reader of its printout. */
    static void runDecode(boolean returnLogprob, int topLogprobsNum, boolean returnText, int n, boolean stream, boolean batch) {
        Object text = batch ? arr("The capital of France is") : "The capital of France is";
        JsonObject body = obj("text", text, "sampling_params", obj("temperature", n == 1 ? 0 : 0.5, "max_new_tokens", 16, "n", n),
                "stream", stream, "return_logprob", returnLogprob, "top_logprobs_num", topLogprobsNum,
                "return_text_in_logprobs", returnText, "logprob_start_len", 0);
        List<JsonObject> items = new ArrayList<>();
        if (stream) {
            List<JsonObject> chunks = Sglang.stream("/generate", body);
            assertFalse(chunks.isEmpty());
            for (int i = 0; i < n; i++) {
                int index = i;
                List<JsonObject> mine = chunks.stream().filter(c -> n == 1 || c.getInt("index") == index).toList();
                assertFalse(mine.isEmpty(), "every sample streams");
                items.add(mine.get(mine.size() - 1));
            }
        } else {
            Http.Reply r = Sglang.ok("/generate", body);
            if (n == 1 && !batch) items.add(r.object());
            else r.array().forEach(v -> items.add(v.asJsonObject()));
            assertEquals(batch ? n : n, items.size());
        }
        for (JsonObject item : items) {
            JsonObject meta = item.getJsonObject("meta_info");
            assertTrue(meta.getJsonObject("finish_reason") != null, item.toString());
            int generated = item.getJsonArray("output_ids").size();
            assertEquals(generated, meta.getInt("completion_tokens"));
            assertTrue(generated <= 16);
            if (!returnLogprob) continue;
            assertEquals(generated, meta.getJsonArray("output_token_logprobs").size());
            assertEquals(meta.getInt("prompt_tokens"), meta.getJsonArray("input_token_logprobs").size(), "logprob_start_len 0: every position");
            if (topLogprobsNum > 0)
                for (JsonValue top : meta.getJsonArray("output_top_logprobs")) assertEquals(topLogprobsNum, top.asJsonArray().size());
            if (returnText)
                for (JsonValue t : meta.getJsonArray("output_token_logprobs"))
                    assertEquals(JsonValue.ValueType.STRING, t.asJsonArray().get(2).getValueType());
        }
    }

    @Test
    void test_simple_decode() {
        runDecode(false, 0, false, 1, false, false);
    }

    @Test
    void test_simple_decode_batch() {
        runDecode(false, 0, false, 1, false, true);
    }

    @Test
    void test_parallel_sample() {
        runDecode(false, 0, false, 3, false, false);
    }

    @Test
    void test_parallel_sample_stream() {
        runDecode(false, 0, false, 3, true, false);
    }

    @Test
    void test_logprob() {
        runDecode(true, 5, true, 1, false, false);
    }

    @Test
    void test_logprob_start_len() {
        int logprobStartLen = 4, newTokens = 4;
        String[] prompts = {"I have a very good idea on", "Today is a sunndy day and"};
        JsonArray res = Sglang.ok("/generate", obj("text", arr((Object[]) prompts),
                "sampling_params", obj("temperature", 0, "max_new_tokens", newTokens), "return_logprob", true, "top_logprobs_num", 5,
                "return_text_in_logprobs", true, "logprob_start_len", logprobStartLen)).array();
        for (int i = 0; i < res.size(); i++) {
            JsonObject r = res.getJsonObject(i), meta = r.getJsonObject("meta_info");
            assertEquals(meta.getInt("prompt_tokens"), logprobStartLen + meta.getJsonArray("input_token_logprobs").size());
            StringBuilder tail = new StringBuilder();
            for (JsonValue t : meta.getJsonArray("input_token_logprobs")) tail.append(t.asJsonArray().getString(2));
            assertTrue(prompts[i].endsWith(tail.toString()), prompts[i] + " should end with " + tail);
            assertEquals(newTokens, meta.getInt("completion_tokens"));
            assertEquals(newTokens, meta.getJsonArray("output_token_logprobs").size());
            // SGLang compares the text with the joined pieces: a random model's tokens may be special
            // (skipped from text) or half a UTF-8 character (U+FFFD alone), so compare the ids instead
            List<Integer> ids = new ArrayList<>();
            for (JsonValue t : meta.getJsonArray("output_token_logprobs")) ids.add(t.asJsonArray().getInt(1));
            assertEquals(Sglang.list(r.getJsonArray("output_ids")), ids);
        }
    }

    @Test
    void test_logprob_with_chunked_prefill() {
        int newTokens = 4;
        // SGLang's 8000 repetitions (~72k tokens) exceed our context; 380 (~3.4k) still take several prefill chunks
        JsonObject res = Sglang.generate(obj("text", "I have a very good idea on this. ".repeat(380),
                "sampling_params", obj("temperature", 0, "max_new_tokens", newTokens), "return_logprob", true, "logprob_start_len", -1,
                "top_logprobs_num", 5));
        JsonObject meta = res.getJsonObject("meta_info");
        assertEquals(newTokens, meta.getInt("completion_tokens"));
        assertEquals(newTokens, meta.getJsonArray("output_token_logprobs").size());
        assertEquals(newTokens, meta.getJsonArray("output_top_logprobs").size());
        for (int i = 0; i < newTokens; i++) {
            assertEquals(meta.getJsonArray("output_token_logprobs").get(i), meta.getJsonArray("output_top_logprobs").getJsonArray(i).get(0));
            assertEquals(5, meta.getJsonArray("output_top_logprobs").getJsonArray(i).size());
        }
    }

    @Test
    void test_logprob_match() {
        String prompt = "I have a very good idea on how to";
        JsonObject gen = runGenerate(obj("text", prompt), 512, 0);
        JsonArray outLps = gen.getJsonObject("meta_info").getJsonArray("output_token_logprobs");
        int numPromptTokens = gen.getJsonObject("meta_info").getInt("prompt_tokens");
        List<Integer> newPrompt = new ArrayList<>();
        for (JsonValue t : gen.getJsonObject("meta_info").getJsonArray("input_token_logprobs")) newPrompt.add(t.asJsonArray().getInt(1));
        for (JsonValue t : outLps) newPrompt.add(t.asJsonArray().getInt(1));
        JsonObject score = runGenerate(obj("input_ids", newPrompt), 0, 0);
        JsonArray scored = score.getJsonObject("meta_info").getJsonArray("input_token_logprobs");
        double maxDiff = 0;
        for (int i = 0; i < outLps.size(); i++)
            maxDiff = Math.max(maxDiff, Math.abs(outLps.getJsonArray(i).getJsonNumber(0).doubleValue()
                    - scored.getJsonArray(numPromptTokens + i).getJsonNumber(0).doubleValue()));
        assertTrue(maxDiff < 0.35, "max |output logprob - rescored logprob| = " + maxDiff);
    }

    private static JsonObject runGenerate(JsonObject prompt, int maxNewTokens, int logprobStartLen) {
        JsonObject body = obj("sampling_params", obj("temperature", 1.0, "max_new_tokens", maxNewTokens, "ignore_eos", true),
                "return_logprob", true, "return_text_in_logprobs", true, "logprob_start_len", logprobStartLen);
        return Sglang.generate(jakarta.json.Json.createObjectBuilder(body).addAll(jakarta.json.Json.createObjectBuilder(prompt)).build());
    }

    /**
     * SGLang's matrix at its own scale: inputs of 1,000 and 3,000 tokens, starts 0, 500 and 2,500,
     * eight at a time. The engine scores prompt positions a slice at a time
     * (ModelRunner.SCORE_SLICE): the logits of every position of eight 3,000-token prompts at once
     * were 1.8 GB each and ran past the native memory limit.
     */
    @Test
    void test_logprob_mixed() throws Exception {
        logprobMixed(new int[] {1000, 3000}, new int[] {0, 500, 2500}, 8);
    }

    private static void logprobMixed(int[] inputLens, int[] starts, int threads) throws Exception {
        List<int[]> args = new ArrayList<>();
        for (int inputLen : inputLens)
            for (int outputLen : new int[] {4, 8})
                for (int start : starts)
                    for (int returnLogprob : new int[] {1, 0})
                        for (int top : new int[] {0, 5})
                            if (start < inputLen) args.add(new int[] {inputLen, outputLen, start, returnLogprob, top});
        Collections.shuffle(args, new Random(17));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<CompletableFuture<Void>> runs = new ArrayList<>();
            for (int[] a : args) runs.add(CompletableFuture.runAsync(() -> runLogprobCheck(a[0], a[1], 0, a[2], a[3] == 1, a[4]), pool));
            for (CompletableFuture<Void> r : runs) r.get(300, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
    }

    /** SGLang's test_utils.run_logprob_check. */
    static void runLogprobCheck(int inputLen, int outputLen, double temperature, int logprobStartLen, boolean returnLogprob, int topLogprobsNum) {
        JsonObject res = Sglang.generate(obj("input_ids", IntStream.range(0, inputLen).toArray(),
                "sampling_params", obj("temperature", temperature, "max_new_tokens", outputLen, "ignore_eos", true),
                "return_logprob", returnLogprob, "logprob_start_len", logprobStartLen, "top_logprobs_num", topLogprobsNum));
        JsonObject meta = res.getJsonObject("meta_info");
        String what = "input " + inputLen + ", output " + outputLen + ", start " + logprobStartLen + ", logprob " + returnLogprob + ", top "
                + topLogprobsNum + ": finish " + meta.get("finish_reason") + ", output_ids " + res.getJsonArray("output_ids");
        assertEquals(inputLen, meta.getInt("prompt_tokens"), what);
        assertEquals(outputLen, meta.getInt("completion_tokens"), what);
        if (!returnLogprob) return;
        assertEquals(inputLen - logprobStartLen, meta.getJsonArray("input_token_logprobs").size(), what);
        assertEquals(outputLen, meta.getJsonArray("output_token_logprobs").size(), what);
        if (topLogprobsNum == 0) return;
        assertEquals(inputLen - logprobStartLen, meta.getJsonArray("input_top_logprobs").size(), what);
        assertEquals(outputLen, meta.getJsonArray("output_top_logprobs").size(), what);
        for (int i = 0; i < outputLen; i++) {
            JsonArray top = meta.getJsonArray("output_top_logprobs").getJsonArray(i);
            assertEquals(topLogprobsNum, top.size(), what);
            if (temperature == 0) {
                int rank = 0;  // SGLang's tie rule: with equal logprobs, a later rank may hold the chosen token
                while (!top.get(rank).equals(meta.getJsonArray("output_token_logprobs").get(i))) {
                    assertEquals(top.getJsonArray(rank).getJsonNumber(0), top.getJsonArray(rank + 1).getJsonNumber(0), "top-1 is the greedy token");
                    rank++;
                }
            }
        }
    }

    /**
     * SGLang's case with one deliberate difference: its top 5 of a trained model hold " Yes" and
     * " No"; the regex allows six first tokens in Qwen3's vocabulary (" ", " Y", " Ye", " Yes",
     * " N", " No": every prefix of an answer), which a random model ranks at random, so this asks
     * for the top 6, all of them, and checks that nothing the regex forbids is among them.
     */
    @Test
    void test_logprob_grammar() {
        List<String> allowed = List.of(" Yes", " No");
        List<String> prefixes = List.of(" ", " Y", " Ye", " Yes", " N", " No");
        Http.Reply r = Http.post("/generate", obj("text", "Question: Is Paris the Capital of France? Answer:",
                "sampling_params", obj("temperature", 1.0, "max_new_tokens", 1, "regex", "( Yes| No)"),
                "return_logprob", true, "top_logprobs_num", 6, "return_text_in_logprobs", true).toString());
        assertEquals(200, r.status(), r.body());
        JsonArray top = r.object().getJsonObject("meta_info").getJsonArray("output_top_logprobs").getJsonArray(0);
        Double[] logprobs = new Double[allowed.size()];
        for (int i = 0; i < top.size(); i++) {
            String text = top.getJsonArray(i).getString(2);
            assertTrue(prefixes.contains(text), "the regex allows no first token " + text + ": " + top);
            int idx = allowed.indexOf(text);
            if (idx >= 0) logprobs[idx] = top.getJsonArray(i).getJsonNumber(0).doubleValue();
        }
        for (int i = 0; i < allowed.size(); i++) assertTrue(logprobs[i] != null, allowed.get(i) + " is in the top 6: " + top);
    }

    /** Deliberate difference: SGLang runs the pickled processor; this server refuses code in a request. */
    @Test
    void test_custom_logit_processor() {
        Http.Reply r = Http.post("/generate", customLogitProcessorJson(5).toString());
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getJsonObject("error").getString("message").startsWith("custom_logit_processor"), r.body());
    }

    /** Mixed with and without a processor, concurrently: the refused ones disturb none of the others. */
    @Test
    void test_custom_logit_processor_batch_mixed() throws Exception {
        List<Integer> targets = new ArrayList<>();
        for (int i = 0; i < 32; i++) targets.add(i);
        for (int i = 0; i < 16; i++) targets.add(null);
        Collections.shuffle(targets, new Random(5));
        ExecutorService pool = Executors.newFixedThreadPool(targets.size());
        try {
            List<CompletableFuture<Http.Reply>> calls = new ArrayList<>();
            for (Integer t : targets) calls.add(CompletableFuture.supplyAsync(() -> Http.post("/generate", customLogitProcessorJson(t).toString()), pool));
            for (int i = 0; i < targets.size(); i++) {
                Http.Reply r = calls.get(i).get(120, TimeUnit.SECONDS);
                assertEquals(targets.get(i) == null ? 200 : 400, r.status(), r.body());
                if (targets.get(i) == null) assertFalse(r.object().getJsonObject("meta_info").getJsonArray("output_token_logprobs").isEmpty());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** SGLang's base_json, with its DeterministicLogitProcessor (a dill payload here made up: it is refused unread). */
    static JsonObject customLogitProcessorJson(Integer targetTokenId) {
        JsonObject sp = targetTokenId == null ? obj("temperature", 0.0)
                : obj("temperature", 0.0, "custom_params", obj("token_id", targetTokenId));
        return targetTokenId == null
                ? obj("text", "Question: Is Paris the Capital of France? Answer:", "sampling_params", sp, "return_logprob", true)
                : obj("text", "Question: Is Paris the Capital of France? Answer:", "sampling_params", sp, "return_logprob", true,
                        "custom_logit_processor", "{\"callable\": \"gASVKAAAAAAAAACMCGJ1aWx0aW5zlIwEZXZhbJSTlIwEMSsxlIWUUpQu\"}");
    }

    @Test
    void test_stateful_custom_logit_processor() {
        Assumptions.abort("skipped in SGLang too (a race in its overlap scheduler); and custom_logit_processor is refused here");
    }

    @Test
    void test_stateful_custom_logit_processor_batch_mixed() {
        Assumptions.abort("skipped in SGLang too (a race in its overlap scheduler); and custom_logit_processor is refused here");
    }

    @Test
    void test_cache_tokens() {
        for (int i = 0; i < 2; i++) assertEquals(200, Http.admin("/flush_cache", "").status());
        int page = Http.get("/get_server_info").object().getInt("page_size");
        // SGLang's lengths divided by ten (10000 and 11000 exceed our context); expected counts are
        // SGLang's, rounded down to whole pages
        assertEquals(0, sendAndCheckCachedTokens(100));
        assertEquals(pages(100, page), sendAndCheckCachedTokens(1000));
        assertEquals(pages(999, page), sendAndCheckCachedTokens(1000));
        assertEquals(pages(99, page), sendAndCheckCachedTokens(100));
        assertEquals(pages(1000, page), sendAndCheckCachedTokens(1100));
    }

    private static int pages(int tokens, int page) {
        return tokens / page * page;
    }

    private static int sendAndCheckCachedTokens(int n) {
        return Sglang.generate(obj("input_ids", IntStream.range(0, n).toArray(), "sampling_params", obj("max_new_tokens", 1)))
                .getJsonObject("meta_info").getInt("cached_tokens");
    }

    @Test
    void test_get_server_info() {
        JsonObject info = Http.get("/get_server_info").object();
        assertEquals(JsonValue.ValueType.NUMBER, info.get("max_total_num_tokens").getValueType());
        assertTrue(info.getJsonNumber("max_total_num_tokens").isIntegral());
        assertEquals(JsonValue.ValueType.STRING, info.get("version").getValueType());
    }

    // SGLang picks Llama-3.2's ids ("Paris" 60704, "rice" 23994). They are ids of the Qwen3
    // vocabulary too, so the forced id is kept; what SGLang reads as text is read here as ids.

    static final String FRANCE = "The capital of France is";
    static final int BIASED_TOKEN_ID = 60704;

    /** The ids SGLang reads back: the second element of each output_token_logprobs entry. */
    static List<Integer> sampledTokens(JsonObject res) {
        List<Integer> out = new ArrayList<>();
        for (JsonValue e : res.getJsonObject("meta_info").getJsonArray("output_token_logprobs")) out.add(e.asJsonArray().getInt(1));
        return out;
    }

    static JsonObject logitBiasRequest(String text, double temperature, int maxNewTokens, Integer biased, double bias) {
        JsonObject sp = biased == null ? obj("temperature", temperature, "max_new_tokens", maxNewTokens)
                : obj("temperature", temperature, "max_new_tokens", maxNewTokens, "logit_bias", obj(String.valueOf(biased), bias));
        return obj("text", text, "sampling_params", sp, "return_logprob", true);
    }

    @Test
    void test_logit_bias() {
        JsonObject res = Sglang.generate(logitBiasRequest(FRANCE, 1.0, 4, BIASED_TOKEN_ID, 100.0));
        List<Integer> sampled = sampledTokens(res);
        // SGLang's all() holds for an empty list too; the forced token cannot be a stop, so all four come
        assertEquals(4, sampled.size(), res.toString());
        assertTrue(sampled.stream().allMatch(t -> t == BIASED_TOKEN_ID), "Expected all tokens to be " + BIASED_TOKEN_ID + ", but got " + sampled);
    }

    @Test
    void test_forbidden_token() {
        String prompt = "Only output 'rice' exactly like this, in lowercase ONLY: rice";
        // SGLang's case: "rice" forbidden at temperature 1.0
        List<Integer> sampled = sampledTokens(Sglang.generate(logitBiasRequest(prompt, 1.0, 50, 23994, -100.0)));
        assertFalse(sampled.contains(23994), "Expected forbidden token 23994 not to be present, but it was found: " + sampled);
        // SGLang's prompt makes a trained model want "rice"; random weights want no such thing, so
        // the token this model does want (its greedy first pick, which greedy decoding of a random
        // model tends to repeat) is forbidden too: without the bias it is there, with it never
        List<Integer> greedy = sampledTokens(Sglang.generate(logitBiasRequest(prompt, 0, 50, null, 0)));
        int wanted = greedy.get(0);
        for (double temperature : new double[] {0, 1.0}) {
            List<Integer> banned = sampledTokens(Sglang.generate(logitBiasRequest(prompt, temperature, 50, wanted, -100.0)));
            assertFalse(banned.isEmpty());
            assertFalse(banned.contains(wanted), "forbidden " + wanted + " (greedy: " + greedy + ") appeared at temperature " + temperature + ": " + banned);
        }
    }

    @Test
    void test_logit_bias_isolation() throws Exception {
        // SGLang's case: a biased request, then an unbiased one
        List<Integer> biased = sampledTokens(Sglang.generate(logitBiasRequest(FRANCE, 1.0, 4, BIASED_TOKEN_ID, 100.0)));
        List<Integer> unbiased = sampledTokens(Sglang.generate(logitBiasRequest(FRANCE, 1.0, 4, null, 0)));
        assertEquals(4, biased.size());
        assertTrue(biased.stream().allMatch(t -> t == BIASED_TOKEN_ID), "Expected all tokens to be " + BIASED_TOKEN_ID + " in first response, but got " + biased);
        assertTrue(unbiased.stream().anyMatch(t -> t != BIASED_TOKEN_ID), "Expected some tokens different from " + BIASED_TOKEN_ID + " in second response, but got " + unbiased);

        // SGLang's docstring says "in batch", but it sends the two one after the other. Here they
        // share a batch: one call with a sampling_params per prompt. Greedy, so the unbiased row
        // must be exactly what it is beside an unbiased twin (the same batch shape, so the same
        // kernels). The prompt and output stay under one KV page (16 tokens), so neither call
        // reads the other's prefix cache.
        JsonObject plain = obj("temperature", 0, "max_new_tokens", 8);
        JsonObject forced = obj("temperature", 0, "max_new_tokens", 8, "logit_bias", obj(String.valueOf(BIASED_TOKEN_ID), 100.0));
        JsonArray reference = Sglang.ok("/generate", obj("text", arr(FRANCE, FRANCE), "sampling_params", arr(plain, plain), "return_logprob", true)).array();
        List<Integer> expected = sampledTokens(reference.getJsonObject(1));
        assertEquals(sampledTokens(reference.getJsonObject(0)), expected, "greedy twins in one batch agree");
        assertFalse(expected.contains(BIASED_TOKEN_ID), "the forced token must not be the model's own choice, or the check below proves nothing");
        JsonArray mixed = Sglang.ok("/generate", obj("text", arr(FRANCE, FRANCE), "sampling_params", arr(forced, plain), "return_logprob", true)).array();
        assertEquals(Collections.nCopies(8, BIASED_TOKEN_ID), sampledTokens(mixed.getJsonObject(0)));
        assertEquals(expected, sampledTokens(mixed.getJsonObject(1)), "the unbiased row of a mixed batch is untouched by its neighbour's bias");

        // and as separate calls running at once: the bias stays with its request
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<CompletableFuture<JsonObject>> calls = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                boolean withBias = i % 2 == 0;
                calls.add(CompletableFuture.supplyAsync(() -> Sglang.generate(obj("text", FRANCE, "sampling_params", withBias ? forced : plain,
                        "return_logprob", true)), pool));
            }
            for (int i = 0; i < calls.size(); i++) {
                List<Integer> got = sampledTokens(calls.get(i).get(120, TimeUnit.SECONDS));
                if (i % 2 == 0) assertEquals(Collections.nCopies(8, BIASED_TOKEN_ID), got, "call " + i);
                else assertFalse(got.contains(BIASED_TOKEN_ID), "call " + i + " without a bias got the biased token: " + got);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void test_get_server_info_concurrent() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(30);
        try {
            List<CompletableFuture<Http.Reply>> calls = new ArrayList<>();
            for (int i = 0; i < 4; i++) calls.add(CompletableFuture.supplyAsync(() -> Http.get("/get_server_info"), pool));
            for (CompletableFuture<Http.Reply> c : calls) {
                Http.Reply r = c.get(60, TimeUnit.SECONDS);
                assertEquals(200, r.status());
                r.object();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    // ---------------------------------------------------------------------------------------
    // TestTokenizeDetokenize

    @Test
    void test_tokenize_various_inputs() {
        String single = "Hello SGLang world! 123 😊, ಪರ್ವತದ ಮೇಲೆ ಹಿಮ.";
        JsonArray multi = arr("First sentence.", "Second, with 中文.");
        Object[][] scenarios = {{single, true}, {single, false}, {multi, true}, {multi, false}, {"", false}};
        for (Object[] c : scenarios) {
            JsonObject resp = Sglang.ok("/tokenize", obj("model", Sglang.modelPath(), "prompt", c[0], "add_special_tokens", c[1])).object();
            JsonArray tokens = resp.getJsonArray("tokens");
            if (tokens.isEmpty()) {
                assertEquals(0, resp.getInt("count"));
            } else if (tokens.get(0).getValueType() == JsonValue.ValueType.ARRAY) {
                int total = 0, expected = 0;
                for (JsonValue t : tokens) total += t.asJsonArray().size();
                for (JsonValue n : resp.getJsonArray("count")) expected += ((jakarta.json.JsonNumber) n).intValue();
                assertEquals(total, expected);
            } else {
                assertEquals(tokens.size(), resp.getInt("count"));
            }
        }
    }

    @Test
    void test_tokenize_invalid_type() {
        assertEquals(400, Http.post("/tokenize", obj("model", Sglang.modelPath(), "prompt", 12345).toString()).status());
    }

    @Test
    void test_detokenize_roundtrip() {
        String text = "Verify detokenization round trip. यह डिटोकेनाइजेशन है";
        JsonArray t0 = Sglang.ok("/tokenize", obj("prompt", text, "add_special_tokens", false)).object().getJsonArray("tokens");
        JsonArray t1 = Sglang.ok("/tokenize", obj("prompt", text, "add_special_tokens", true)).object().getJsonArray("tokens");
        Object[][] cases = {{t0, true, text}, {t1, true, text}, {t1, false, null}, {arr(), true, ""}};
        for (Object[] c : cases) {
            JsonObject resp = Sglang.ok("/detokenize", obj("model", Sglang.modelPath(), "tokens", c[0], "skip_special_tokens", c[1])).object();
            if (c[2] != null) assertEquals(c[2], resp.getString("text"));
            else assertEquals(JsonValue.ValueType.STRING, resp.get("text").getValueType());
        }
    }

    /** SGLang answers a negative id with a 500; bad input is a 400 here (docs/api.md). */
    @Test
    void test_detokenize_invalid_tokens() {
        assertEquals(400, Http.post("/detokenize", obj("model", Sglang.modelPath(), "tokens", arr("a", "b")).toString()).status());
        assertEquals(400, Http.post("/detokenize", obj("model", Sglang.modelPath(), "tokens", arr(1, -1, 2)).toString()).status());
    }
}
