package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.ServerProcess;
import it.dev.rollout.Checkpoints;
import it.dev.rollout.RestoresServedWeights;
import it.dev.rollout.SharedServers;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * SGLang's {@code test/registered/rl/test_release_memory_occupation.py} at commit
 * 56741662b7974bbf293b3e83dd6d3b88e581fa4b (disabled in SGLang's CI at that commit; run here),
 * over HTTP. SGLang measures GPU memory after each step and expects a real model's text before
 * and after pushing its base model; here the server reports what each release freed
 * ({@code freed_bytes}), which is checked instead (this CPU server has no CUDA graphs, so that tag
 * frees nothing), and the text checks are greedy ids equal to those of an in-process engine on
 * the same weights: the served checkpoint before, another random one ({@link Checkpoints#other})
 * pushed as SGLang pushes its base model.
 */
@ExtendWith(RestoresServedWeights.class)
class ReleaseMemoryOccupationIT {
    static final int TOKENS = 8;
    static String origin, version;
    static Path other;
    static int[] expectBefore, expectAfter;

    @BeforeAll
    static void weights() throws Exception {
        origin = RlHttp.modelPath();
        version = RlHttp.get("/get_weight_version").ok().object().getString("weight_version");
        other = Checkpoints.other(777);
        expectBefore = Checkpoints.greedy(Checkpoints.engine(Path.of(origin)), TOKENS);
        expectAfter = Checkpoints.greedy(Checkpoints.engine(other), TOKENS);
    }

    @AfterEach
    void leaveServing() {
        RlHttp.leaveServing(origin, version);
    }

    static int[] generate(String base) {
        return RlHttp.ints(RlHttp.sendTo(base, "POST", "/generate", Checkpoints.greedyBody(TOKENS), Duration.ofSeconds(120)).ok().object()
                .get("output_ids"));
    }

    static long freed(JsonObject released, String tag) {
        return released.getJsonObject("freed_bytes").getJsonNumber(tag).longValue();
    }

    static List<String> released() {
        return RlHttp.get("/rl/state").ok().object().getJsonArray("released").getValuesAs(JsonString.class).stream()
                .map(JsonString::getString).toList();
    }

    /** engine.update_weights_from_tensor(hf_model_new.named_parameters()): every parameter of the other checkpoint. */
    static void pushOther() throws Exception {
        RlHttp.post("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\"" + Checkpoints.base64File(other.resolve("model.safetensors"))
                + "\"]}").ok();
    }

    @Test
    void releaseAndResumeOccupation() throws Exception {
        assertArrayEquals(expectBefore, generate(RlHttp.BASE), "generate (#1)");
        JsonObject rel = RlHttp.post("/release_memory_occupation", "{}").ok().object();
        assertTrue(freed(rel, "weights") > 0 && freed(rel, "kv_cache") > 0, "memory went down: " + rel);
        assertEquals(List.of("weights", "kv_cache", "cuda_graph"), released());

        JsonObject resumed = RlHttp.post("/resume_memory_occupation", "{}").ok().object();
        assertTrue(resumed.getBoolean("weights_must_be_pushed"), "no host copy: SGLang's engine also serves the pushed weights only");
        pushOther();
        assertArrayEquals(expectAfter, generate(RlHttp.BASE), "generate (#2)");
    }

    @Test
    void releaseAndResumeOccupationTensorParallel() {
        Assumptions.abort("SGLang's tp_size=2 round needs tensor-parallel serving (issue #18); tp_size=1 is the test above");
    }

    /**
     * With SGLang's enable_weights_cpu_backup (here rollout.weights-host-backup), the resume
     * restores the weights and the engine generates as before without a push. The shared
     * server runs without it, so this test runs on the second server that HostBackupIT uses.
     */
    @Test
    void releaseAndResumeOccupationWithWeightsCpuBackup() throws Exception {
        ServerProcess server = SharedServers.hostBackup();
        String base = "http://localhost:" + server.url().getPort();
        int[] before = generate(base);
        JsonObject rel = RlHttp.sendTo(base, "POST", "/release_memory_occupation", "{}", Duration.ofSeconds(120)).ok().object();
        assertTrue(freed(rel, "weights") > 0, rel.toString());
        assertTrue(rel.getBoolean("weights_kept"), rel.toString());
        JsonObject resumed = RlHttp.sendTo(base, "POST", "/resume_memory_occupation", "{}", Duration.ofSeconds(120)).ok().object();
        assertTrue(resumed.getBoolean("weights_restored"), resumed.toString());
        assertFalse(resumed.getBoolean("weights_must_be_pushed"));
        assertArrayEquals(before, generate(base), "generate post resume: as before the release");
    }

    @Test
    void multiStageReleaseAndResume() throws Exception {
        assertArrayEquals(expectBefore, generate(RlHttp.BASE), "generate (#1)");
        JsonObject kv = RlHttp.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}").ok().object();
        assertTrue(freed(kv, "kv_cache") > 0, kv.toString());
        JsonObject w = RlHttp.post("/release_memory_occupation", "{\"tags\": [\"weights\"]}").ok().object();
        assertTrue(freed(w, "weights") > 0, w.toString());
        JsonObject g = RlHttp.post("/release_memory_occupation", "{\"tags\": [\"cuda_graph\"]}").ok().object();
        assertEquals(0, freed(g, "cuda_graph"), "no CUDA graphs on the CPU: SGLang's drop in memory has nothing to show here");
        assertEquals(List.of("weights", "kv_cache", "cuda_graph"), released());

        RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"cuda_graph\"]}").ok();
        assertTrue(RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"weights\"]}").ok().object().getBoolean("weights_must_be_pushed"));
        assertEquals(List.of("kv_cache"), released());
        pushOther();   // into resumed weights, while the KV cache is still released: SGLang's order
        RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}").ok();
        assertEquals(List.of(), released());
        assertArrayEquals(expectAfter, generate(RlHttp.BASE), "generate (#2)");
    }

    @Test
    void multiStageReleaseAndResumeTensorParallel() {
        Assumptions.abort("SGLang's tp_size=2 round needs tensor-parallel serving (issue #18); tp_size=1 is the test above");
    }

    @Test
    void moeModelReleaseAndResume() {
        Assumptions.abort("needs a mixture-of-experts model with tp=ep=2: no MoE architecture is served (LlamaForCausalLM, Qwen2, Qwen3 "
                + "dense), and no tensor or expert parallelism (issue #18)");
    }

    @Test
    void hybridMambaModelReleaseAndResume() {
        Assumptions.abort("needs a hybrid Mamba model with tp=4: no state-space architecture is served, and no tensor parallelism (issue #18)");
    }
}
