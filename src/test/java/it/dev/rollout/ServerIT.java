package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonObject;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Information, health, cache and metrics endpoints. */
class ServerIT {
    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    @Test
    void modelAndServerInfo() {
        JsonObject m = Http.get("/get_model_info").object();
        assertTrue(m.getBoolean("is_generation"));
        assertEquals("default", m.getString("weight_version"));
        assertEquals("Qwen3ForCausalLM", m.getJsonArray("architectures").getString(0));
        assertTrue(m.getString("model_path").contains("rollout-default-qwen3-tiny-"), m.getString("model_path"));

        JsonObject s = Http.get("/get_server_info").object();
        assertEquals(4096, s.getInt("context_length"));
        assertTrue(s.getInt("max_total_num_tokens") > 0);
        assertEquals(1, s.getJsonArray("internal_states").size());

        assertEquals("default", Http.get("/get_weight_version").object().getString("weight_version"));
        JsonObject models = Http.get("/v1/models").object();
        assertEquals("list", models.getString("object"));
        assertEquals("rollout-default-qwen3-tiny", models.getJsonArray("data").getJsonObject(0).getString("id"));
    }

    @Test
    void healthProbes() {
        for (String p : new String[] {"/health", "/health/ready", "/health/live", "/health/started"}) {
            Http.Reply r = Http.get(p);
            assertEquals(200, r.status(), p + ": " + r.body());
            assertEquals("UP", r.object().getString("status"));
        }
        assertEquals(200, Http.get("/health_generate").status());
    }

    @Test
    void flushCacheWhenIdle() {
        Http.Reply get = Http.adminGet("/flush_cache");
        assertEquals(200, get.status(), get.body());
        assertEquals(200, Http.admin("/flush_cache", "").status());
    }

    @Test
    void prometheusMetricsWithoutLogin() {
        Http.post("/generate", "{\"input_ids\": [1, 2, 3], \"sampling_params\": {\"max_new_tokens\": 2}}");
        Http.Reply r = Http.get("/metrics");
        assertEquals(200, r.status());
        for (String name : new String[] {"sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage",
                "sglang:prompt_tokens_total", "sglang:generation_tokens_total", "sglang:cache_hit_rate",
                "sglang:time_to_first_token_seconds_bucket", "sglang:inter_token_latency_seconds_bucket",
                "sglang:e2e_request_latency_seconds_bucket", "rollout:max_step_batch_size", "rollout:step_model_seconds_sum",
                "rollout:step_host_seconds_sum"})
            assertTrue(r.body().contains(name), "missing metric " + name);
        java.util.regex.Matcher rss = java.util.regex.Pattern.compile("(?m)^rollout:resident_bytes\\{[^}]*} ([0-9.E+]+)").matcher(r.body());
        assertTrue(rss.find(), "rollout:resident_bytes is exported");
        assertTrue(Double.parseDouble(rss.group(1)) > 100e6, "a JVM with libtorch is resident in more than 100 MB: " + rss.group(1));
    }
}
