package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonObject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Every state-reading GET route answers 2xx in every state of the RL state machine: serving,
 * paused, draining, updating, released by each tag, and resumed but not yet pushed.
 */
@ExtendWith(RestoresServedWeights.class)
class RlStatesIT {
    static String modelPath;
    static String version;
    static int[] original;

    @BeforeAll
    static void setUp() {
        Http.awaitReady();
        modelPath = Http.get("/get_model_info").object().getString("model_path");
        version = Http.get("/get_weight_version").object().getString("weight_version");
        original = greedy();
    }

    @AfterEach
    void backToServing() {
        Http.admin("/continue_generation", "{}");
        Http.resumeReleased();
        if (Http.get("/rl/state").object().getInt("unpushed_parameters") > 0) reload();
    }

    static int[] greedy() {
        JsonObject out = Http.post("/generate", Checkpoints.greedyBody(8)).object();
        return out.getJsonArray("output_ids").stream().mapToInt(v -> ((jakarta.json.JsonNumber) v).intValue()).toArray();
    }

    static void reload() {
        Http.Reply r = Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + modelPath + "\", \"weight_version\": \"" + version + "\"}");
        assertEquals(200, r.status(), r.body());
    }

    /** A request that runs until aborted (by rid): 4,000 new tokens fit the default model's 4,096-token context. */
    static CompletableFuture<Http.Reply> longRequest(String rid) throws InterruptedException {
        CompletableFuture<Http.Reply> r = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [4, 5, 6], \"rid\": \"" + rid + "\", \"sampling_params\": {\"max_new_tokens\": 4000, \"ignore_eos\": true}}"));
        RlControlIT.awaitState("in_flight", 1);
        return r;
    }

    static void awaitNamedState(String state) throws InterruptedException {
        for (int i = 0; i < 500 && !Http.get("/rl/state").object().getString("state").equals(state); i++) Thread.sleep(10);
    }

    @Test
    void readinessChangesAreLoggedOncePerTransitionNotPerProbe() throws Exception {
        Path log = ServerProcessIT.IT_SERVER.resolve("logs/messages.log");
        long from = Files.size(log);
        assertEquals(200, Http.admin("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}").status());
        for (int i = 0; i < 5; i++) assertEquals(503, Http.get("/health/ready").status());
        assertEquals(200, Http.admin("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}").status());
        for (int i = 0; i < 5; i++) assertEquals(200, Http.get("/health/ready").status());
        String written = "";
        for (int i = 0; i < 50 && !written.contains("readiness is UP"); i++) {   // the log is written asynchronously
            Thread.sleep(100);
            byte[] all = Files.readAllBytes(log);
            written = new String(all, (int) from, all.length - (int) from, java.nio.charset.StandardCharsets.UTF_8);
        }
        assertEquals(1, count(written, "readiness is DOWN: memory is released"), written);
        assertEquals(1, count(written, "readiness is UP"), written);
        assertEquals(0, count(written, "CWMMH0052W"), "Liberty's per-probe warning is hidden:\n" + written);
    }

    static int count(String text, String what) {
        int n = 0;
        for (int at = text.indexOf(what); at >= 0; at = text.indexOf(what, at + 1)) n++;
        return n;
    }

    @Test
    void serving() {
        GetRoutes.checkAll(Http.BASE, "serving", true, true);
    }

    @Test
    void paused() throws Exception {
        assertEquals(200, Http.admin("/pause_generation", "{\"mode\": \"in_place\"}").status());
        GetRoutes.checkAll(Http.BASE, "paused", true, false);
    }

    @Test
    void draining() throws Exception {
        CompletableFuture<Http.Reply> running = longRequest("drain-long");
        CompletableFuture<Http.Reply> drain = CompletableFuture.supplyAsync(() -> Http.admin("/drain", "{\"timeout_s\": 60, \"mode\": \"abort\"}"));
        awaitNamedState("draining");
        GetRoutes.checkAll(Http.BASE, "draining", true, false);
        Http.post("/abort_request", "{\"rid\": \"drain-long\"}");
        assertEquals(200, drain.get(60, TimeUnit.SECONDS).status());
        assertEquals("abort", running.get(60, TimeUnit.SECONDS).object().getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
    }

    @Test
    void updating() throws Exception {
        CompletableFuture<Http.Reply> running = longRequest("update-long");
        // the same weights under the same version: the update waits for the running request, and changes nothing
        CompletableFuture<Http.Reply> update = CompletableFuture.supplyAsync(() -> Http.admin("/update_weights_from_disk",
                "{\"model_path\": \"" + modelPath + "\", \"weight_version\": \"" + version + "\"}"));
        awaitNamedState("updating");
        GetRoutes.checkAll(Http.BASE, "updating", true, false);
        Http.post("/abort_request", "{\"rid\": \"update-long\"}");
        assertEquals(200, update.get(60, TimeUnit.SECONDS).status());
        running.get(60, TimeUnit.SECONDS);
    }

    @Test
    void releasedByEachTagThenResumedUnpushed() throws Exception {
        for (String tag : new String[] {"kv_cache", "cuda_graph", "weights"}) {
            Http.Reply r = Http.admin("/release_memory_occupation", "{\"tags\": [\"" + tag + "\"]}");
            assertEquals(200, r.status(), r.body());
            // no host copy on this server: with the weights released there is nothing to read back
            GetRoutes.checkAll(Http.BASE, "released", !tag.equals("weights"), true);
            assertProbeRefusedAtOnce("with " + tag + " released");
            JsonObject resumed = Http.admin("/resume_memory_occupation", "{\"tags\": [\"" + tag + "\"]}").object();
            assertEquals(tag.equals("weights"), resumed.getBoolean("weights_must_be_pushed"), resumed.toString());
        }
        JsonObject state = Http.get("/rl/state").object();
        assertTrue(state.getInt("unpushed_parameters") > 0, state.toString());
        GetRoutes.checkAll(Http.BASE, "serving", true, true);   // zeroed weights, still readable; generation waits for the push
        assertEquals(503, Http.get("/health/ready").status(), "not ready until pushed");
        assertProbeRefusedAtOnce("with the weights unpushed");
        reload();
        assertArrayEquals(original, greedy());
        assertEquals(200, Http.get("/health_generate").status(), "pushed: the probe generates again");
    }

    /** Nothing can generate until an operator resumes or pushes: SGLang's generation probe says so at once, not after its 20 s. */
    static void assertProbeRefusedAtOnce(String when) {
        long t0 = System.nanoTime();
        assertEquals(503, Http.get("/health_generate").status(), when);
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L, when + ": answered after " + (System.nanoTime() - t0) / 1_000_000 + " ms");
    }
}
