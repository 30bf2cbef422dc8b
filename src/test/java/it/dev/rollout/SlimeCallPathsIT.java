package it.dev.rollout;

import dev.rollout.dist.C10d;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.dist.WeightSyncGroup;
import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * slime's calls to an SGLang server, as slime (THUDM/slime at 624b824a) makes them, against a
 * server without keys: its external-engine attach (the mode in which slime uses a server it did
 * not start), generation as sglang_rollout.py and the agent adapters post it, the end-of-rollout
 * abort, and the weight-sync steps of SGLangEngine (sglang_engine.py: {@code requests.post(url,
 * json=payload or {})}, {@code raise_for_status()}, no timeout, no key). The list of call paths
 * and their status is in docs/api.md ("RL frameworks").
 *
 * <p>slime's colocated push is a pickled flattened bucket of CUDA IPC handles (GPU only: the GPU
 * suite's CudaIpcTest); here that step pushes the same weights from disk, so that the calls
 * around it run exactly. NCCL sync (init_weights_update_group) is issue #18.
 */
class SlimeCallPathsIT {
    @RegisterExtension
    static final FrameworkServer server = new FrameworkServer();

    /** sglang_rollout.generate: the sampling params slime always sends (None values included). */
    static String generateBody(int[] inputIds, int maxNewTokens, String extraSampling) {
        return "{\"sampling_params\": {\"temperature\": 1.0, \"top_p\": 1.0, \"top_k\": -1, \"max_new_tokens\": " + maxNewTokens
                + ", \"stop\": null, \"stop_token_ids\": null, \"skip_special_tokens\": false, \"no_stop_trim\": true, "
                + "\"spaces_between_special_tokens\": false" + extraSampling + "}, \"return_logprob\": true, \"input_ids\": "
                + Arrays.toString(inputIds) + "}";
    }

    /** What slime reads of an answer (sglang_rollout.py): a KeyError on any of these fails the rollout. */
    static JsonObject checkGeneration(Http.Reply r) {
        server.ok(r);
        JsonObject o = r.object();
        assertTrue(o.containsKey("text"), "slime reads output[\"text\"]");
        JsonObject meta = o.getJsonObject("meta_info");
        JsonArray lps = meta.getJsonArray("output_token_logprobs");
        assertEquals(meta.getInt("completion_tokens"), lps.size());
        for (String k : new String[] {"weight_version", "prompt_tokens", "completion_tokens", "cached_tokens"})
            assertTrue(meta.containsKey(k), k);
        String type = meta.getJsonObject("finish_reason").getString("type");
        assertTrue(type.equals("length") || type.equals("stop") || type.equals("abort"), type);
        return o;
    }

    /** external.get_server_info: /server_info, and if that fails /get_server_info; requests' raise_for_status, then .json(). */
    static JsonObject slimeGetServerInfo() {
        for (String endpoint : new String[] {"/server_info", "/get_server_info"}) {
            Http.Reply r = server.get(endpoint);
            if (r.status() / 100 == 2) return r.object();
        }
        throw new AssertionError("slime: Failed to fetch SGLang server info");
    }

    /**
     * sglang_engine._compute_server_args for a regular engine of a default slime: the server args
     * slime sets, of which it checks on an external engine those outside
     * _EXTERNAL_ENGINE_SKIP_CHECK_FIELDS (model_path, host, port, the parallel sizes, ... are
     * skipped). By default that leaves enable_memory_saver = args.offload_rollout, false unless
     * colocated; --fp16 adds dtype = "float16", --use-rollout-routing-replay adds
     * enable_return_routed_experts = true.
     */
    static final Map<String, JsonValue> DEFAULT_SLIME_CHECKED = Map.of("enable_memory_saver", JsonValue.FALSE);

    /**
     * _init_external's _sanity_check_server_args: {@code assert actual.get(name) == expected.get(name)}
     * for every checked name, so an absent field (None) fails against false. Then external.py's
     * topology reads: sizes default to 1 when absent, the worker type comes from encoder_only and
     * disaggregation_mode.
     */
    @Test
    void externalEngineAttachReadsTheServerInfo() {
        assertEquals(server.get("/get_server_info").object().keySet(), server.get("/server_info").object().keySet(),
                "SGLang's /get_server_info answers as /server_info");
        JsonObject actual = slimeGetServerInfo();
        DEFAULT_SLIME_CHECKED.forEach((name, expected) ->
                assertEquals(expected, actual.get(name), name + ": slime's attach asserts it equals what slime set"));
        // --fp16 would check dtype == "float16": we report rollout.dtype verbatim, as SGLang reports --dtype ("auto" unless set)
        assertEquals("auto", actual.getString("dtype"));
        // --use-rollout-routing-replay would check enable_return_routed_experts == true: false, so such a run stops at attach
        assertEquals(JsonValue.FALSE, actual.get("enable_return_routed_experts"));

        for (String k : new String[] {"tp_size", "pp_size", "dp_size", "ep_size"})
            assertEquals(1, actual.getInt(k), k + " (slime reads it as int(... or 1))");
        assertEquals("null", actual.getString("disaggregation_mode"), "SGLang's value for a regular engine");
        assertEquals(JsonValue.FALSE, actual.get("encoder_only"));
        assertTrue(actual.containsKey("model_path"));
        server.ok(server.get("/health_generate"));  // the health monitor (S22)
    }

    @Test
    void rolloutGenerate() {
        JsonObject g = checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 16, "")));
        assertEquals(16, g.getJsonObject("meta_info").getInt("completion_tokens"));
    }

    /**
     * With --rollout-top-p below 1, slime asks its patched SGLang for the top-p token sets
     * (custom_params.return_top_p_token_ids) and its loss raises without them: refused by name
     * rather than ignored, so that the run stops at the first request instead of at the loss.
     */
    @Test
    void topPReplayIsRefusedByName() {
        Http.Reply r = server.post("/generate", generateBody(Checkpoints.PROMPT, 4,
                ", \"custom_params\": {\"return_top_p_token_ids\": true}").replace("\"top_p\": 1.0", "\"top_p\": 0.9"));
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("return_top_p_token_ids"), r.body());
    }

    /** Agent adapters (agent/adapters/common.py): a rid of their own; on a client cancel, abort_request {"rid"} (not an admin call). */
    @Test
    void agentAdapterGenerateAndCancel() throws Exception {
        String rid = java.util.UUID.randomUUID().toString().replace("-", "");
        String body = "{\"rid\": \"" + rid + "\", \"input_ids\": " + Arrays.toString(Checkpoints.PROMPT) + ", \"sampling_params\": "
                + "{\"skip_special_tokens\": false, \"spaces_between_special_tokens\": false, \"no_stop_trim\": true, "
                + "\"max_new_tokens\": 3000, \"temperature\": 1.0, \"ignore_eos\": true}, \"return_logprob\": true}";
        CompletableFuture<Http.Reply> call = server.postAsync("/generate", body);
        server.await(s -> s.getInt("num_running_reqs") == 1, "the agent's turn runs");
        server.ok(server.post("/abort_request", "{\"rid\": \"" + rid + "\"}"));
        JsonObject o = checkGeneration(call.get(30, TimeUnit.SECONDS));
        assertEquals("abort", o.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
    }

    /**
     * server_control.num_requests_from_load: a list sums its items; {"loads": ...} recurses; the
     * first int of num_reqs, num_total_reqs, total_reqs; else running + waiting (or their total_
     * names), each counted only if it is an int.
     */
    static int numRequestsFromLoad(JsonValue load) {
        if (load instanceof JsonArray a) return a.stream().mapToInt(SlimeCallPathsIT::numRequestsFromLoad).sum();
        if (!(load instanceof JsonObject o)) return 0;
        if (o.containsKey("loads")) return numRequestsFromLoad(o.get("loads"));
        for (String k : new String[] {"num_reqs", "num_total_reqs", "total_reqs"})
            if (isInt(o.get(k))) return ((JsonNumber) o.get(k)).intValue();
        JsonValue running = o.containsKey("num_running_reqs") ? o.get("num_running_reqs") : o.get("total_running_reqs");
        JsonValue waiting = o.containsKey("num_waiting_reqs") ? o.get("num_waiting_reqs") : o.get("total_waiting_reqs");
        return (isInt(running) ? ((JsonNumber) running).intValue() : 0) + (isInt(waiting) ? ((JsonNumber) waiting).intValue() : 0);
    }

    private static boolean isInt(JsonValue v) {
        return v instanceof JsonNumber n && n.isIntegral();
    }

    /** server_control._get_server_num_requests: {@code get(f"{url}/v1/loads?include=core")}, raising on an error status. */
    static int slimeServerNumRequests() {
        Http.Reply r = server.get("/v1/loads?include=core");
        assertEquals(200, r.status(), "slime would log a warning and stop aborting: " + r.body());
        return numRequestsFromLoad(r.object());
    }

    /**
     * End of rollout (server_control.abort_server_until_idle): abort_request {"abort_all": true},
     * then /v1/loads?include=core; while requests remain, again after 3 s. The loads must be real:
     * while the two rollouts run, the core numbers show them and the KV they hold.
     */
    @Test
    void endOfRolloutAbortAllUntilTheLoadsAreZero() throws Exception {
        CompletableFuture<Http.Reply> a = server.postAsync("/generate", generateBody(Checkpoints.PROMPT, 3000, ", \"ignore_eos\": true"));
        CompletableFuture<Http.Reply> b = server.postAsync("/generate", generateBody(Checkpoints.PROMPT, 3000, ", \"ignore_eos\": true"));
        server.await(s -> s.getInt("num_running_reqs") == 2, "two rollouts run");
        JsonObject load = null;
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {  // gen_throughput is the last whole second's: wait for one of decoding
            load = server.get("/v1/loads?include=core").object().getJsonArray("loads").getJsonObject(0);
            if (load.getJsonNumber("gen_throughput").doubleValue() > 0) break;
            Thread.sleep(200);
        }
        assertEquals(2, load.getInt("num_running_reqs"), load.toString());
        assertEquals(0, load.getInt("num_waiting_reqs"), load.toString());
        assertEquals(2, slimeServerNumRequests(), "what slime counts while they run");
        assertTrue(load.getJsonNumber("gen_throughput").doubleValue() > 0, "tokens were generated in the last second: " + load);
        assertTrue(load.getJsonNumber("num_used_tokens").longValue() > 0 && load.getJsonNumber("token_usage").doubleValue() > 0,
                "the rollouts hold KV: " + load);

        int attempts = 0, left;
        do {  // slime loops without end; here at most 10 rounds (30 s)
            assertTrue(++attempts <= 10, "still " + slimeServerNumRequests() + " requests after 10 abort rounds");
            server.post("/abort_request", "{\"abort_all\": true}");  // slime only logs a failed abort
            left = slimeServerNumRequests();
            if (left > 0) Thread.sleep(3000);
        } while (left > 0);
        for (CompletableFuture<Http.Reply> f : List.of(a, b))
            assertEquals("abort", checkGeneration(f.get(30, TimeUnit.SECONDS)).getJsonObject("meta_info")
                    .getJsonObject("finish_reason").getString("type"));
        JsonObject idle = server.get("/v1/loads?include=core").object();
        assertEquals(0, idle.getJsonObject("aggregate").getInt("total_reqs"), idle.toString());
    }

    /**
     * The colocated step (train.py with --colocate): offload = flush_cache polled (60 tries, 1 s
     * apart) then release {}; onload_weights = resume {"tags": ["weights"]}; update_weights =
     * pause {}, flush, the push, continue {}; onload_kv = resume {"tags": ["kv_cache", "cuda_graph"]}.
     */
    @Test
    void colocatedOffloadSyncOnload() throws Exception {
        server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
        server.ok(server.post("/release_memory_occupation", "{}"));
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"weights\"]}"));
        server.ok(server.post("/pause_generation", "{}"));
        server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
        // in place of the pickled flattened bucket (see the class comment): the same weights, from disk
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\", \"weight_version\": \"1\"}"));
        server.ok(server.post("/continue_generation", "{}"));
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\", \"cuda_graph\"]}"));
        JsonObject g = checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 8, "")));
        assertEquals("1", g.getJsonObject("meta_info").getString("weight_version"));
    }

    /**
     * The distributed transport (update_weight_from_distributed.py, S16-S18): the init request
     * first, then the trainer's side of the group (rank 0, group "slime-pp_0"), then its answer;
     * per sync pause {}, flush polled, one update_weights_from_distributed per bucket with
     * {names, dtypes, shapes, group_name, flush_cache: false, weight_version} while rank 0
     * broadcasts each tensor, continue {}. slime asks for "nccl"; this CPU server takes the same
     * calls over "gloo" (the only field changed). The weights sent are the served ones, so the
     * other cases see the same model.
     */
    @Test
    void distributedTransportStep() throws Exception {
        Map<String, Tensor> weights = WeightGroupsIT.parameters(Path.of(server.modelPath));
        int port = WeightGroupsIT.freePort();
        CompletableFuture<Http.Reply> init = server.postAsync("/init_weights_update_group", "{\"master_address\": \"127.0.0.1\", "
                + "\"master_port\": " + port + ", \"rank_offset\": 1, \"world_size\": 2, \"group_name\": \"slime-pp_0\", \"backend\": \"gloo\"}");
        try (WeightSyncGroup rank0 = WeightSyncGroup.join("127.0.0.1", port, 0, 2, "slime-pp_0", C10d.Backend.GLOO,
                Duration.ofSeconds(60))) {
            server.ok(init.get(60, TimeUnit.SECONDS));
            server.ok(server.post("/pause_generation", "{}"));
            server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
            for (Map<String, Tensor> bucket : WeightGroupsIT.halves(weights))
                server.ok(WeightGroupsIT.withBroadcasts(rank0, () -> server.post("/update_weights_from_distributed", "{"
                        + WeightGroupsIT.announce(bucket) + ", \"group_name\": \"slime-pp_0\", \"flush_cache\": false, \"weight_version\": \"11\"}"),
                        bucket));
            server.ok(server.post("/continue_generation", "{}"));
            // on reconnect, or at the end: destroy on the engine, then the trainer's side
            server.ok(server.post("/destroy_weights_update_group", "{\"group_name\": \"slime-pp_0\"}"));
        }
        assertEquals("11", checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 4, "")))
                .getJsonObject("meta_info").getString("weight_version"));
    }

    /**
     * --update-weight-transport disk (update_weight_from_disk): pause {}, flush polled, update
     * from disk with a version, the CI check GET /get_weight_version, continue {}.
     */
    @Test
    void diskTransportStep() throws Exception {
        server.ok(server.post("/pause_generation", "{}"));
        server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\", \"weight_version\": \"7\"}"));
        assertEquals("7", server.get("/get_weight_version").object().getString("weight_version"));
        server.ok(server.post("/continue_generation", "{}"));
        assertEquals("7", checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 4, "")))
                .getJsonObject("meta_info").getString("weight_version"));
    }

    /**
     * --check-weight-update-equal with --colocate (S21; SGLang's WeightChecker): at start-up
     * slime snapshots the weights and fills them with noise (create_rollout_manager), offloads,
     * then onload_weights, update_weights (pause, flush, the push, continue) and compare, then
     * onload_kv. In between, the noise is never served: /generate answers 503 until the push
     * (SGLang would serve it), and a compare before the push fails, naming the parameters.
     */
    @Test
    void checkWeightUpdateEqualAtStartUp() throws Exception {
        JsonObject snap = server.ok(server.post("/weights_checker", "{\"action\": \"snapshot\"}")).object();
        assertTrue(snap.getBoolean("success"));
        assertTrue(snap.getJsonNumber("snapshot_bytes").longValue() > 0, snap.toString());
        server.ok(server.post("/weights_checker", "{\"action\": \"reset_tensors\"}"));
        Http.Reply held = server.post("/generate", generateBody(Checkpoints.PROMPT, 4, ""));
        assertEquals(503, held.status(), "noise is never served: " + held.body());
        Http.Reply noisy = server.post("/weights_checker", "{\"action\": \"compare\"}");
        assertEquals(400, noisy.status(), noisy.body());
        assertEquals(false, noisy.object().getBoolean("success"));
        assertTrue(noisy.object().getString("message").startsWith("check tensor equality failed")
                && noisy.object().getString("message").contains("name=model.embed_tokens.weight"), noisy.body());
        server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
        server.ok(server.post("/release_memory_occupation", "{}"));
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"weights\"]}"));
        server.ok(server.post("/pause_generation", "{}"));
        server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
        // in place of the pickled flattened bucket (see the class comment): the snapshot's weights, from disk
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\", \"weight_version\": \"1\"}"));
        server.ok(server.post("/continue_generation", "{}"));
        JsonObject same = server.ok(server.post("/weights_checker", "{\"action\": \"compare\"}")).object();
        assertTrue(same.getBoolean("success"), same.toString());
        server.ok(server.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\", \"cuda_graph\"]}"));
        assertEquals("1", checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 4, "")))
                .getJsonObject("meta_info").getString("weight_version"));
    }

    /**
     * Routes of slime's patched SGLang (S20, S19). post_process_weights, which slime sends around
     * a push when its checkpoint is compressed-tensors quantized (restore before, post-process
     * after), has nothing to convert on a dense model: success, as SGLang on such a model.
     * pull_weights (--update-weight-local-checkpoint-dir, --update-weight-mode delta) is a file
     * sync of a published version stream: refused by name, pointing at update_weights_from_disk.
     */
    @Test
    void slimePatchedWeightRoutes() {
        for (String body : new String[] {"{\"restore_weights_before_load\": true, \"post_process_quantization\": false}",
                "{\"restore_weights_before_load\": false, \"post_process_quantization\": true}"}) {
            JsonObject o = server.ok(server.post("/post_process_weights", body)).object();
            assertTrue(o.getBoolean("success") && o.getString("message").contains("not quantized"), o.toString());
        }
        Http.Reply notBool = server.post("/post_process_weights", "{\"post_process_quantization\": \"yes\"}");
        assertEquals(400, notBool.status(), notBool.body());
        assertTrue(notBool.body().contains("post_process_quantization"), notBool.body());

        Http.Reply pull = server.post("/pull_weights", "{\"local_checkpoint_dir\": \"/tmp/slime-local-ckpt\", "
                + "\"source_dir\": \"/tmp/slime-published\", \"target_version\": 3}");
        assertEquals(400, pull.status(), pull.body());
        assertEquals(false, pull.object().getBoolean("success"), "slime's .json() reads SGLang's {success, message}");
        assertTrue(pull.object().getString("message").contains("pull_weights")
                && pull.object().getString("message").contains("update_weights_from_disk"), pull.body());
        assertTrue(java.nio.file.Files.notExists(java.nio.file.Path.of("/tmp/slime-local-ckpt")), "nothing written");
        Http.Reply badVersion = server.post("/pull_weights", "{\"local_checkpoint_dir\": \"/tmp/a\", \"source_dir\": \"/tmp/b\", "
                + "\"target_version\": \"3\"}");
        assertEquals(400, badVersion.status());
        assertTrue(badVersion.body().contains("target_version"), badVersion.body());
        checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 4, "")));
    }

    /**
     * Fully-async rollout (fully_async_rollout.py) keeps posting /generate during the sync: the
     * requests that arrive while paused must not keep flush_cache from answering 200 (slime gives
     * up with a TimeoutError after 60 tries), and they run once generation continues.
     */
    @Test
    void fullyAsyncRequestsDuringAPauseDoNotBlockTheFlush() throws Exception {
        server.ok(server.post("/pause_generation", "{}"));
        CompletableFuture<Http.Reply> held = server.postAsync("/generate", generateBody(Checkpoints.PROMPT, 8, ""));
        server.await(s -> s.getInt("num_waiting_reqs") == 1, "the request waits behind the pause");
        server.poll(() -> server.get("/flush_cache"), 60, Duration.ofSeconds(1));
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\", \"weight_version\": \"9\"}"));
        server.ok(server.post("/continue_generation", "{}"));
        JsonObject g = checkGeneration(held.get(30, TimeUnit.SECONDS));
        assertEquals("9", g.getJsonObject("meta_info").getString("weight_version"), "it ran on the new weights");
    }
}
