package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonStructure;
import jakarta.json.JsonValue;
import java.io.StringReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/**
 * The HTTP calls of SGLang's RL tests, as Python's {@code requests} makes them, against the server
 * the ITs share: JSON bodies (also on GET, as {@code requests.get(url, json=...)} sends them), the
 * admin key on every call (SGLang's tests run without keys; this server guards its control routes).
 */
final class RlHttp {
    static final String BASE = "http://localhost:" + System.getProperty("http.port", "9080");
    static final String ADMIN_KEY = System.getProperty("it.admin.key", "it-admin-key");
    private static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    private RlHttp() {}

    record Reply(int status, String body) {
        JsonStructure json() {
            try (var r = Json.createReader(new StringReader(body))) {
                return r.read();
            } catch (RuntimeException e) {
                throw new AssertionError("not JSON (HTTP " + status + "): " + body, e);
            }
        }

        JsonObject object() {
            return (JsonObject) json();
        }

        JsonArray array() {
            return (JsonArray) json();
        }

        Reply ok() {
            assertEquals(200, status, body);
            return this;
        }
    }

    static Reply post(String path, String json) {
        return send("POST", path, json, Duration.ofSeconds(300));
    }

    /** A GET with a JSON body, as {@code requests.get(url, json=...)} sends it. */
    static Reply get(String path, String json) {
        return send("GET", path, json, Duration.ofSeconds(120));
    }

    static Reply get(String path) {
        return send("GET", path, null, Duration.ofSeconds(120));
    }

    static Reply send(String method, String path, String json, Duration timeout) {
        return sendTo(BASE, method, path, json, timeout);
    }

    /** To another server than the ITs' (one a test started). */
    static Reply sendTo(String base, String method, String path, String json, Duration timeout) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(timeout)
                .header("Authorization", "Bearer " + ADMIN_KEY)
                .method(method, json == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(json));
        if (json != null) b.header("Content-Type", "application/json");
        try {
            HttpResponse<String> r = CLIENT.send(b.build(), HttpResponse.BodyHandlers.ofString());
            return new Reply(r.statusCode(), r.body());
        } catch (Exception e) {
            fail(method + " " + path + " failed: " + e);
            return null;
        }
    }

    /** SGLang's get_model_info()["model_path"]. */
    static String modelPath() {
        return get("/get_model_info").ok().object().getString("model_path");
    }

    /** {@code /generate} with a text prompt; its answer. */
    static JsonObject generate(String text, int maxNewTokens, boolean ignoreEos) {
        return post("/generate", "{\"text\": " + Json.createValue(text) + ", \"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": "
                + maxNewTokens + ", \"ignore_eos\": " + ignoreEos + "}}").ok().object();
    }

    /** Waits (at most 10 s) until the engine runs at least {@code n} requests: SGLang's tests sleep for this instead. */
    static void awaitRunning(int n) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (get("/rl/state").ok().object().getInt("in_flight") < n) {
            if (System.nanoTime() > deadline) fail("fewer than " + n + " requests ran within 10 s: " + get("/rl/state").body());
            Thread.sleep(5);
        }
    }

    /**
     * After each test: nothing runs, nothing is paused or released, and the weights are those of
     * {@code path} under {@code version} (SGLang's tests get a server each; these share one). The
     * abort is for requests a failed test left behind; it ends nobody else's, since the ITs run
     * one class at a time.
     */
    static void leaveServing(String path, String version) {
        post("/abort_request", "{\"abort_all\": true}");
        post("/continue_generation", "{}");
        JsonArray released = get("/rl/state").ok().object().getJsonArray("released");
        if (!released.isEmpty()) post("/resume_memory_occupation", "{\"tags\": " + released + "}").ok();
        // always: a push may have changed the weights under the same version
        post("/update_weights_from_disk", "{\"model_path\": " + Json.createValue(path) + ", \"weight_version\": "
                    + Json.createValue(version) + "}").ok();
        assertEquals("serving", get("/rl/state").ok().object().getString("state"));
    }

    /** The finish reason's type of a /generate answer. */
    static String finishType(JsonObject generated) {
        return generated.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type");
    }

    static int[] ints(JsonValue array) {
        return ((JsonArray) array).getValuesAs(JsonNumber.class).stream().mapToInt(JsonNumber::intValue).toArray();
    }
}
