package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * veRL's calls to an SGLang server, as veRL (verl-project/verl at 1dda039b) makes them, against a
 * server without keys. Over HTTP veRL's {@code AsyncHttpServerAdapter} (sglang_rollout/
 * http_server_engine.py: POST with {@code json=payload or {}}, no Authorization, GET for
 * flush_cache) resumes memory, pushes weights and flushes the cache; its agent loop generates
 * in-process through SGLang's tokenizer manager, which a rollout-server plugin sends here as the
 * same {@code GenerateReqInput} on /generate. The list of call paths and their status is in
 * docs/api.md ("RL frameworks").
 *
 * <p>veRL pushes weights as ForkingPickler pickles of CUDA IPC handles
 * ({@code LocalSerializedTensor} per rank), which need a GPU on the same node and
 * {@code rollout.allow-pickle=true}: the GPU suite's CudaIpcTest sends that shape. Here the push
 * of the hybrid step is the same weights from disk, so that the calls around it run exactly.
 */
class VerlCallPathsIT {
    // veRL's pushes are pickles: the frameworks' server runs with them allowed
    @RegisterExtension
    static final FrameworkServer server = new FrameworkServer();

    /** veRL's in-process generate (async_sglang_server.py), as a plugin would post it. */
    static String generateBody(int[] inputIds, int maxNewTokens) {
        return "{\"rid\": \"" + java.util.UUID.randomUUID().toString().replace("-", "") + "\", \"input_ids\": " + Arrays.toString(inputIds)
                + ", \"sampling_params\": {\"temperature\": 1.0, \"top_p\": 1.0, \"top_k\": -1, \"repetition_penalty\": 1.0, "
                + "\"max_new_tokens\": " + maxNewTokens + ", \"ignore_eos\": true}, \"return_logprob\": true, \"image_data\": null}";
    }

    static int[] ids(JsonArray a) {
        return a.getValuesAs(JsonNumber.class).stream().mapToInt(JsonNumber::intValue).toArray();
    }

    /** What veRL reads back: output_ids, one [logprob, id, text] per output token, and the finish reason. */
    static JsonObject checkGeneration(Http.Reply r) {
        server.ok(r);
        JsonObject o = r.object();
        int n = o.getJsonArray("output_ids").size();
        JsonArray lps = o.getJsonObject("meta_info").getJsonArray("output_token_logprobs");
        assertEquals(n, lps.size(), "veRL keeps the logprobs only when there is one per output token");
        for (int i = 0; i < n; i++) assertEquals(o.getJsonArray("output_ids").getInt(i), lps.getJsonArray(i).getInt(1));
        return o;
    }

    /**
     * The hybrid step (engine_workers.update_weights; sglang_rollout.ServerAdapter): after the
     * release (in-process in veRL, over HTTP from a plugin), resume the weights, push, GET
     * /flush_cache until 200 (12 tries, 2 s apart), resume the KV cache; then generate.
     */
    @Test
    void hybridWeightSyncStep() throws Exception {
        server.ok(server.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\", \"weights\"]}"));
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"weights\"]}"));
        // in place of the IPC pickles (see the class comment): the same weights, from disk
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\"}"));
        server.poll(() -> server.get("/flush_cache"), 12, Duration.ofSeconds(2));
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}"));
        JsonObject g = checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 8)));
        assertEquals(8, g.getJsonArray("output_ids").size());
    }

    /**
     * Partial rollout across a weight sync (llm_server.py, async_sglang_server.py): abort is
     * pause_generation in abort mode; each aborted request comes back with its partial output and
     * is resubmitted a second later with what it has so far, while still paused; the KV cache is
     * released and resumed and the cache flushed around the sync; continue_generation resumes,
     * and the resubmitted request completes what remains.
     */
    @Test
    void partialRolloutAcrossAnAbortAndAKvCacheRelease() throws Exception {
        int total = 600;  // enough to be mid-way when the abort comes, few enough to finish in seconds on a CPU
        CompletableFuture<Http.Reply> inFlight = server.postAsync("/generate", generateBody(Checkpoints.PROMPT, total));
        server.await(s -> s.getInt("num_running_reqs") == 1, "the rollout runs");
        Thread.sleep(300);  // some tokens out
        server.ok(server.post("/pause_generation", "{\"mode\": \"abort\"}"));
        JsonObject partial = checkGeneration(inFlight.get(30, TimeUnit.SECONDS));
        assertEquals("abort", partial.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        int[] soFar = ids(partial.getJsonArray("output_ids"));
        assertTrue(soFar.length < total, "aborted before the end");

        int[] prompt = Arrays.copyOf(Checkpoints.PROMPT, Checkpoints.PROMPT.length + soFar.length);
        System.arraycopy(soFar, 0, prompt, Checkpoints.PROMPT.length, soFar.length);
        CompletableFuture<Http.Reply> resubmitted = server.postAsync("/generate", generateBody(prompt, total - soFar.length));
        server.await(s -> s.getInt("num_waiting_reqs") == 1, "the resubmitted request waits behind the pause");

        // SGLang holds requests that arrive during a pause before its scheduler, so the release and
        // the flush find it idle; here they wait holding no KV, which must not refuse either
        server.ok(server.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}"));
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}"));
        server.poll(() -> server.get("/flush_cache"), 12, Duration.ofSeconds(2));
        server.ok(server.post("/continue_generation", "{}"));

        JsonObject rest = checkGeneration(resubmitted.get(120, TimeUnit.SECONDS));
        assertEquals(total - soFar.length, rest.getJsonArray("output_ids").size(), "the rest of the budget, after the sync");
        assertEquals("length", rest.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
    }

    /**
     * main_generation_server.py: OpenAI chat completions through the openai client, the model
     * named by its path, a bearer token the server does not ask for; read as a ChatCompletion.
     */
    @Test
    void mainGenerationServerChatCompletion() {
        String body = Json.createObjectBuilder().add("model", server.modelPath)
                .add("messages", Json.createArrayBuilder().add(Json.createObjectBuilder().add("role", "user").add("content", "2 + 2 = ?")))
                .add("temperature", 1.0).add("top_p", 1.0).add("max_tokens", 8).build().toString();
        Http.Reply r = server.post("/v1/chat/completions", body, "Bearer token-abc123");
        server.ok(r);
        JsonObject c = r.object();
        assertEquals("chat.completion", c.getString("object"));
        assertEquals("assistant", c.getJsonArray("choices").getJsonObject(0).getJsonObject("message").getString("role"));
        assertTrue(c.getJsonObject("usage").getInt("completion_tokens") <= 8);
    }

    /**
     * veRL's delta checkpoint engine names a loader to import (SGLang's --custom-weight-loader),
     * in a pickle: code, refused by its name before the pickle is read.
     */
    /**
     * veRL pushes FSDP's full state_dict(), which for a tied model holds lm_head.weight (the
     * embedding itself): skipped, as SGLang's loaders skip it, by the check on the HTTP thread as
     * well as by the engine's. Found by the GPU replay of veRL's pickled push
     * (tools/gpu/framework_pushes.py), which the HTTP check refused with "unknown parameter
     * lm_head.weight"; here the same tensors go as safetensors, through the same check.
     */
    @Test
    void aTiedModelsStateDictWithItsLmHeadIsPushed() throws Exception {
        java.nio.file.Path dir = java.nio.file.Path.of(server.modelPath);
        byte[] bucket = Checkpoints.renamed(dir, java.util.Map.of("model.norm.weight", "model.norm.weight",
                "model.embed_tokens.weight", "lm_head.weight"));
        Http.Reply r = server.post("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                + java.util.Base64.getEncoder().encodeToString(bucket) + "\"], \"load_format\": null, \"flush_cache\": true}");
        server.ok(r);
        assertTrue(r.object().getBoolean("success"), r.body());
    }

    @Test
    void aCustomLoaderIsRefusedByName() {
        Http.Reply r = server.post("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\"gAR9lC4=\"], "
                + "\"load_format\": \"verl.workers.rollout.sglang_rollout.delta_loader.apply_delta\", \"flush_cache\": false}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("load_format"), r.body());
    }
}
