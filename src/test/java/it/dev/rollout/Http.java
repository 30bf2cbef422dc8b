package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.fail;

import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonStructure;
import java.io.StringReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** A small HTTP client for the integration tests, against the Liberty that the build started (public: the ported SGLang tests in it.dev.rollout.sglang use it too). */
public final class Http {
    public static final String BASE = "http://localhost:" + System.getProperty("http.port", "9080");
    public static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    public record Reply(int status, String body) {
        public JsonObject object() {
            return (JsonObject) json();
        }

        public JsonArray array() {
            return (JsonArray) json();
        }

        public JsonStructure json() {
            try (var r = Json.createReader(new StringReader(body))) {
                return r.read();
            }
        }
    }

    public static final String ADMIN_KEY = System.getProperty("it.admin.key", "it-admin-key");

    /** A control call, with the admin key. */
    public static Reply admin(String path, String body) {
        return send(HttpRequest.newBuilder(URI.create(BASE + path)).header("Content-Type", "application/json")
                .header("Authorization", "Bearer " + ADMIN_KEY).POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    public static Reply adminGet(String path) {
        return send(HttpRequest.newBuilder(URI.create(BASE + path)).header("Authorization", "Bearer " + ADMIN_KEY).GET());
    }

    public static Reply get(String path) {
        return send(HttpRequest.newBuilder(URI.create(BASE + path)).GET());
    }

    public static Reply post(String path, String body) {
        return send(HttpRequest.newBuilder(URI.create(BASE + path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    public static Reply send(HttpRequest.Builder b) {
        HttpRequest req = b.timeout(Duration.ofSeconds(120)).build();
        for (int attempt = 0; ; attempt++) {
            try {
                HttpResponse<String> r = CLIENT.send(req, HttpResponse.BodyHandlers.ofString());
                return new Reply(r.statusCode(), r.body());
            } catch (java.io.IOException e) {
                // a pooled connection that the server closed (after refusing a body it did not read) answers
                // nothing: the request never reached the server, so it is sent once more, on a new connection
                if (attempt == 0 && String.valueOf(e.getMessage()).contains("received no bytes")) continue;
                fail("request failed: " + e);
                return null;
            } catch (Exception e) {
                fail("request failed: " + e);
                return null;
            }
        }
    }

    /**
     * Resumes exactly the memory that is released (a clean-up): resuming a tag that is not
     * released is refused, as in SGLang, so a blanket resume of everything would change nothing.
     */
    static void resumeReleased() {
        JsonArray released = get("/rl/state").object().getJsonArray("released");
        if (!released.isEmpty()) admin("/resume_memory_occupation", "{\"tags\": " + released + "}");
    }

    /** Waits (up to 3 minutes) for the engine to load and warm up. */
    public static void awaitReady() {
        long deadline = System.nanoTime() + Duration.ofMinutes(3).toNanos();
        while (System.nanoTime() < deadline) {
            try {
                HttpResponse<String> r = CLIENT.send(HttpRequest.newBuilder(URI.create(BASE + "/health/ready")).GET().build(),
                        HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) return;
                Thread.sleep(250);
            } catch (Exception e) {
                try { Thread.sleep(250); } catch (InterruptedException ie) { Thread.currentThread().interrupt(); return; }
            }
        }
        fail("the server did not become ready within 3 minutes");
    }
}
