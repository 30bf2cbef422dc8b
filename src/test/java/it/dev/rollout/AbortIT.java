package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonObject;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Abort with partial output, flush refused while busy, and clients that hang up. */
class AbortIT {
    static final String LONG = "\"sampling_params\": {\"max_new_tokens\": 3000, \"temperature\": 1.0, \"ignore_eos\": true}";

    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    @Test
    void abortReturnsPartialOutputAndFlushWaitsForIdle() throws Exception {
        CompletableFuture<Http.Reply> call = CompletableFuture.supplyAsync(
                () -> Http.post("/generate", "{\"input_ids\": [5, 6, 7], \"rid\": \"abort-me\", " + LONG + "}"));
        awaitRunning("abort-me");
        assertEquals(400, Http.adminGet("/flush_cache").status(), "flush must be refused while a request runs");
        assertEquals(200, Http.post("/abort_request", "{\"rid\": \"abort-me\"}").status());
        Http.Reply r = call.get(60, java.util.concurrent.TimeUnit.SECONDS);
        assertEquals(200, r.status(), r.body());
        JsonObject o = r.object();
        assertEquals("abort", o.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        int n = o.getJsonArray("output_ids").size();
        assertTrue(n > 0 && n < 3000, "partial output, got " + n);
        assertEquals(n, o.getJsonObject("meta_info").getInt("completion_tokens"));
        awaitIdle();
        assertEquals(200, Http.adminGet("/flush_cache").status());
    }

    @Test
    void abortAll() throws Exception {
        CompletableFuture<Http.Reply> a = CompletableFuture.supplyAsync(
                () -> Http.post("/generate", "{\"input_ids\": [8, 9], \"rid\": \"all-1\", " + LONG + "}"));
        CompletableFuture<Http.Reply> b = CompletableFuture.supplyAsync(
                () -> Http.post("/generate", "{\"input_ids\": [8, 10], \"rid\": \"all-2\", " + LONG + "}"));
        awaitRunning("all-1");
        awaitRunning("all-2");
        assertEquals(200, Http.admin("/abort_request", "{\"abort_all\": true}").status());
        for (var f : java.util.List.of(a, b))
            assertEquals("abort", f.get(60, java.util.concurrent.TimeUnit.SECONDS).object().getJsonObject("meta_info")
                    .getJsonObject("finish_reason").getString("type"));
        assertEquals(400, Http.post("/abort_request", "{}").status(), "neither rid nor abort_all");
    }

    @Test
    void streamingClientThatHangsUpIsAborted() throws Exception {
        hangUp(true);
    }

    @Test
    void nonStreamingClientThatHangsUpIsAborted() throws Exception {
        hangUp(false);
    }

    private void hangUp(boolean stream) throws Exception {
        String rid = "hangup-" + stream;
        String body = "{\"input_ids\": [11, 12, 13], \"rid\": \"" + rid + "\", \"stream\": " + stream + ", " + LONG + "}";
        int port = Integer.parseInt(System.getProperty("http.port", "9080"));
        try (Socket s = new Socket("localhost", port)) {
            OutputStream out = s.getOutputStream();
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            out.write(("POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: "
                    + b.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(b);
            out.flush();
            InputStream in = s.getInputStream();
            in.read(new byte[256]); // the response has started
            awaitRunning(rid);
        }
        awaitIdle();
        assertTrue(abortedCount() >= 1, "the hung-up request is counted as aborted");
    }

    static double abortedCount() {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?m)^sglang:num_aborted_requests_total\\{[^}]*} ([0-9.]+)")
                .matcher(Http.get("/metrics").body());
        return m.find() ? Double.parseDouble(m.group(1)) : -1;
    }

    static void awaitRunning(String rid) throws InterruptedException {
        for (int i = 0; i < 400; i++) {
            JsonObject s = Http.get("/get_server_info").object().getJsonArray("internal_states").getJsonObject(0);
            if (s.getInt("num_running_reqs") + s.getInt("num_waiting_reqs") > 0) {
                Thread.sleep(200); // let it produce a few tokens
                return;
            }
            Thread.sleep(25);
        }
        throw new AssertionError(rid + " never started");
    }

    static void awaitIdle() throws InterruptedException {
        for (int i = 0; i < 300; i++) {
            JsonObject s = Http.get("/get_server_info").object().getJsonArray("internal_states").getJsonObject(0);
            if (s.getInt("num_running_reqs") == 0 && s.getInt("num_waiting_reqs") == 0) return;
            Thread.sleep(50);
        }
        throw new AssertionError("requests still running 15 s after their client hung up or was aborted");
    }
}
