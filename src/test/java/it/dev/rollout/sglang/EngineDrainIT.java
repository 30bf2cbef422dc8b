package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.RestoresServedWeights;
import jakarta.json.JsonObject;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * SGLang's {@code test/registered/rl/test_engine_drain.py} at commit
 * c41fd8d63e001c55842047681a528afb242364d5: {@code POST /drain {"timeout": T}} answers 200
 * {@code {"success", "remaining_requests"}} once nothing is in flight or at the deadline, and
 * leaves the server serving. Then what we add behind that shape (mode, timeout_s).
 */
@ExtendWith(RestoresServedWeights.class)
class EngineDrainIT {
    static String path, version;

    @BeforeAll
    static void served() {
        path = RlHttp.modelPath();
        version = RlHttp.get("/get_weight_version").ok().object().getString("weight_version");
    }

    @AfterEach
    void leaveServing() {
        RlHttp.leaveServing(path, version);
    }

    /** SGLang's {@code _drain}: a 200 whatever the outcome, the client's timeout beyond the drain's. */
    static JsonObject drain(Double timeout) {
        RlHttp.Reply r = RlHttp.send("POST", "/drain", "{\"timeout\": " + (timeout == null ? "null" : timeout) + "}",
                Duration.ofSeconds(timeout == null ? 60 : (long) (timeout + 30)));
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    @Test
    void drainIdleReturnsImmediately() {
        long t0 = System.nanoTime();
        JsonObject body = drain(5.0);
        double elapsed = (System.nanoTime() - t0) / 1e9;
        assertTrue(body.getBoolean("success"));
        assertEquals(0, body.getInt("remaining_requests"));
        assertTrue(elapsed < 1.0, elapsed + " s");
    }

    /**
     * SGLang sends 64 new tokens and sleeps 0.5 s for the request to start; the default model
     * on a CPU can finish 64 tokens in that time, so the request is longer (500 tokens, ignore_eos:
     * seconds on a loaded CI machine) and the test waits until it runs instead of sleeping.
     */
    @Test
    void drainWithInflightRequestTimesOut() throws Exception {
        CompletableFuture<RlHttp.Reply> generate = CompletableFuture.supplyAsync(() -> RlHttp.post("/generate",
                "{\"text\": \"Tell me a long story about a robot.\", \"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": 500, "
                        + "\"ignore_eos\": true}}"));
        RlHttp.awaitRunning(1);
        JsonObject body = drain(0.2);
        assertFalse(body.getBoolean("success"));
        assertTrue(body.getInt("remaining_requests") > 0, body.toString());
        assertEquals("serving", RlHttp.get("/rl/state").ok().object().getString("state"), "the drain paused nothing");

        RlHttp.Reply finished = generate.get(120, TimeUnit.SECONDS);
        body = drain(5.0);   // after the request finished, the drain reports idle
        assertTrue(body.getBoolean("success"));
        assertEquals(0, body.getInt("remaining_requests"));
        assertEquals(200, finished.status(), finished.body());
    }

    @Test
    void drainNoTimeoutCompletesAfterInflightFinishes() throws Exception {
        CompletableFuture<RlHttp.Reply> generate = CompletableFuture.supplyAsync(() -> RlHttp.post("/generate",
                "{\"text\": \"Hello\", \"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": 8}}"));
        Thread.sleep(200);
        JsonObject body = drain(null);
        generate.get(60, TimeUnit.SECONDS);
        assertTrue(body.getBoolean("success"));
        assertEquals(0, body.getInt("remaining_requests"));
    }

    // ---- ours, behind SGLang's shape --------------------------------------------------------

    /** mode "abort": new requests wait, what still runs at the deadline ends with its partial output, the engine stays paused. */
    @Test
    void oursAbortModeCutsAtTheDeadlineAndLeavesTheEnginePaused() throws Exception {
        CompletableFuture<RlHttp.Reply> generate = CompletableFuture.supplyAsync(() -> RlHttp.post("/generate",
                "{\"input_ids\": [4, 5, 6], \"rid\": \"drain-cut\", \"sampling_params\": {\"max_new_tokens\": 3000, \"ignore_eos\": true}}"));
        RlHttp.awaitRunning(1);
        JsonObject body = RlHttp.post("/drain", "{\"timeout\": 0.3, \"mode\": \"abort\"}").ok().object();
        assertTrue(body.getBoolean("success"), "aborted: nothing left in flight " + body);
        assertEquals(0, body.getInt("remaining_requests"));
        assertEquals("abort", body.getString("mode"));
        assertTrue(body.getBoolean("paused"));
        assertEquals("drain-cut", body.getJsonArray("cut").getJsonObject(0).getString("rid"));
        JsonObject aborted = generate.get(60, TimeUnit.SECONDS).ok().object();
        assertEquals("abort", RlHttp.finishType(aborted));
        assertEquals(body.getJsonArray("cut").getJsonObject(0).getJsonArray("output_ids").size(), aborted.getJsonArray("output_ids").size(),
                "the partial output is the one the caller got");
        assertEquals("paused", RlHttp.get("/rl/state").ok().object().getString("state"));
    }

    @Test
    void oursTimeoutSIsTimeoutAndTheyCannotBothBeGiven() {
        JsonObject body = RlHttp.post("/drain", "{\"timeout_s\": 1}").ok().object();
        assertTrue(body.getBoolean("success"));
        assertEquals("wait", body.getString("mode"));
        assertFalse(body.getBoolean("paused"));
        RlHttp.Reply both = RlHttp.post("/drain", "{\"timeout\": 1, \"timeout_s\": 1}");
        assertEquals(400, both.status(), both.body());
        assertTrue(both.body().contains("not both"), both.body());
        assertEquals(400, RlHttp.post("/drain", "{\"timeout\": -1}").status(), "a negative deadline is refused, not read as none");
        assertEquals(400, RlHttp.post("/drain", "{\"mode\": \"sideways\"}").status());
    }
}
