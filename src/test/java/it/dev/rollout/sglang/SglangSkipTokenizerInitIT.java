package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.arr;
import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;

import it.dev.rollout.Http;
import jakarta.json.JsonObject;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code test/registered/tokenizer/test_skip_tokenizer_init.py} at commit
 * {@code 8c15c84760fb02477c6625b901d9a32498a96451}: token ids in, token ids out, with
 * {@code stop_token_ids} and logprobs, whole and streamed (veRL's way of calling).
 *
 * <p>SGLang runs this against a server started with {@code --skip-tokenizer-init
 * --stream-output}. Here every case runs against the build's one IT server, which has a tokenizer
 * and streams cumulatively (SGLang's default); without a {@code tokenizer.json} the answers simply
 * lack {@code text}. So the ids come from {@code /tokenize} (as transformers' tokenizer gives them
 * in SGLang's test), the EOS id is the model's {@code <|im_end|>} (SGLang hard-codes its model's
 * 119690), and the streamed ids are the last chunk's rather than the sum of deltas.
 * {@code TestSkipTokenizerInitVLM} needs an image model: skipped.
 */
class SglangSkipTokenizerInitIT {
    static int eosTokenId;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        int[] eos = Sglang.tokenize("<|im_end|>", false);
        assertEquals(1, eos.length, "<|im_end|> is one special token");
        eosTokenId = eos[0];
    }

    static int[] getInputIds(String promptText) {
        return Sglang.tokenize(promptText, true);
    }

    static JsonObject getRequestJson(int[] inputIds, int maxNewTokens, boolean returnLogprob, int topLogprobsNum, boolean stream, int n) {
        return obj("input_ids", inputIds,
                "sampling_params", obj("temperature", n == 1 ? 0 : 0.5, "max_new_tokens", maxNewTokens, "n", n, "stop_token_ids", arr(eosTokenId)),
                "stream", stream, "return_logprob", returnLogprob, "top_logprobs_num", topLogprobsNum, "logprob_start_len", 0);
    }

    void runDecode(int maxNewTokens, boolean returnLogprob, int topLogprobsNum, int n) {
        int[] inputIds = getInputIds("The capital of France is");
        JsonObject request = getRequestJson(inputIds, maxNewTokens, returnLogprob, topLogprobsNum, false, n);
        Http.Reply r = Sglang.ok("/generate", request);
        if (n == 1) {
            assertOneItem(r.object(), request, inputIds, maxNewTokens, returnLogprob);
        } else {
            assertEquals(n, r.array().size());
            for (int i = 0; i < n; i++) assertOneItem(r.array().getJsonObject(i), request, inputIds, maxNewTokens, returnLogprob);
        }
    }

    static void assertOneItem(JsonObject item, JsonObject request, int[] inputIds, int maxNewTokens, boolean returnLogprob) {
        JsonObject meta = item.getJsonObject("meta_info");
        JsonObject finish = meta.getJsonObject("finish_reason");
        if (finish.getString("type").equals("stop")) {
            assertEquals(eosTokenId, finish.getInt("matched"));
        } else if (finish.getString("type").equals("length")) {
            assertEquals(item.getJsonArray("output_ids").size(), meta.getInt("completion_tokens"));
            assertEquals(maxNewTokens, item.getJsonArray("output_ids").size());
            assertEquals(inputIds.length, meta.getInt("prompt_tokens"));
            if (returnLogprob) {
                int numInputLogprobs = inputIds.length - request.getInt("logprob_start_len");
                if (numInputLogprobs > inputIds.length) numInputLogprobs -= inputIds.length;
                assertEquals(numInputLogprobs, meta.getJsonArray("input_token_logprobs").size());
                assertEquals(maxNewTokens, meta.getJsonArray("output_token_logprobs").size());
            }
        } else {
            throw new AssertionError("unexpected finish: " + item);
        }
    }

    void runDecodeStream(boolean returnLogprob, int topLogprobsNum, int n) {
        int maxNewTokens = 32;
        int[] inputIds = getInputIds("The capital of France is");
        assertEquals(200, Http.admin("/flush_cache", "").status());
        JsonObject whole = Sglang.generate(getRequestJson(inputIds, maxNewTokens, returnLogprob, topLogprobsNum, false, n));
        assertEquals(200, Http.admin("/flush_cache", "").status());
        List<JsonObject> chunks = Sglang.stream("/generate", getRequestJson(inputIds, 32, returnLogprob, topLogprobsNum, true, n));
        // cumulative chunks (SGLang's default): the last holds every id; SGLang's --stream-output sums deltas instead
        assertEquals(whole.getJsonArray("output_ids"), chunks.get(chunks.size() - 1).getJsonArray("output_ids"));
    }

    @Test
    void test_simple_decode() {
        runDecode(32, false, 0, 1);
    }

    @Test
    void test_parallel_sample() {
        runDecode(32, false, 0, 3);
    }

    @Test
    void test_logprob() {
        for (int topLogprobsNum : new int[] {0, 3}) runDecode(32, true, topLogprobsNum, 1);
    }

    @Test
    void test_eos_behavior() {
        runDecode(256, false, 0, 1);
    }

    @Test
    void test_simple_decode_stream() {
        runDecodeStream(false, 0, 1);
    }

    /** TestSkipTokenizerInitVLM, every case. */
    @Test
    void vlm_cases() {
        Assumptions.abort("TestSkipTokenizerInitVLM needs a vision-language model and image_data; this server serves text-only models");
    }
}
