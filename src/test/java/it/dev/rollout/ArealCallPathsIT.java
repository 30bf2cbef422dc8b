package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * AReaL's calls to an SGLang server, as AReaL (areal-project/AReaL at cbff54d6;
 * areal/engine/sglang_remote.py, areal/infra/remote_inf_engine.py) makes them, against a server
 * without keys: the startup health poll, generation with partial rollout, scoring for a reference
 * model, the pause/abort/release/resume sequence around a weight update from disk. aiohttp posts
 * {@code json=}, retries every error, and decodes the answer by its Content-Type. The list of
 * call paths and their status is in docs/api.md ("RL frameworks"). NCCL (xccl) updates are
 * issue #18; LoRA is not served (a request naming an adapter is refused).
 */
class ArealCallPathsIT {
    @RegisterExtension
    static final FrameworkServer server = new FrameworkServer();

    /** SGLangBackend.build_generation_request: image_data always present (null), top_k 1e8 for "all", stop_token_ids []. */
    static String generateBody(int[] inputIds, int maxNewTokens, boolean ignoreEos) {
        return "{\"input_ids\": " + Arrays.toString(inputIds) + ", \"image_data\": null, \"sampling_params\": {\"top_p\": 1.0, "
                + "\"top_k\": 100000000, \"max_new_tokens\": " + maxNewTokens + ", \"temperature\": 1.0, \"stop_token_ids\": [], "
                + "\"ignore_eos\": " + ignoreEos + ", \"skip_special_tokens\": true, \"frequency_penalty\": 0.0}, "
                + "\"return_logprob\": true, \"stream\": false}";
    }

    /** What AReaL reads: finish_reason type and message, output_token_logprobs as [logprob, id, _]. */
    static JsonObject checkGeneration(Http.Reply r) {
        server.ok(r);
        JsonObject o = r.object();
        JsonObject reason = o.getJsonObject("meta_info").getJsonObject("finish_reason");
        assertNotNull(reason.getString("type"));
        for (JsonValue lp : o.getJsonObject("meta_info").getJsonArray("output_token_logprobs")) {
            JsonArray t = (JsonArray) lp;
            assertTrue(t.get(0) instanceof JsonNumber && t.get(1) instanceof JsonNumber, t.toString());
        }
        return o;
    }

    static int[] outputIds(JsonObject o) {
        return o.getJsonArray("output_ids").getValuesAs(JsonNumber.class).stream().mapToInt(JsonNumber::intValue).toArray();
    }

    /** _wait_for_server: requests.request("GET", "/health", json={}) until 200. */
    @Test
    void healthWithAJsonBody() {
        server.ok(server.getWithBody("/health", "{}"));
    }

    /**
     * agenerate's partial rollout: while the stop reason is not stop/tool_calls/length it appends
     * the output to input_ids, lowers max_new_tokens and resubmits. Here an abort_all in the middle
     * ends the first segment; the second completes the budget.
     */
    @Test
    void partialRolloutResubmitsUntilTheBudgetIsSpent() throws Exception {
        int total = 600;  // enough to be mid-way when the abort comes, few enough to finish in seconds on a CPU
        CompletableFuture<Http.Reply> first = server.postAsync("/generate", generateBody(Checkpoints.PROMPT, total, true));
        server.await(s -> s.getInt("num_running_reqs") == 1, "the rollout runs");
        Thread.sleep(200);
        server.ok(server.post("/abort_request", "{\"abort_all\": true}"));
        JsonObject seg = checkGeneration(first.get(30, TimeUnit.SECONDS));
        assertEquals("abort", seg.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        int[] got = outputIds(seg);
        int[] next = Arrays.copyOf(Checkpoints.PROMPT, Checkpoints.PROMPT.length + got.length);
        System.arraycopy(got, 0, next, Checkpoints.PROMPT.length, got.length);
        JsonObject rest = checkGeneration(server.post("/generate", generateBody(next, total - got.length, true)));
        assertEquals("length", rest.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        assertEquals(total - got.length, outputIds(rest).length);
    }

    /** compute_logp: one greedy token, prompt scored from len - target_len - 1; AReaL takes float() of the last target_len. */
    @Test
    void scoringForAReferenceModel() {
        int[] ids = {9707, 11, 1879, 0, 576, 6722, 3283, 315, 42, 77};
        int target = 4;
        String body = "{\"input_ids\": " + Arrays.toString(ids) + ", \"sampling_params\": {\"max_new_tokens\": 1, \"temperature\": 0.0}, "
                + "\"return_logprob\": true, \"logprob_start_len\": " + (ids.length - target - 1) + ", \"top_logprobs_num\": 0, "
                + "\"stream\": false}";
        JsonArray input = checkGeneration(server.post("/generate", body)).getJsonObject("meta_info").getJsonArray("input_token_logprobs");
        assertTrue(input.size() >= target);
        for (int i = input.size() - target; i < input.size(); i++) {
            JsonArray t = input.getJsonArray(i);
            assertTrue(t.get(0) instanceof JsonNumber, "float() of every scored target: " + t);
            assertEquals(ids[ids.length - target + (i - (input.size() - target))], t.getInt(1));
        }
    }

    /**
     * The weight update from disk (rl_trainer / RemoteInfEngine): pause {} then pause
     * {"mode": "in_place"} on every server, abort_all, release {} and resume {} around the
     * trainer's save, update_weights_from_disk with abort_all_requests, continue {}.
     */
    @Test
    void pauseReleaseResumeAndUpdateFromDisk() throws Exception {
        server.ok(server.post("/pause_generation", "{}"));
        server.ok(server.post("/pause_generation", "{\"mode\": \"in_place\"}"));
        server.ok(server.post("/abort_request", "{\"abort_all\": true}"));
        server.ok(server.post("/release_memory_occupation", "{}"));
        server.ok(server.post("/resume_memory_occupation", "{}"));
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\", \"abort_all_requests\": true}"));
        server.ok(server.post("/continue_generation", "{}"));
        assertEquals(16, outputIds(checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 16, true)))).length);
    }

    /**
     * xccl updates (areal/engine/*_engine.py: _init_weight_update_from_distributed,
     * _update_bucket_weights_from_distributed): the init request sent as a future
     * ({master_address, master_port as a string in the older code, rank_offset, world_size,
     * backend, group_name "update_weight_group"}), rank 0's side of the group, the future's
     * answer; then pause {}, per bucket update_weights_from_distributed {names, dtypes, shapes,
     * group_name, abort_all_requests: true} (no flush_cache, no load_format) while rank 0
     * broadcasts each tensor, continue {}. AReaL asks for "nccl"; this CPU server takes the same
     * calls over "gloo". The weights sent are the served ones.
     */
    @Test
    void xcclUpdateOverAWeightUpdateGroup() throws Exception {
        java.util.Map<String, org.bytedeco.pytorch.Tensor> weights = WeightGroupsIT.parameters(java.nio.file.Path.of(server.modelPath));
        int port = WeightGroupsIT.freePort();
        CompletableFuture<Http.Reply> init = server.postAsync("/init_weights_update_group", "{\"master_address\": \"127.0.0.1\", "
                + "\"master_port\": \"" + port + "\", \"rank_offset\": 1, \"world_size\": 2, \"backend\": \"gloo\", "
                + "\"group_name\": \"update_weight_group\"}");
        try (dev.rollout.dist.WeightSyncGroup rank0 = dev.rollout.dist.WeightSyncGroup.join("127.0.0.1", port, 0, 2, "update_weight_group",
                dev.rollout.dist.C10d.Backend.GLOO, java.time.Duration.ofSeconds(60))) {
            server.ok(init.get(60, TimeUnit.SECONDS));
            server.ok(server.post("/pause_generation", "{}"));
            for (var bucket : WeightGroupsIT.halves(weights))
                server.ok(WeightGroupsIT.withBroadcasts(rank0, () -> server.post("/update_weights_from_distributed", "{"
                        + WeightGroupsIT.announce(bucket) + ", \"group_name\": \"update_weight_group\", \"abort_all_requests\": true}"), bucket));
            server.ok(server.post("/continue_generation", "{}"));
            server.ok(server.post("/destroy_weights_update_group", "{\"group_name\": \"update_weight_group\"}"));
        }
        assertEquals(16, outputIds(checkGeneration(server.post("/generate", generateBody(Checkpoints.PROMPT, 16, true)))).length);
    }

    /**
     * Colocated (R10; rl_trainer.py): the rollout is offloaded (release {}) after generating,
     * the trainer trains and saves, and update_weights pauses and pushes from disk before the
     * next onload (resume {}). The update lands in host memory while the weights are released
     * and is served from the resume on: the greedy output is the pushed checkpoint's.
     */
    @Test
    void colocatedUpdateFromDiskWhileReleased() throws Exception {
        java.nio.file.Path trained = Checkpoints.other(17);
        int[] reference = Checkpoints.greedy(Checkpoints.engine(trained), 12);
        int[] before = outputIds(server.ok(server.post("/generate", Checkpoints.greedyBody(12))).object());
        org.junit.jupiter.api.Assertions.assertFalse(Arrays.equals(before, reference), "the trained weights must generate differently");
        server.ok(server.post("/release_memory_occupation", "{}"));
        server.ok(server.post("/pause_generation", "{}"));
        server.ok(server.post("/pause_generation", "{\"mode\": \"in_place\"}"));
        JsonObject u = server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + trained + "\", \"abort_all_requests\": true}"))
                .object();
        assertTrue(u.getBoolean("success"), u.toString());
        server.ok(server.post("/continue_generation", "{}"));
        assertEquals(503, server.post("/generate", Checkpoints.greedyBody(4)).status(), "still released: nothing is generated");
        JsonObject resumed = server.ok(server.post("/resume_memory_occupation", "{}")).object();
        assertEquals(false, resumed.getBoolean("weights_must_be_pushed"), resumed.toString());
        assertArrayEquals(reference, outputIds(server.ok(server.post("/generate", Checkpoints.greedyBody(12))).object()),
                "serves the checkpoint loaded while released");
        server.ok(server.post("/update_weights_from_disk", "{\"model_path\": \"" + server.modelPath + "\"}"));  // the others' weights
    }

    /**
     * With LoRA, AReaL names the adapter on every request (lora_path "<name>-v<version>"); its
     * adapter loads are best effort, so a server that ignored the field would train on the base
     * model without an error. Refused by name instead.
     */
    @Test
    void aRequestNamingALoraAdapterIsRefused() {
        Http.Reply r = server.post("/generate", generateBody(Checkpoints.PROMPT, 4, false).replace("\"stream\": false",
                "\"stream\": false, \"lora_path\": \"actor-v3\""));
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("lora_path"), r.body());
    }
}
