package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.rollout.client.ServerProcess;
import jakarta.json.JsonArray;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A server as the RL frameworks run it beside their trainers: no API or admin key, since none of
 * veRL, slime, AReaL or SGLang's own HTTP adapter sends one on any call (their calls are made
 * here exactly as they make them, headers included). A second Liberty server of the build, so
 * that the shared IT server keeps its admin key and its state. Pickled pushes are allowed
 * ({@code rollout.allow-pickle}), as a server for veRL runs; slime's and AReaL's calls send none.
 *
 * <p>One per test JVM, shared by the frameworks' classes (a Liberty start takes some 20 s on a
 * CI machine): started before the first class's tests, put back to serving before each class and
 * after each test, stopped when the JVM exits.
 */
final class FrameworkServer implements BeforeAllCallback, AfterEachCallback {
    private static ServerProcess process;
    private static String sharedModelPath;
    String base;
    String modelPath;

    /** The shared server, for one test class ({@code @RegisterExtension static}). */
    FrameworkServer() {}

    @Override
    public void beforeAll(ExtensionContext context) throws IOException {
        synchronized (FrameworkServer.class) {
            if (process == null) {
                String name = "frameworks";
                int port = ServerProcessIT.freePort();
                ServerProcess.Spec spec = ServerProcessIT.secondServer(name, port).withEnvironment("ROLLOUT_ALLOW_PICKLE", "true");
                // the copied jvm.options carry the IT server's admin key: this one runs without
                Path options = Path.of(spec.environment().get("WLP_USER_DIR")).resolve("servers/" + name + "/jvm.options");
                if (Files.exists(options)) {
                    List<String> kept = Files.readAllLines(options).stream().filter(l -> !l.contains("rollout.admin-api-key")).toList();
                    Files.write(options, kept);
                }
                ServerProcess started = ServerProcess.start(spec);
                Runtime.getRuntime().addShutdownHook(new Thread(started::close, "stop-framework-server"));
                process = started;
                sharedModelPath = Http.send(HttpRequest.newBuilder(URI.create(started.url() + "/get_model_info")).GET()).object()
                        .getString("model_path");
            }
        }
        base = process.url().toString();
        modelPath = sharedModelPath;
        backToServing();   // whatever the class before left
    }

    /** Leaves the server serving after each test: not paused, its memory resumed, the weights pushed. */
    @Override
    public void afterEach(ExtensionContext context) {
        backToServing();
    }

    private void backToServing() {
        post("/continue_generation", "{}");
        JsonArray released = get("/rl/state").object().getJsonArray("released");
        if (!released.isEmpty()) ok(post("/resume_memory_occupation", "{\"tags\": " + released + "}"));
        if (get("/rl/state").object().getInt("unpushed_parameters") > 0)
            ok(post("/update_weights_from_disk", "{\"model_path\": \"" + modelPath + "\"}"));
    }

    Http.Reply get(String path) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).GET());
    }

    /** A GET with a JSON body, as Python's {@code requests.get(url, json=...)} sends it. */
    Http.Reply getWithBody(String path, String json) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .method("GET", HttpRequest.BodyPublishers.ofString(json)));
    }

    /** A POST with a JSON body, as {@code requests.post(url, json=...)} and aiohttp's {@code json=} send it. */
    Http.Reply post(String path, String json) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json)));
    }

    Http.Reply post(String path, String json, String authorization) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .header("Authorization", authorization).POST(HttpRequest.BodyPublishers.ofString(json)));
    }

    /** A POST that the test does not wait for: a rollout in flight while the trainer acts. */
    CompletableFuture<Http.Reply> postAsync(String path, String json) {
        HttpRequest r = HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .timeout(Duration.ofMinutes(2)).POST(HttpRequest.BodyPublishers.ofString(json)).build();
        return Http.CLIENT.sendAsync(r, HttpResponse.BodyHandlers.ofString()).thenApply(x -> new Http.Reply(x.statusCode(), x.body()));
    }

    Http.Reply ok(Http.Reply r) {
        assertEquals(200, r.status(), r.body());
        return r;
    }

    /**
     * The frameworks' polling loop: the call again every {@code interval} until it answers 200,
     * at most {@code tries} times (veRL's flush_cache: 12 tries 2 s apart; slime's: 60, 1 s apart).
     */
    Http.Reply poll(java.util.function.Supplier<Http.Reply> call, int tries, Duration interval) throws InterruptedException {
        Http.Reply last = null;
        for (int i = 0; i < tries; i++) {
            last = call.get();
            if (last.status() == 200) return last;
            Thread.sleep(interval.toMillis());
        }
        fail("no 200 after " + tries + " tries; the last answer: " + last.status() + " " + last.body());
        return last;
    }

    /** Waits (at most 30 s) until the server's scheduler state satisfies {@code test}. */
    void await(Predicate<jakarta.json.JsonObject> test, String what) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
            jakarta.json.JsonObject state = get("/get_server_info").object().getJsonArray("internal_states").getJsonObject(0);
            if (test.test(state)) return;
            Thread.sleep(50);
        }
        fail("timed out waiting until " + what);
    }
}
