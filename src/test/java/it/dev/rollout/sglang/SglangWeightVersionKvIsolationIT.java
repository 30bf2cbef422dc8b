package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.Generation;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.Sampling;
import dev.rollout.client.ServerProcess;
import it.dev.rollout.Http;
import it.dev.rollout.ServerProcessIT;
import jakarta.json.JsonObject;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code test/registered/rl/test_weight_version_kv_isolation.py} at commit
 * {@code d5d866da0d83e99530b26c61e8f375d94f1ceeac}: requests admitted under different weight
 * versions never share prefix-cache entries, and a request in flight across a pause(in_place) +
 * {@code update_weights_from_disk} + continue reports {@code weight_version_start} and
 * {@code weight_version_end} across it. SGLang needs {@code --enable-weight-version-kv-isolation}
 * for this; here every version change re-keys the prefix cache, always.
 *
 * <p>The long generation streams, and the commit comes once its first token is out (SGLang sleeps
 * 0.5 s into 4,000 tokens, which would not fit the default model's 4,096-token context beside the
 * ~1,400-token prompt; 256 tokens suffice when the commit waits for decode to start). The disk reload loads the served model's own
 * directory, so the weights do not change; the class sets the version back at the end.
 * {@code test_z_pause_watchdog_auto_continues} runs on a server of its own started with the
 * pause watchdog ({@code rollout.pause-timeout-seconds}, SGLang's {@code SGLANG_ENGINE_PAUSE_TIMEOUT})
 * at 2 s where SGLang sets 20 s, so that the shared server's pauses are not cut short.
 */
class SglangWeightVersionKvIsolationIT {
    static final String PROMPT = "You are a careful assistant. "
            + IntStream.range(0, 200).mapToObj(i -> "fact number " + i + " is interesting;").collect(Collectors.joining(" "));
    static String initialVersion;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        initialVersion = Sglang.currentVersion();
    }

    @AfterAll
    static void restore() {
        Http.admin("/continue_generation", "{}");
        assertEquals(200, Http.admin("/update_weight_version", obj("new_version", initialVersion, "abort_all_requests", false).toString()).status());
    }

    static JsonObject generate(String prompt, int maxNewTokens, boolean ignoreEos) {
        return Sglang.generate(obj("text", prompt, "sampling_params", obj("max_new_tokens", maxNewTokens, "temperature", 0, "ignore_eos", ignoreEos)))
                .getJsonObject("meta_info");
    }

    static void commit(String weightVersion) {
        assertEquals(200, Http.admin("/pause_generation", obj("mode", "in_place").toString()).status());
        try {
            Http.Reply r = Http.admin("/update_weights_from_disk", obj("model_path", Sglang.modelPath(), "flush_cache", false,
                    "weight_version", weightVersion).toString());
            assertEquals(200, r.status(), r.body());
            assertTrue(r.object().getBoolean("success"), r.body());
        } finally {
            assertEquals(200, Http.admin("/continue_generation", "{}").status());
        }
    }

    @Test
    void test_a_isolation_across_inplace_commit() throws Exception {
        String newVersion = "t" + System.nanoTime();
        JsonObject cold = generate(PROMPT, 8, false);
        String base = cold.getString("weight_version_start");
        assertTrue(cold.getInt("cached_tokens") < 50, cold.toString());
        assertEquals(base, cold.getString("weight_version_end"));
        JsonObject hit = generate(PROMPT, 8, false);
        assertTrue(hit.getInt("cached_tokens") > 1000, hit.toString());

        LiveStream inflight = new LiveStream(obj("text", PROMPT + " tell me a story.", "stream", true,
                "sampling_params", obj("max_new_tokens", 256, "temperature", 0, "ignore_eos", true)));
        inflight.awaitTokensOver(0);  // SGLang sleeps 0.5 s "to get into decode"; here: its first token is out
        commit(newVersion);
        JsonObject done = inflight.result().getJsonObject("meta_info");
        assertEquals(base, done.getString("weight_version_start"));
        assertEquals(newVersion, done.getString("weight_version_end"));
        assertTrue(List.of("length", "stop").contains(done.getJsonObject("finish_reason").getString("type")), done.toString());

        JsonObject post = generate(PROMPT, 8, false);
        assertTrue(post.getInt("cached_tokens") < 50, "KV of the old version is not matched again: " + post);
        assertEquals(newVersion, post.getString("weight_version_start"));
        JsonObject postHit = generate(PROMPT, 8, false);
        assertTrue(postHit.getInt("cached_tokens") > 1000, postHit.toString());
    }

    @Test
    void test_z_pause_watchdog_auto_continues() throws Exception {
        int seconds = 2;
        ServerProcess.Spec spec = ServerProcessIT.secondServer("watchdog", ServerProcessIT.freePort())
                .withEnvironment("ROLLOUT_PAUSE_TIMEOUT_SECONDS", Integer.toString(seconds));
        try (RolloutClient client = RolloutClient.launch(spec, RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY))) {
            client.pauseGeneration("in_place");
            assertEquals("paused", client.rlState());
            Thread.sleep((seconds + 1) * 1000L);  // no continue_generation: the watchdog must un-pause the engine
            Generation g = client.generate(new int[] {9707}, Sampling.greedy(4));
            assertEquals("length", g.finishReason());
            assertEquals("serving", client.rlState());
        }
    }
}
