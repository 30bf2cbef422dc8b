package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
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
        assertEquals(JsonValue.FALSE, s.get("enable_memory_saver"), "rollout.enable-memory-saver's default, SGLang's too");
        assertEquals(JsonValue.TRUE, s.get("enable_streaming_session"), "streaming sessions need no flag here");
        JsonObject current = Http.get("/server_info").object();
        assertEquals(s.keySet(), current.keySet(), "/server_info is SGLang's current name of /get_server_info");
        assertEquals(s.getString("model_path"), current.getString("model_path"));

        assertEquals("default", Http.get("/get_weight_version").object().getString("weight_version"));
        JsonObject models = Http.get("/v1/models").object();
        assertEquals("list", models.getString("object"));
        assertEquals("rollout-default-qwen3-tiny", models.getJsonArray("data").getJsonObject(0).getString("id"));
    }

    /** SGLang's /v1/loads (v1_loads.py): the document's shape, and the query refused by name where it is wrong. */
    @Test
    void loads() throws Exception {
        JsonObject all = Http.get("/v1/loads").object();
        assertEquals(1, all.getInt("dp_rank_count"));
        assertTrue(all.getString("timestamp").endsWith("Z"), all.getString("timestamp"));
        JsonObject load = all.getJsonArray("loads").getJsonObject(0);
        for (String k : new String[] {"dp_rank", "num_running_reqs", "num_waiting_reqs", "num_total_reqs", "num_used_tokens",
                "max_total_num_tokens", "token_usage", "gen_throughput", "cache_hit_rate", "utilization", "max_running_requests"})
            assertTrue(load.containsKey(k), k + " in " + load);
        assertEquals(Http.get("/get_server_info").object().getJsonNumber("max_total_num_tokens").longValue(),
                load.getJsonNumber("max_total_num_tokens").longValue());
        for (String k : new String[] {"total_running_reqs", "total_waiting_reqs", "total_reqs", "avg_token_usage", "avg_throughput",
                "avg_utilization"})
            assertTrue(all.getJsonObject("aggregate").containsKey(k), k);
        assertEquals(200, Http.get("/v1/loads?include=core,queues&dp_rank=0").status());
        assertEquals(0, Http.get("/v1/loads?dp_rank=3").object().getJsonArray("loads").size(), "no rank 3 here");

        for (String[] bad : new String[][] {{"include=core,everything", "everything"}, {"dp_rank=zero", "dp_rank"}, {"format=xml", "format"}}) {
            Http.Reply r = Http.get("/v1/loads?" + bad[0]);
            assertEquals(400, r.status(), bad[0] + ": " + r.body());
            assertTrue(r.body().contains(bad[1]), r.body());
        }

        HttpResponse<String> text = Http.CLIENT.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/v1/loads?format=prometheus")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, text.statusCode());
        assertTrue(text.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"), text.headers().toString());
        assertTrue(text.body().contains("sglang_num_running_reqs{dp_rank=\"0\"} "), text.body());
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
