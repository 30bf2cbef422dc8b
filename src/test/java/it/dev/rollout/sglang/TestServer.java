package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.rollout.client.RolloutClient;
import dev.rollout.client.ServerProcess;
import it.dev.rollout.Http;
import it.dev.rollout.ServerProcessIT;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The server a ported SGLang scheduler test talks to: the build's IT server, or, where SGLang's
 * test launches its own server with other settings (a timeout, an API key, a small cache), a
 * second Liberty server of the build with those settings as environment variables, stopped by
 * {@link #close()}. Calls carry the API key when the server has one, as SGLang's tests send it.
 */
final class TestServer implements AutoCloseable {
    final String base;
    final int port;
    private final String apiKey;
    private final RolloutClient owner;  // the launched server's client, or null for the IT server

    private TestServer(String base, int port, String apiKey, RolloutClient owner) {
        this.base = base;
        this.port = port;
        this.apiKey = apiKey;
        this.owner = owner;
    }

    /** The build's IT server (default settings, 256 running requests, the admin key). */
    static TestServer shared() {
        Http.awaitReady();
        return new TestServer(Http.BASE, Integer.parseInt(System.getProperty("http.port", "9080")), null, null);
    }

    private static final Map<String, TestServer> LAUNCHED = new java.util.HashMap<>();

    /**
     * A second server with {@code env} (ROLLOUT_* settings), ready when this returns: launched once
     * per test JVM and shared by every class that asks for the same settings (test_abort.py and
     * test_scheduler_control.py launch the same servers; a launch takes most of a minute on a
     * busy CI machine), and stopped when the JVM exits.
     */
    static synchronized TestServer launched(String name, Map<String, String> env) throws IOException {
        String key = new java.util.TreeMap<>(env).toString();
        TestServer s = LAUNCHED.get(key);
        if (s == null) {
            if (LAUNCHED.isEmpty()) Runtime.getRuntime().addShutdownHook(new Thread(TestServer::stopLaunched, "stop-sglang-test-servers"));
            s = launch(name, env);
            LAUNCHED.put(key, s);
        }
        return s;
    }

    private static synchronized void stopLaunched() {
        for (TestServer s : LAUNCHED.values()) {
            try {
                s.close();
            } catch (RuntimeException e) {
                System.err.println("stopping " + s.base + ": " + e);
            }
        }
    }

    /** A second server with {@code env} (ROLLOUT_* settings), ready when this returns; the caller closes it. */
    static TestServer launch(String name, Map<String, String> env) throws IOException {
        int port = ServerProcessIT.freePort();
        ServerProcess.Spec spec = ServerProcessIT.secondServer(name, port);
        for (Map.Entry<String, String> e : env.entrySet()) spec = spec.withEnvironment(e.getKey(), e.getValue());
        String key = env.get("ROLLOUT_API_KEY");
        RolloutClient.Options options = new RolloutClient.Options(Duration.ofMinutes(5), key, Http.ADMIN_KEY, 0);
        return new TestServer("http://localhost:" + port, port, key, RolloutClient.launch(spec, options));
    }

    Http.Reply post(String path, String body) {
        return Http.send(request(path).header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    /** As {@link #post(String, String)}, waiting up to {@code timeout} (Http's own limit is 120 s). */
    Http.Reply post(String path, String body, Duration timeout) {
        try {
            var r = Http.CLIENT.send(request(path).timeout(timeout).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            return new Http.Reply(r.statusCode(), r.body());
        } catch (IOException e) {
            throw new AssertionError(path + " failed: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(path + " interrupted", e);
        }
    }

    Http.Reply get(String path) {
        return Http.send(request(path).GET());
    }

    /** A control call (pause, continue), with the admin key every test server has. */
    Http.Reply admin(String path, String body) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .header("Authorization", "Bearer " + Http.ADMIN_KEY).POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    private HttpRequest.Builder request(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path));
        return apiKey == null ? b : b.header("Authorization", "Bearer " + apiKey);
    }

    /** A value of {@code /metrics} (the sum over its label sets). */
    double metric(String name) {
        String text = get("/metrics").body();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(?:_total)?(?:\\{[^}]*})? ([-0-9.eE+]+)$").matcher(text);
        double sum = 0;
        boolean found = false;
        while (m.find()) {
            sum += Double.parseDouble(m.group(1));
            found = true;
        }
        if (!found) fail(name + " is not in /metrics");
        return sum;
    }

    /**
     * Sends {@code body} to /generate on a raw connection and returns it open, once the response
     * has started: closing the socket is a client that goes away, as SGLang's test terminates its
     * client process.
     */
    Socket openGenerate(String body) throws IOException {
        Socket s = new Socket("localhost", port);
        OutputStream out = s.getOutputStream();
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        out.write(("POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + (apiKey == null ? "" : "Authorization: Bearer " + apiKey + "\r\n")
                + "Content-Length: " + b.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(b);
        out.flush();
        return s;
    }

    /** Waits until nothing runs or waits and no KV block is held: what SGLang's memory-leak check asserts after its run. */
    void awaitIdleWithoutLeak(Duration within) throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            double running = metric("sglang:num_running_reqs"), queued = metric("sglang:num_queue_reqs"), usage = metric("sglang:token_usage");
            if (running == 0 && queued == 0 && usage == 0) return;
            last = "running " + running + ", queued " + queued + ", token_usage " + usage;
            Thread.sleep(200);
        }
        fail("the server did not come back to idle with every KV block free: " + last);
    }

    void assertAlive() {
        assertEquals(200, get("/health/live").status(), "the server is still up (SGLang: self.process.poll() is None)");
    }

    static String json(Object... kv) {
        StringBuilder s = new StringBuilder("{");
        for (int i = 0; i < kv.length; i += 2) {
            if (i > 0) s.append(", ");
            s.append('"').append(kv[i]).append("\": ").append(value(kv[i + 1]));
        }
        return s.append('}').toString();
    }

    private static String value(Object v) {
        if (v instanceof String str) return jakarta.json.Json.createValue(str).toString();
        if (v instanceof List<?> l) {
            StringBuilder s = new StringBuilder("[");
            for (int i = 0; i < l.size(); i++) s.append(i == 0 ? "" : ", ").append(value(l.get(i)));
            return s.append(']').toString();
        }
        if (v instanceof Raw r) return r.json;
        return String.valueOf(v);
    }

    /** JSON written as is (a nested object). */
    record Raw(String json) {}

    @Override
    public void close() {
        if (owner != null) owner.close();
    }
}
