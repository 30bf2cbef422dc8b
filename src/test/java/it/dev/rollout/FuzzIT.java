package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.safetensors.SafetensorsWriter;
import jakarta.json.JsonArray;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Issue #16's fuzz test: a seeded stream of malformed and valid requests over every route of the
 * server (the JAX-RS resources' {@code @Path}s, the status page, the example environment, and
 * Liberty's /health and /metrics), sent by 16 client threads while one controller thread makes
 * valid RL control calls (pause and continue, drain, update sessions, pushes of the weights the
 * server already holds). Mutations: nesting bombs, huge, negative, fractional and over-long
 * numbers, wrong types, unknown and duplicate fields, bad base64, malformed safetensors (element
 * counts that overflow, negative dimensions, overlapping or gapped offsets, duplicate names,
 * non-string metadata, header lengths that lie), bad flattened-bucket manifests and CUDA-IPC
 * descriptors, pickles, Content-Lengths that claim gigabytes, malformed query strings and
 * paths, NUL bytes, 12 MB prompts, max_new_tokens of 1e9, bad keys.
 *
 * <p>It ends with: no 5xx (MicroProfile Health's DOWN, a 503 by its spec, is counted apart), no
 * request slower than {@link #QUEUE_BOUND}, no malformed push accepted, the weights' checksum and
 * the greedy output unchanged by everything the fuzz sent (then changed by one valid push and
 * restored), and the server's resident memory within its heap cap plus {@link #BEYOND_HEAP_BYTES}. The plan of
 * requests is a function of the seed ({@code -Dfuzz.seed}); CI sends {@code -Dfuzz.requests}
 * (10,000 by default), {@code -Dfuzz.scale=full} sends 100,000. {@code -Dfuzz.pids} (comma
 * separated) measures other processes than the IT server (the runnable jar's launcher and server).
 */
@ExtendWith(RestoresServedWeights.class)
class FuzzIT {
    static final long SEED = Long.getLong("fuzz.seed", 20261206L);
    static final int REQUESTS = Integer.getInteger("fuzz.requests", "full".equals(System.getProperty("fuzz.scale")) ? 100_000 : 10_000);
    static final int THREADS = Integer.getInteger("fuzz.threads", 16);
    /**
     * The documented queueing bound (docs/api.md, Limits): every request of the fuzz, refused or
     * served, is answered within this on two CPU cores with 16 clients; slower counts as a timeout.
     */
    static final Duration QUEUE_BOUND = Duration.ofSeconds(30);
    /**
     * Resident memory beside the heap cap, for the default model (docs/operations.md, Memory):
     * libtorch's weights and KV cache, the tokenizer, code, metaspace, GC structures and ~600
     * thread stacks came to about 0.9 GiB; the runnable jar's launcher JVM adds 60 MiB.
     */
    static final long BEYOND_HEAP_BYTES = Long.getLong("fuzz.rss.beyond-heap.mib", 1280) << 20;
    /** The server's resident memory may not pass its heap cap plus {@link #BEYOND_HEAP_BYTES}, during or after the run. */
    static long rssBound;
    static final String NORM = "model.norm.weight";
    static final String LAYER_NORM = "model.layers.0.input_layernorm.weight";
    static final int HIDDEN = 128;
    static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    /** The names the fuzz opens sessions under, closed after the run ({@link #leaveTheServerUsable}). */
    static final String SESSION_PREFIX = "fuzz-session-";
    static final int SESSIONS = 8;
    /** The idle timeout of every session the fuzz opens, so that one whose name a mutation changed closes itself. */
    static final int SESSION_TIMEOUT_S = 30;

    static String model, modelPath;
    static float[] norm;

    /** What a request must get: anything but a 5xx, or a refusal (never a 2xx). */
    enum Expect { ANY, REFUSED }

    /** One planned request. {@code raw}: sent over a socket as these exact bytes (URIs and headers HttpClient would refuse). */
    record Req(String route, String kind, String method, String path, Map<String, String> headers, byte[] body, boolean raw,
               Expect expect) {}

    record Outcome(Req req, int status, long micros, String body) {}

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        model = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
        modelPath = Http.get("/get_model_info").object().getString("model_path");
        JsonArray n = Http.post("/get_weights_by_name", "{\"name\": \"" + NORM + "\", \"truncate_size\": " + HIDDEN + "}").array();
        norm = new float[HIDDEN];
        for (int i = 0; i < HIDDEN; i++) norm[i] = (float) n.getJsonNumber(i).doubleValue();
    }

    /** Whatever the run left: a pause, an open session, released memory. The weights are reloaded by RestoresServedWeights. */
    @AfterAll
    static void leaveTheServerUsable() {
        Http.admin("/continue_generation", "{}");
        Http.admin("/abort_weight_update", "{}");
        Http.resumeReleased();
        for (int i = 0; i < SESSIONS; i++) Http.post("/close_session", "{\"session_id\": \"" + SESSION_PREFIX + i + "\"}");
    }

    @Test
    void fuzz() throws Exception {
        rssBound = heapCap() + BEYOND_HEAP_BYTES;
        List<Long> pids = serverPids();
        long rss0 = rss(pids);
        JsonArray greedy0 = greedy();
        String sum0 = checksum();

        List<Req> plan = new Planner(SEED).plan(REQUESTS);
        List<Outcome> outcomes = new CopyOnWriteArrayList<>();
        ConcurrentLinkedQueue<String> controlFailures = new ConcurrentLinkedQueue<>();
        List<long[]> rssSeries = new CopyOnWriteArrayList<>();
        AtomicInteger next = new AtomicInteger();
        AtomicBoolean done = new AtomicBoolean();
        long t0 = System.nanoTime();

        Thread sampler = new Thread(() -> {
            while (!done.get()) {
                rssSeries.add(new long[] {(System.nanoTime() - t0) / 1_000_000, rss(pids)});
                sleep(1000);
            }
        }, "fuzz-rss");
        Thread controller = new Thread(() -> control(done, controlFailures), "fuzz-controller");
        List<Thread> workers = new ArrayList<>();
        for (int w = 0; w < THREADS; w++) {
            workers.add(new Thread(() -> {
                for (int i; (i = next.getAndIncrement()) < plan.size(); ) outcomes.add(send(plan.get(i)));
            }, "fuzz-" + w));
        }
        sampler.start();
        controller.start();
        workers.forEach(Thread::start);
        for (Thread w : workers) w.join();
        done.set(true);
        controller.join();
        sampler.join();
        double seconds = (System.nanoTime() - t0) / 1e9;

        // after the storm: the same weights and the same greedy output (the controller's pushes wrote equal values)
        assertEquals("serving", Http.get("/rl/state").object().getString("state"));
        String sum1 = checksum();
        JsonArray greedy1 = greedy();
        sleep(2000);  // let the allocator and the collector settle before the last sample
        long rssEnd = rss(pids);
        rssSeries.add(new long[] {(System.nanoTime() - t0) / 1_000_000, rssEnd});

        Summary s = new Summary(outcomes);
        s.print(seconds, rss0, rssSeries, controlFailures);

        assertTrue(outcomes.size() >= REQUESTS, outcomes.size() + " requests");
        assertTrue(s.coveredEveryRoute(), "routes never sent: " + s.missingRoutes());
        assertTrue(s.serverErrors.isEmpty(), s.serverErrors.size() + " answers were 5xx: " + s.first(s.serverErrors));
        assertTrue(s.timeouts.isEmpty(), s.timeouts.size() + " requests took longer than " + QUEUE_BOUND + ": " + s.first(s.timeouts));
        assertTrue(s.unexpected.isEmpty(), s.unexpected.size() + " answers broke their expectation: " + s.first(s.unexpected));
        assertTrue(controlFailures.isEmpty(), "valid control calls failed: " + controlFailures);
        assertEquals(sum0, sum1, "the fuzz changed the weights");
        assertEquals(greedy0, greedy1, "the fuzz changed the greedy output");
        long peak = rssSeries.stream().mapToLong(p -> p[1]).max().orElse(0);
        assertTrue(peak <= rssBound, "resident memory reached " + (peak >> 20) + " MiB, over the bound of " + (rssBound >> 20) + " MiB");

        // a valid push does change the output, and pushing the old values back restores it
        float[] other = norm.clone();
        Random r = new Random(SEED);
        for (int i = 0; i < other.length; i++) other[i] = (float) (r.nextGaussian() * 3);
        assertEquals(200, pushNorm(other, "fuzz-changed").status());
        assertNotEquals(sum0, checksum());
        assertNotEquals(greedy0, greedy(), "a push of other values for the final norm changed the greedy output");
        assertEquals(200, pushNorm(norm, "fuzz-restored").status());
        assertEquals(sum0, checksum());
        assertEquals(greedy0, greedy());
    }

    // ---- the controller: valid RL calls beside the fuzz -----------------------------------------

    static void control(AtomicBoolean done, ConcurrentLinkedQueue<String> failures) {
        for (int k = 0; !done.get(); k++) {
            String id = "fuzz-ctl-" + k;
            List<Http.Reply> replies = new ArrayList<>();
            try {
                controlOnce(k, id, replies);
            } catch (Throwable t) {  // Http fails on a lost answer: record it, the controller goes on
                failures.add("control " + k + ": " + t);
            }
            for (Http.Reply reply : replies)
                if (reply.status() != 200) failures.add("control " + k + ": " + reply.status() + " " + abbreviate(reply.body()));
            sleep(300);
        }
    }

    static void controlOnce(int k, String id, List<Http.Reply> replies) {
        switch (k % 8) {
            case 0 -> {
                replies.add(Http.admin("/pause_generation", "{\"mode\": \"in_place\"}"));
                sleep(100);
                replies.add(Http.admin("/continue_generation", "{}"));
            }
            case 1 -> {
                replies.add(Http.admin("/begin_weight_update", "{\"update_id\": \"" + id + "\", \"timeout_s\": 60}"));
                replies.add(Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                        + Base64.getEncoder().encodeToString(normSafetensors(norm)) + "\"], \"update_id\": \"" + id + "\", \"bucket_seq\": 0}"));
                replies.add(Http.admin("/end_weight_update", "{\"update_id\": \"" + id + "\", \"weight_version\": \"" + id + "\"}"));
            }
            case 2 -> replies.add(pushNorm(norm, id));
            case 3 -> replies.add(Http.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/update_weights_from_tensor?weight_version=" + id))
                    .header("Content-Type", "application/octet-stream").header("Authorization", "Bearer " + Http.ADMIN_KEY)
                    .POST(HttpRequest.BodyPublishers.ofByteArray(normSafetensors(norm)))));
            case 4 -> {
                replies.add(Http.admin("/drain", "{\"timeout_s\": 0.2, \"mode\": \"retract\"}"));
                replies.add(Http.admin("/continue_generation", "{}"));
            }
            case 5 -> replies.add(Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                    + Base64.getEncoder().encodeToString(f32(norm)) + "\"], \"load_format\": \"flattened_bucket\", "
                    + "\"flattened_bucket_metadata\": [{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [" + HIDDEN
                    + "], \"start_idx\": 0, \"end_idx\": " + 4 * HIDDEN + "}], \"weight_version\": \"" + id + "\"}"));
            case 6 -> replies.add(Http.admin("/update_weight_version", "{\"new_version\": \"" + id + "\"}"));
            default -> replies.add(Http.admin("/weights_checker", "{\"action\": \"checksum\"}"));
        }
    }

    static Http.Reply pushNorm(float[] values, String version) {
        return Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                + Base64.getEncoder().encodeToString(normSafetensors(values)) + "\"], \"weight_version\": \"" + version + "\"}");
    }

    static byte[] f32(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) b.putFloat(f);
        return b.array();
    }

    static byte[] normSafetensors(float[] v) {
        return SafetensorsWriter.bytes(Map.of(NORM, new SafetensorsWriter.Tensor("F32", new long[] {v.length}, ByteBuffer.wrap(f32(v)))));
    }

    static JsonArray greedy() {
        Http.Reply r = Http.post("/generate", Checkpoints.greedyBody(16));
        assertEquals(200, r.status(), r.body());
        return r.object().getJsonArray("output_ids");
    }

    static String checksum() {
        return Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getString("per_gpu_checksum");
    }

    // ---- sending -------------------------------------------------------------------------------

    static Outcome send(Req q) {
        long t0 = System.nanoTime();
        try {
            if (q.raw()) {
                int[] status = new int[1];
                String body = sendRaw(q, status);
                return new Outcome(q, status[0], (System.nanoTime() - t0) / 1000, body);
            }
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(Http.BASE + q.path())).timeout(QUEUE_BOUND);
            q.headers().forEach(b::header);
            b.method(q.method(), q.body() == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(q.body()));
            HttpResponse<byte[]> r = CLIENT.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
            return new Outcome(q, r.statusCode(), (System.nanoTime() - t0) / 1000, head(r.body()));
        } catch (HttpTimeoutException | java.net.SocketTimeoutException e) {
            return new Outcome(q, -1, (System.nanoTime() - t0) / 1000, "timeout");
        } catch (Exception e) {
            return new Outcome(q, 0, (System.nanoTime() - t0) / 1000, "no answer: " + e);
        }
    }

    /** A request as exact bytes over a socket; the status from the answer's first line, 0 when the server only closed. */
    static String sendRaw(Req q, int[] status) throws IOException {
        URI base = URI.create(Http.BASE);
        try (Socket s = new Socket(base.getHost(), base.getPort())) {
            s.setSoTimeout((int) QUEUE_BOUND.toMillis());
            OutputStream out = s.getOutputStream();
            StringBuilder head = new StringBuilder(q.method() + " " + q.path() + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
            q.headers().forEach((k, v) -> head.append(k).append(": ").append(v).append("\r\n"));
            if (!q.headers().containsKey("Content-Length") && q.body() != null) head.append("Content-Length: ").append(q.body().length).append("\r\n");
            out.write(head.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1));
            if (q.body() != null) out.write(q.body());
            out.flush();
            s.shutdownOutput();  // a Content-Length that claims more ends here: the server sees the end of the body
            byte[] answer = s.getInputStream().readAllBytes();
            String text = new String(answer, 0, Math.min(answer.length, 2000), StandardCharsets.ISO_8859_1);
            status[0] = text.startsWith("HTTP/1.") && text.length() >= 12 ? Integer.parseInt(text.substring(9, 12)) : 0;
            int at = text.indexOf("\r\n\r\n");
            return at < 0 ? text : text.substring(at + 4);
        }
    }

    static String head(byte[] b) {
        return new String(b, 0, Math.min(b.length, 300), StandardCharsets.UTF_8);
    }

    // ---- the plan: a function of the seed --------------------------------------------------------

    /** Every route the fuzz must reach (method and path template), from the resources' @Path and Liberty's endpoints. */
    static final Set<String> ROUTES = new TreeSet<>(List.of(
            "POST /generate", "PUT /generate", "POST /v1/completions", "POST /v1/chat/completions",
            "POST /tokenize", "POST /v1/tokenize", "POST /detokenize", "POST /v1/detokenize",
            "GET /get_model_info", "GET /get_server_info", "GET /v1/models", "GET /v1/models/{model}", "GET /health_generate",
            "POST /abort_request", "GET /flush_cache", "POST /flush_cache",
            "POST /update_weights_from_tensor", "POST /update_weights_from_tensor (octet-stream)", "POST /update_weights_from_disk",
            "POST /init_weights_update_group", "POST /update_weights_from_distributed", "POST /destroy_weights_update_group",
            "GET /server_info", "GET /v1/loads", "POST /post_process_weights", "POST /pull_weights",
            "POST /begin_weight_update", "POST /end_weight_update", "POST /abort_weight_update", "GET /get_weight_version",
            "POST /update_weight_version", "GET /get_weights_by_name", "POST /get_weights_by_name", "GET /weights_checker",
            "POST /weights_checker", "POST /pause_generation", "POST /continue_generation", "POST /drain",
            "GET /release_memory_occupation", "POST /release_memory_occupation", "GET /resume_memory_occupation",
            "POST /resume_memory_occupation", "GET /rl/state", "GET /status", "GET /", "GET /{file}",
            "GET /env", "POST /env/tasks", "POST /env/tools/calculator", "POST /env/reward",
            "POST /open_session", "GET /open_session", "POST /close_session", "GET /close_session",
            "GET /health", "GET /health/ready", "GET /health/live", "GET /health/started", "GET /metrics", "* unknown path"));

    /** Builds the requests; each draws from its own Random, so request i is the same whatever came before. */
    static final class Planner {
        final long seed;
        Random r;
        /** Bodies too large to make per request: made once, shared. */
        static final String TEXT_12MB = "The quick brown fox jumps over the lazy dog. ".repeat(12_000_000 / 45);
        static final String TEXT_600KB = "word ".repeat(120_000);

        Planner(long seed) {
            this.seed = seed;
        }

        List<Req> plan(int n) {
            List<Req> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                r = new Random(seed * 1_000_003L + i);
                out.add(one());
            }
            return out;
        }

        Req one() {
            int k = r.nextInt(100);
            if (k < 14) return generate();
            if (k < 20) return completions();
            if (k < 26) return chat();
            if (k < 31) return tokenize();
            if (k < 34) return detokenize();
            if (k < 44) return push();
            if (k < 48) return pushOctet();
            if (k < 54) return guardedControl();
            if (k < 58) return harmlessControl();
            if (k < 60) return sessions();
            if (k < 70) return gets();
            if (k < 76) return env();
            if (k < 80) return weightsByName();
            if (k < 88) return rawRequest();
            return liberty();
        }

        // ---- JSON helpers: bodies as ordered maps of raw JSON values, mutated before they are written

        static String obj(Map<String, String> m) {
            StringBuilder b = new StringBuilder("{");
            m.forEach((k, v) -> b.append(b.length() > 1 ? ", " : "").append('"').append(k).append("\": ").append(v));
            return b.append('}').toString();
        }

        static String str(String s) {
            StringBuilder b = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            return b.append('"').toString();
        }

        <T> T pick(List<T> xs) {
            return xs.get(r.nextInt(xs.size()));
        }

        String ids(int n) {
            StringBuilder b = new StringBuilder("[");
            for (int i = 0; i < n; i++) b.append(i == 0 ? "" : ", ").append(r.nextInt(151_000));
            return b.append(']').toString();
        }

        static final List<String> NUMBERS = List.of("1e999999999", "-1e999999999", "1e-999999999", "9".repeat(1500), "2147483648",
                "9223372036854775808", "-1", "-2147483649", "1e308", "-0", "0.5", "1e9", "1e12", "-1e12", "NaN", "Infinity");
        static final List<String> WRONG_TYPES = List.of("\"x\"", "true", "null", "[]", "{}", "[[[]]]", "\"\"", "123", "[1, \"a\"]",
                "{\"a\": {\"b\": null}}");
        static final List<String> NOT_STRINGS = List.of("true", "null", "[]", "{}", "123", "[\"pt\"]", "{\"a\": \"b\"}");
        static final List<Integer> DEPTHS = List.of(65, 100, 999, 1001, 5000, 100_000);

        String bomb() {
            int d = pick(DEPTHS);
            return r.nextBoolean() ? "[".repeat(d) + "]".repeat(d) : "{\"a\": ".repeat(d) + "1" + "}".repeat(d);
        }

        /**
         * Fields whose valid values would make a request long: a fuzzed generation may not drop or
         * raise them (without max_tokens, a chat completion fills the context), so that no valid
         * request runs for long. Their invalid values are sent by the routes' own cases.
         */
        static final Set<String> PROTECTED = Set.of("max_new_tokens", "max_tokens", "max_completion_tokens", "n", "sampling_params");

        /** A generic mutation of a JSON body; returns its name and writes the body into {@code body[0]}. */
        String mutate(Map<String, String> m, String[] body) {
            List<String> keys = new ArrayList<>(m.keySet());
            keys.removeAll(PROTECTED);
            String key = keys.isEmpty() ? "x" : pick(keys);
            int kind = r.nextInt(14);
            switch (kind) {
                case 0 -> { m.put(key, bomb()); body[0] = obj(m); return "depth bomb"; }
                case 1 -> { m.put(key, pick(NUMBERS)); body[0] = obj(m); return "number " + m.get(key).substring(0, Math.min(12, m.get(key).length())); }
                case 2 -> { m.put(key, pick(WRONG_TYPES)); body[0] = obj(m); return "wrong type"; }
                case 3 -> { m.put("zz_unknown_" + r.nextInt(100), pick(WRONG_TYPES)); body[0] = obj(m); return "unknown field"; }
                case 4 -> { m.remove(key); body[0] = obj(m); return "missing field"; }
                case 5 -> { String full = obj(m); body[0] = full.substring(0, 1 + r.nextInt(Math.max(1, full.length() - 2))); return "truncated JSON"; }
                case 6 -> { m.put(key, str("a\u0000b")); body[0] = obj(m); return "NUL in a string"; }
                case 7 -> { body[0] = obj(m).replaceFirst("\"" + key + "\": ", "\"" + key + "\": " + pick(WRONG_TYPES) + ", \"" + key + "\": "); return "duplicate key"; }
                case 8 -> { body[0] = pick(List.of("", "   ", "[1, 2]", "\"x\"", "7", "null", "{", "}", "{\"a\":}", "{'a': 1}", "{\"a\": 1,}", "\ufeff{}")); return "not an object"; }
                case 9 -> { m.put(key, str("x".repeat(pick(List.of(10_000, 200_000, 2_000_000))))); body[0] = obj(m); return "huge string"; }
                case 10 -> { m.put(key, "\"\\ud800\\udfff\\uzzzz\""); body[0] = obj(m); return "bad escape"; }
                case 11 -> { body[0] = obj(m) + " trailing"; return "trailing garbage"; }
                case 12 -> { m.put(key, "[" + "1,".repeat(50_000) + "1]"); body[0] = obj(m); return "long list"; }
                default -> { m.put(key, "1" + "0".repeat(1001)); body[0] = obj(m); return "number too long"; }
            }
        }

        /** The 12 MB bodies: made once and shared by every request that sends them (the plan would hold gigabytes). */
        static final Map<String, byte[]> SHARED = new ConcurrentHashMap<>();

        Req big(String route, String path, String name, Supplier<String> body) {
            byte[] b = SHARED.computeIfAbsent(route + name, k -> body.get().getBytes(StandardCharsets.UTF_8));
            return new Req(route, name, "POST", path, Map.of("Content-Type", "application/json"), b, false, Expect.REFUSED);
        }

        Req json(String route, String method, String path, String body, String kind, Expect expect, boolean admin) {
            Map<String, String> h = new LinkedHashMap<>();
            int ct = r.nextInt(10);
            if (ct < 7) h.put("Content-Type", "application/json");
            else if (ct == 7) h.put("Content-Type", "text/plain");
            else if (ct == 8) h.put("Content-Type", "application/x-www-form-urlencoded");
            if (admin) h.put("Authorization", "Bearer " + Http.ADMIN_KEY);
            return new Req(route, kind, method, path, h, body.getBytes(StandardCharsets.UTF_8), false, expect);
        }

        /** A valid body (kind "valid") or a mutated one; the expectation stays ANY unless the caller knows better. */
        Req jsonRoute(String route, String method, String path, Map<String, String> valid, boolean admin, int validPercent) {
            if (r.nextInt(100) < validPercent) return json(route, method, path, obj(valid), "valid", Expect.ANY, admin);
            String[] body = new String[1];
            String kind = mutate(valid, body);
            return json(route, method, path, body[0], kind, Expect.ANY, admin);
        }

        Map<String, String> m(String... kv) {
            Map<String, String> m = new LinkedHashMap<>();
            for (int i = 0; i < kv.length; i += 2) m.put(kv[i], kv[i + 1]);
            return m;
        }

        String sampling() {
            Map<String, String> sp = m("max_new_tokens", "" + (1 + r.nextInt(8)), "temperature", r.nextBoolean() ? "0" : "0.8");
            if (r.nextInt(4) == 0) sp.put(pick(List.of("top_p", "top_k", "min_p", "repetition_penalty", "n", "seed", "stop", "ignore_eos")),
                    pick(List.of("0.9", "5", "0.1", "1.1", "2", "7", "\"the\"", "true")));
            // logit_bias and stop_regex: keys outside the vocabulary or not numbers, patterns that do
            // not compile or backtrack (bounded by the server, docs/api.md)
            if (r.nextInt(6) == 0) sp.put("logit_bias", pick(List.of("{\"" + r.nextInt(151_000) + "\": 100}", "{\"5\": -100, \"6\": 3.4e38}", "{\"6\": 1e308}",
                    "{\"999999999\": 1}", "{\"-1\": 1}", "{\"x\": 1}", "{\"5\": \"a\"}", "{\"5\": null}", "[5]")));
            if (r.nextInt(6) == 0) sp.put("stop_regex", pick(List.of("\"a|the\"", "[\"x{3}\", \"\\\\d+$\"]", "\"(a+)+$\"", "\"(unclosed\"",
                    "\"[z-a]\"", "[]", "7")));
            if (r.nextInt(3) == 0) {
                String[] body = new String[1];
                mutate(sp, body);
                return body[0];
            }
            return obj(sp);
        }

        // ---- generation ----

        Req generate() {
            String method = r.nextInt(10) == 0 ? "PUT" : "POST";
            String route = method + " /generate";
            int k = r.nextInt(20);
            if (k == 0) return big("POST /generate", "/generate", "12 MB text", () -> obj(m("text", str(TEXT_12MB))));
            if (k == 1) return json(route, method, "/generate", obj(m("input_ids", ids(5), "sampling_params",
                    obj(m("max_new_tokens", pick(List.of("1e9", "1000000000", "2147483647", "4096")))))), "max_new_tokens past the context", Expect.REFUSED, false);
            if (k == 2) return big("POST /generate", "/generate", "600 KB text", () -> obj(m("text", str(TEXT_600KB))));
            Map<String, String> body = r.nextBoolean() ? m("input_ids", ids(1 + r.nextInt(20)), "sampling_params", sampling())
                    : m("text", str(pick(List.of("Hello", "The capital of France is", "日本語", "a\u0000b", "🚀"))), "sampling_params", sampling());
            if (r.nextInt(5) == 0) body.put("stream", "true");
            if (r.nextInt(5) == 0) body.put("return_logprob", "true");
            if (r.nextInt(8) == 0) body.put("input_ids", "[" + ids(3) + ", " + ids(4) + "]");
            return jsonRoute(route, method, "/generate", body, false, 40);
        }

        Req completions() {
            Map<String, String> body = m("model", str(model), "prompt", r.nextInt(5) == 0 ? ids(6) : str("Once upon a time"),
                    "max_tokens", "" + (1 + r.nextInt(8)), "temperature", "0");
            int k = r.nextInt(12);
            if (k == 0) return big("POST /v1/completions", "/v1/completions", "12 MB prompt", () -> obj(m("model", str(model), "prompt", str(TEXT_12MB))));
            if (k == 1) { body.put("max_tokens", "1000000000"); return json("POST /v1/completions", "POST", "/v1/completions", obj(body), "max_tokens 1e9", Expect.REFUSED, false); }
            if (k == 2) body.put("best_of", pick(List.of("1e999999999", "2", "1.5", "\"1\"")));
            if (k == 3) body.put("model", str("gpt-4"));
            return jsonRoute("POST /v1/completions", "POST", "/v1/completions", body, false, 35);
        }

        Req chat() {
            String content = pick(List.of(str("Hi"), str("What is 2+2?"), "[{\"type\": \"text\", \"text\": \"hi\"}]", "null"));
            Map<String, String> body = m("model", str(model), "messages", "[{\"role\": \"user\", \"content\": " + content + "}]",
                    "max_tokens", "" + (1 + r.nextInt(8)));
            int k = r.nextInt(12);
            if (k == 0) return big("POST /v1/chat/completions", "/v1/chat/completions", "12 MB message", () -> obj(m("model", str(model),
                    "messages", "[{\"role\": \"user\", \"content\": " + str(TEXT_12MB) + "}]", "max_tokens", "4")));
            if (k == 1) body.put("messages", "[{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\", "
                    + "\"function\": {\"name\": \"f\", \"arguments\": " + str("[".repeat(5000) + "]".repeat(5000)) + "}}]}]");
            if (k == 2) body.put("tools", "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": " + bomb() + "}}]");
            if (k == 3) body.put("chat_template_kwargs", "{\"enable_thinking\": " + pick(WRONG_TYPES) + "}");
            if (k == 4) body.put("max_completion_tokens", "1000000000");
            if (k == 4) return json("POST /v1/chat/completions", "POST", "/v1/chat/completions", obj(body), "max_tokens 1e9", Expect.REFUSED, false);
            return jsonRoute("POST /v1/chat/completions", "POST", "/v1/chat/completions", body, false, 40);
        }

        Req tokenize() {
            String path = r.nextBoolean() ? "/tokenize" : "/v1/tokenize";
            int k = r.nextInt(10);
            if (k == 0) return big("POST " + path, path, "12 MB prompt", () -> obj(m("prompt", str(TEXT_12MB))));
            Map<String, String> body = k < 3 ? m("messages", "[{\"role\": \"user\", \"content\": \"hi\"}]", "add_generation_prompt", "true")
                    : m("prompt", pick(List.of(str("Hello world"), "[\"a\", \"b\"]", str(TEXT_600KB.substring(0, 100_000)))), "add_special_tokens", "false");
            return jsonRoute("POST " + path, "POST", path, body, false, 40);
        }

        Req detokenize() {
            String path = r.nextBoolean() ? "/detokenize" : "/v1/detokenize";
            Map<String, String> body = m("tokens", r.nextBoolean() ? ids(8) : "[" + ids(2) + ", " + ids(3) + "]",
                    "skip_special_tokens", "false");
            if (r.nextInt(5) == 0) body.put("tokens", pick(List.of("[-1]", "[151936]", "[1e20]", "[0.5]", "[[[1]]]")));
            return jsonRoute("POST " + path, "POST", path, body, false, 40);
        }

        // ---- weight pushes: every one malformed by construction, so every one must be refused ----

        /** safetensors bytes with this header and data; the header length written as {@code claimed} when >= 0. */
        static byte[] safetensors(String header, int data, long claimed) {
            byte[] h = header.getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(8 + h.length + data).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(claimed >= 0 ? claimed : h.length).put(h);
            for (int i = 0; i < data; i++) b.put((byte) 0x3f);
            return b.array();
        }

        static String entry(String name, String dtype, String shape, long begin, long end) {
            return "\"" + name + "\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape + ", \"data_offsets\": [" + begin + ", " + end + "]}";
        }

        /** A malformed safetensors blob: its name and bytes. */
        Map.Entry<String, byte[]> badSafetensors() {
            int k = r.nextInt(18);
            return switch (k) {
                // the push that changed the served weights before: two tensors from the same bytes
                case 0 -> Map.entry("overlapping offsets", safetensors("{" + entry(NORM, "F32", "[128]", 0, 512) + ", "
                        + entry(LAYER_NORM, "F32", "[128]", 0, 512) + "}", 512, -1));
                case 1 -> Map.entry("shape overflow 2^32x2^32x2", safetensors("{" + entry(NORM, "F32", "[4294967296, 4294967296, 2]", 0, 64) + "}", 64, -1));
                case 2 -> Map.entry("shape overflow 2^62x4", safetensors("{" + entry(NORM, "F32", "[4611686018427387904, 4]", 0, 64) + "}", 64, -1));
                case 3 -> Map.entry("negative dimension", safetensors("{" + entry(NORM, "F32", "[-2, -64]", 0, 512) + "}", 512, -1));
                case 4 -> Map.entry("duplicate name", safetensors("{" + entry(NORM, "F32", "[128]", 0, 512) + ", "
                        + entry(NORM, "F32", "[128]", 512, 1024) + "}", 1024, -1));
                case 5 -> Map.entry("non-string metadata", safetensors("{\"__metadata__\": {\"format\": " + pick(NOT_STRINGS) + "}, "
                        + entry(NORM, "F32", "[128]", 0, 512) + "}", 512, -1));
                case 6 -> Map.entry("header length lies", safetensors("{" + entry(NORM, "F32", "[128]", 0, 512) + "}", 512,
                        pick(List.of(1_999_999_999L, 100_000_001L, 0L, 1L, 600L, Long.MAX_VALUE))));
                case 7 -> Map.entry("data cut short", safetensors("{" + entry(NORM, "F32", "[128]", 0, 512) + "}", 300, -1));
                case 8 -> Map.entry("a gap", safetensors("{" + entry(NORM, "F32", "[128]", 8, 520) + "}", 520, -1));
                case 9 -> Map.entry("integer weights", safetensors("{" + entry(NORM, "I32", "[128]", 0, 512) + "}", 512, -1));
                case 10 -> Map.entry("wrong shape", safetensors("{" + entry(NORM, "F32", "[64]", 0, 256) + "}", 256, -1));
                case 11 -> Map.entry("unknown parameter", safetensors("{" + entry("model.nope.weight", "F32", "[128]", 0, 512) + "}", 512, -1));
                case 12 -> Map.entry("no tensors", safetensors("{}", 0, -1));
                case 13 -> Map.entry("header depth bomb", safetensors("{\"a\": " + bomb() + "}", 0, -1));
                case 14 -> Map.entry("pickle", new byte[] {(byte) 0x80, 4, (byte) 0x95, 1, 2, 3, '.'});
                case 15 -> Map.entry("random bytes", randomBytes(1 + r.nextInt(4096)));
                case 16 -> Map.entry("unknown dtype", safetensors("{" + entry(NORM, "F33", "[128]", 0, 512) + "}", 512, -1));
                default -> Map.entry("empty", new byte[0]);
            };
        }

        byte[] randomBytes(int n) {
            byte[] b = new byte[n];
            r.nextBytes(b);
            return b;
        }

        Req push() {
            String route = "POST /update_weights_from_tensor";
            boolean admin = r.nextInt(10) != 0;
            int k = r.nextInt(10);
            String b64Norm = Base64.getEncoder().encodeToString(f32(new float[HIDDEN]));
            if (k < 4) {
                Map.Entry<String, byte[]> bad = badSafetensors();
                return json(route, "POST", "/update_weights_from_tensor", obj(m("serialized_named_tensors",
                        "[" + str(Base64.getEncoder().encodeToString(bad.getValue())) + "]")), "safetensors: " + bad.getKey(), Expect.REFUSED, admin);
            }
            if (k < 6) {  // flattened bucket manifests
                String meta = pick(List.of(
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [128], \"start_idx\": 0, \"end_idx\": 512}, "
                                + "{\"name\": \"" + LAYER_NORM + "\", \"dtype\": \"float32\", \"shape\": [128], \"start_idx\": 0, \"end_idx\": 512}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [-2, -64], \"start_idx\": 0, \"end_idx\": 512}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [4294967296, 4294967296, 2], \"start_idx\": 0, \"end_idx\": 64}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [128], \"start_idx\": 0, \"end_idx\": 1999999999}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [128], \"start_idx\": -512, \"end_idx\": 0}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"int8\", \"shape\": [512], \"start_idx\": 0, \"end_idx\": 512}]",
                        "[{\"name\": \"" + NORM + "\", \"shape\": [128], \"start_idx\": 0, \"end_idx\": 512}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [64], \"start_idx\": 0, \"end_idx\": 256}]",
                        "{}", "[]", bomb(), "[7]"));
                return json(route, "POST", "/update_weights_from_tensor", obj(m("serialized_named_tensors", "[" + str(b64Norm) + "]",
                        "load_format", "\"flattened_bucket\"", "flattened_bucket_metadata", meta)), "flattened manifest", Expect.REFUSED, admin);
            }
            if (k == 6) {  // CUDA IPC on a CPU server, and bad layouts
                String d = pick(List.of("[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [128], \"ipc_handle\": \"" + Base64.getEncoder().encodeToString(new byte[66]) + "\"}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [-1], \"ipc_handle\": \"AA==\"}]",
                        "[{\"name\": \"" + NORM + "\", \"dtype\": \"float32\", \"shape\": [4294967296, 4294967296, 2], \"stride\": [1, 1, 1], \"ipc_handle\": \"AA==\"}]",
                        "[{\"name\": 1}]", "[]", "\"x\"", bomb()));
                return json(route, "POST", "/update_weights_from_tensor", obj(m("load_format", "\"cuda_ipc\"", "cuda_ipc_tensors", d)), "cuda ipc", Expect.REFUSED, admin);
            }
            // the JSON around the payload
            String[] body = new String[1];
            Map<String, String> valid = m("serialized_named_tensors", pick(List.of("[\"!!!not base64\"]", "[]", "\"" + b64Norm + "\"", "[7]",
                    "[" + str(b64Norm) + ", 1]", "null")), "load_format", pick(List.of("null", "\"safetensors\"", "\"bogus\"", "7")),
                    "weight_version", pick(List.of("\"v\"", "7", "null")), "bucket_seq", pick(NUMBERS));
            String kind = mutate(valid, body);
            return json(route, "POST", "/update_weights_from_tensor", body[0], "push JSON: " + kind, Expect.REFUSED, admin);
        }

        Req pushOctet() {
            String route = "POST /update_weights_from_tensor (octet-stream)";
            Map.Entry<String, byte[]> bad = badSafetensors();
            Map<String, String> h = new LinkedHashMap<>(Map.of("Content-Type", "application/octet-stream"));
            if (r.nextInt(10) != 0) h.put("Authorization", "Bearer " + Http.ADMIN_KEY);
            String query = pick(List.of("", "?weight_version=x", "?bucket_seq=abc", "?bucket_seq=99999999999999999999", "?abort_all_requests=maybe"));
            if (r.nextInt(3) == 0) {  // a Content-Length that claims far more than is sent
                h.put("Content-Length", "" + pick(List.of(1_999_999_999L, 2_147_483_000L, 100_000_000L, 9_999_999_999L)));
                return new Req(route, "octet: claims a huge Content-Length, " + bad.getKey(), "POST", "/update_weights_from_tensor" + query, h,
                        bad.getValue(), true, Expect.REFUSED);
            }
            return new Req(route, "octet: " + bad.getKey(), "POST", "/update_weights_from_tensor" + query, h, bad.getValue(), false, Expect.REFUSED);
        }

        // ---- control routes that change the RL state: only refused forms (the controller sends the valid ones) ----

        Req guardedControl() {
            int k = r.nextInt(13);
            boolean admin = r.nextInt(8) != 0;
            String[] body = new String[1];
            String path, fatalKey = null;
            Map<String, String> base;
            List<String> fatal = null;  // values of fatalKey that are always refused
            switch (k) {
                case 0 -> { path = "/pause_generation"; base = m("mode", "\"abort\""); fatalKey = "mode"; fatal = List.of("\"nope\"", "7", "[]", "\"ABORT\""); }
                case 1 -> { path = "/drain"; base = m("mode", "\"retract\"", "timeout_s", "1"); fatalKey = "timeout_s"; fatal = List.of("1e12", "-1", "3601", "\"x\"", "1e999999999"); }
                case 2 -> { path = "/release_memory_occupation"; base = m("tags", "[\"kv_cache\"]"); fatalKey = "tags"; fatal = List.of("[\"nope\"]", "[1]", "\"weights\"", "{}"); }
                case 3 -> { path = "/resume_memory_occupation"; base = m("tags", "[\"kv_cache\"]"); fatalKey = "tags"; fatal = List.of("[\"nope\"]", "[null]", "7"); }
                case 4 -> { path = "/begin_weight_update"; base = m("update_id", str("fuzz"), "timeout_s", "60"); fatalKey = "timeout_s"; fatal = List.of("1e12", "-1", "0", "\"60\"", "1e999999999", "86401"); }
                case 5 -> { path = "/end_weight_update"; base = m("update_id", str("fuzz-nobody-" + r.nextInt(1000)), "weight_version", str("x")); }
                case 6 -> { path = "/abort_weight_update"; base = m("update_id", str("fuzz-nobody-" + r.nextInt(1000))); }
                case 7 -> { path = "/update_weights_from_disk"; base = m("model_path", pick(List.of(str("/nonexistent"), str("/tmp"), str("/etc/passwd"),
                        str("/tmp/a\u0000b"), str("\u0000"), str(""), str("../../etc"), str("x".repeat(10_000)), "7", "null"))); }
                // a group is never formed here (no trainer): rank_offset 0 is the trainer's rank, and a short deadline bounds the rest
                case 8 -> { path = "/init_weights_update_group"; base = m("rank_offset", "0", "master_address", str("127.0.0.1"), "master_port", "1",
                        "world_size", "2", "backend", str("gloo"), "timeout_s", "0.5"); fatalKey = "rank_offset"; fatal = List.of("0", "-1", "\"x\"", "99", "null"); }
                case 9 -> { path = "/update_weights_from_distributed"; base = m("group_name", str("fuzz-nogroup-" + r.nextInt(100)),
                        "names", "[\"" + NORM + "\"]", "dtypes", "[\"bfloat16\"]", "shapes", "[[64]]"); }
                case 10 -> { path = "/destroy_weights_update_group"; base = m("group_name", str("fuzz-nogroup-" + r.nextInt(100))); }
                case 11 -> { path = "/pull_weights"; base = m("local_checkpoint_dir", str("/tmp/fuzz-local"), "source_dir", str("/tmp/fuzz-src"),
                        "target_version", "1"); }
                default -> { path = "/update_weights_from_disk"; base = m("model_path", str(modelPath + "\u0000")); }
            }
            String route = "POST " + path;
            if (!admin) return json(route, "POST", path, obj(base), "no admin key", Expect.REFUSED, false);
            int how = r.nextInt(5);
            String kind;
            if (fatal != null && how > 0) {
                base.put(fatalKey, pick(fatal));
                body[0] = obj(base);
                kind = "bad " + fatalKey;
            } else if (fatal == null && how > 1) {
                body[0] = obj(base);  // refused by its values: no such update, no such checkpoint
                kind = "refused by its values";
            } else {
                kind = fatalMutation(base, body);
            }
            return json(route, "POST", path, body[0], kind, Expect.REFUSED, true);
        }

        /** Mutations that no route accepts, whatever the body was. */
        String fatalMutation(Map<String, String> base, String[] body) {
            switch (r.nextInt(4)) {
                case 0 -> { String k = base.keySet().iterator().next(); base.put(k, bomb()); body[0] = obj(base); return "depth bomb"; }
                case 1 -> { String full = obj(base); body[0] = full.substring(0, 1 + r.nextInt(full.length() - 1)); return "truncated JSON"; }
                case 2 -> { body[0] = pick(List.of("[1, 2]", "\"x\"", "7", "{\"a\":}", "{'a': 1}")); return "not an object"; }
                default -> { base.put(base.keySet().iterator().next(), "1" + "0".repeat(1001)); body[0] = obj(base); return "number too long"; }
            }
        }

        /** Control calls whose valid forms leave the RL state as it was. */
        Req harmlessControl() {
            int k = r.nextInt(8);
            boolean admin = r.nextInt(6) != 0;
            return switch (k) {
                case 6 -> jsonRoute("POST /post_process_weights", "POST", "/post_process_weights",
                        m("restore_weights_before_load", "false", "post_process_quantization", "false"), admin, 40);
                case 0 -> jsonRoute("POST /continue_generation", "POST", "/continue_generation", m("torch_empty_cache", "true"), admin, 50);
                case 1 -> jsonRoute("POST /flush_cache", "POST", "/flush_cache", m(), admin, 70);
                case 2 -> jsonRoute("POST /update_weight_version", "POST", "/update_weight_version", m("new_version", str("fuzz-" + r.nextInt(100))), admin, 40);
                case 3 -> jsonRoute("POST /abort_request", "POST", "/abort_request", m("rid", str("fuzz-none-" + r.nextInt(1000))), false, 40);
                case 4 -> jsonRoute("POST /weights_checker", "POST", "/weights_checker", m("action", str("checksum")), false, 20);
                case 5 -> {
                    String path = pick(List.of("/release_memory_occupation", "/resume_memory_occupation", "/flush_cache"));
                    // GET release would release everything: only without the admin key
                    boolean key = path.equals("/flush_cache") && admin;
                    Map<String, String> h = key ? Map.of("Authorization", "Bearer " + Http.ADMIN_KEY)
                            : r.nextBoolean() ? Map.of("Authorization", "Bearer wrong") : Map.of();
                    yield new Req("GET " + path, key ? "valid" : "no admin key", "GET", path, h, null, false, key ? Expect.ANY : Expect.REFUSED);
                }
                default -> json("POST /abort_request", "POST", "/abort_request", obj(m("abort_all", "true")), "abort_all without the key", Expect.REFUSED, false);
            };
        }

        // ---- reads ----

        Req gets() {
            String path = pick(List.of("/get_model_info", "/get_server_info", "/server_info", "/v1/loads", "/v1/models", "/v1/models/" + model, "/v1/models/gpt-4",
                    "/v1/models/a/b/c", "/get_weight_version", "/rl/state", "/status", "/", "/index.html", "/status.js", "/status.css",
                    "/health_generate", "/weights_checker", "/nope", "/generate", "/v1", "/index.htm", "/env/nope", "/GET_MODEL_INFO"));
            String route = path.startsWith("/v1/models/") ? "GET /v1/models/{model}"
                    : Set.of("/index.html", "/status.js", "/status.css").contains(path) ? "GET /{file}"
                    : Set.of("/nope", "/v1", "/index.htm", "/env/nope", "/GET_MODEL_INFO").contains(path) ? "* unknown path"
                    : "GET " + path;
            if (path.equals("/weights_checker") && r.nextInt(3) != 0) path = "/get_weight_version";  // a checksum pass costs a step
            if (path.equals("/v1/loads")) path += pick(List.of("", "?include=core", "?include=nope", "?dp_rank=x", "?format=prometheus"));
            if (route.equals("GET /weights_checker") && !path.equals("/weights_checker")) route = "GET /get_weight_version";
            Map<String, String> h = new LinkedHashMap<>();
            if (r.nextInt(5) == 0) h.put("Accept", pick(List.of("text/html", "application/xml", "*/*", "nonsense")));
            return new Req(route, "valid", "GET", path, h, null, false, Expect.ANY);
        }

        Req weightsByName() {
            if (r.nextBoolean()) {
                String q = pick(List.of("name=" + NORM, "name=" + NORM + "&truncate_size=5", "name=model.embed_tokens.weight&truncate_size=2000000",
                        "name=nope", "truncate_size=-1&name=" + NORM, "name=" + NORM + "&truncate_size=abc", "name=" + NORM + "&truncate_size=1e9", ""));
                return new Req("GET /get_weights_by_name", "query " + q, "GET", "/get_weights_by_name?" + q, Map.of(), null, false, Expect.ANY);
            }
            return jsonRoute("POST /get_weights_by_name", "POST", "/get_weights_by_name",
                    m("name", str(pick(List.of(NORM, "model.embed_tokens.weight", "nope"))), "truncate_size", pick(List.of("5", "128", "1048577", "2147483647"))), false, 40);
        }

        Req env() {
            int k = r.nextInt(4);
            return switch (k) {
                case 0 -> new Req("GET /env", "valid", "GET", "/env", Map.of(), null, false, Expect.ANY);
                case 1 -> jsonRoute("POST /env/tasks", "POST", "/env/tasks", m("count", "" + (1 + r.nextInt(5)), "seed", "" + r.nextInt(100)), false, 40);
                case 2 -> {
                    String q = pick(List.of("", "?latency_ms=0", "?latency_ms=5-20", "?latency_ms=999999999", "?latency_ms=-1",
                            "?failure_rate=2", "?failure_rate=-1", "?failure_rate=abc", "?latency_ms=a-b"));
                    Req j = jsonRoute("POST /env/tools/calculator", "POST", "/env/tools/calculator" + q,
                            m("expression", str(pick(List.of("37*91", "1/0", "((((1))))", "9".repeat(40) + "*9", "(".repeat(5000))))), false, 40);
                    Map<String, String> h = new LinkedHashMap<>(j.headers());
                    h.put("Content-Type", "application/json");  // the route consumes JSON only
                    yield new Req(j.route(), j.kind() + (q.isEmpty() ? "" : " " + q), j.method(), j.path(), h, j.body(), false, j.expect());
                }
                default -> jsonRoute("POST /env/reward", "POST", "/env/reward", m("question", str("What is 37*91?"), "response", str("3367")), false, 40);
            };
        }

        // ---- what HttpClient will not send: malformed URIs, lying headers ----

        Req rawRequest() {
            int k = r.nextInt(10);
            Map<String, String> h = new LinkedHashMap<>();
            return switch (k) {
                case 0 -> new Req("GET /metrics", "bad query", "GET", "/metrics?" + pick(List.of("%%%", "%zz", "scope=%", "a=\"b\"")), h, null, true, Expect.ANY);
                case 1 -> new Req("POST /generate", "bad query", "POST", "/generate?" + pick(List.of("%%%", "a=%4", "x=\"y\"", "x=<y>")),
                        Map.of("Content-Type", "application/json"), "{\"input_ids\": [1, 2], \"sampling_params\": {\"max_new_tokens\": 1}}".getBytes(StandardCharsets.UTF_8), true, Expect.REFUSED);
                case 2 -> new Req("GET /get_weights_by_name", "bad query", "GET", "/get_weights_by_name?name=%%%&truncate_size=%zz", h, null, true, Expect.REFUSED);
                case 3 -> new Req("* unknown path", "bad path", "GET", pick(List.of("/generate%00", "/v1/models/%%%", "/..%2f..%2fetc/passwd",
                        "/get_model_info%", "//get_model_info", "/env/../status", "/status/..;/x", "/" + "a".repeat(20_000))), h, null, true, Expect.ANY);
                case 4 -> {  // JSON routes with a Content-Length far above what is sent
                    h.put("Content-Type", "application/json");
                    h.put("Content-Length", "" + pick(List.of(1_999_999_999L, 16_777_217L, 100L)));
                    String path = pick(List.of("/generate", "/tokenize", "/v1/chat/completions", "/env/tasks"));
                    yield new Req("POST " + path, "claims a huge Content-Length", "POST", path, h, "{\"input_ids\": [1".getBytes(StandardCharsets.UTF_8), true, Expect.ANY);
                }
                case 5 -> {
                    h.put("Content-Type", "application/json");
                    h.put("Content-Length", pick(List.of("-1", "abc", "99999999999999999999", "1, 2")));
                    yield new Req("POST /generate", "bad Content-Length", "POST", "/generate", h, "{}".getBytes(StandardCharsets.UTF_8), true, Expect.ANY);
                }
                case 6 -> {
                    h.put("Transfer-Encoding", "chunked");
                    h.put("Content-Type", "application/json");
                    yield new Req("POST /generate", "bad chunked body", "POST", "/generate", h,
                            pick(List.of("zz\r\n{}\r\n0\r\n\r\n", "5\r\n{}\r\n", "ffffffffffff\r\n{}")).getBytes(StandardCharsets.ISO_8859_1), true, Expect.ANY);
                }
                case 7 -> {
                    h.put("Authorization", pick(List.of("Bearer " + "k".repeat(10_000), "Bearer", "Basic Zm9vOmJhcg==", "Bearer \u00ff\u00fe")));
                    yield new Req("POST /pause_generation", "bad Authorization", "POST", "/pause_generation", h, "{\"mode\": \"abort\"}".getBytes(StandardCharsets.UTF_8), true, Expect.REFUSED);
                }
                case 8 -> {  // invalid UTF-8 and a raw NUL in a JSON body
                    h.put("Content-Type", "application/json");
                    byte[] b = {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xff, (byte) 0xfe, 0, '"', '}'};
                    yield new Req("POST /generate", "invalid UTF-8 and NUL", "POST", "/generate", h, b, true, Expect.ANY);
                }
                default -> new Req("* unknown path", "bad method", pick(List.of("DELETE", "PATCH", "TRACE", "OPTIONS")), "/generate", h, null, true, Expect.ANY);
            };
        }

        /**
         * SGLang's sessions: opening and closing (by POST and, as SGLang's routes take both, by GET
         * with a body) and turns of /generate in them. Sessions are opened under a few names that
         * the run closes at its end; one whose name a mutation drops or changes keeps its idle
         * timeout, so that nothing the fuzz opens outlives it for long.
         */
        Req sessions() {
            String method = r.nextBoolean() ? "POST" : "GET";
            String id = str(SESSION_PREFIX + r.nextInt(SESSIONS));
            int k = r.nextInt(10);
            if (k < 4) return jsonRoute(method + " /open_session", method, "/open_session", m("capacity_of_str_len", "" + (16 + r.nextInt(256)),
                    "session_id", id, "timeout", "" + SESSION_TIMEOUT_S), false, 40);
            if (k < 6) return jsonRoute(method + " /close_session", method, "/close_session", m("session_id", id), false, 50);
            if (k == 6) return json(method + " /open_session", method, "/open_session", obj(m("capacity_of_str_len", "64", "session_id", id,
                    "timeout", "" + SESSION_TIMEOUT_S, pick(List.of("streaming", "capacity_of_str_len", "timeout")),
                    pick(List.of("true", "1e12", "-1", "1e999999999", "0")))), "odd open value", Expect.ANY, false);
            // a turn: a new root of the session, or a continuation of a request it may or may not have
            String params = obj(m("id", id, "rid", r.nextBoolean() ? "null" : str("fuzz-turn-" + r.nextInt(20)),
                    "offset", pick(List.of("0", "-1", "3")), "replace", r.nextBoolean() ? "true" : "false"));
            Map<String, String> body = m("input_ids", ids(1 + r.nextInt(12)), "sampling_params", sampling(), "session_params", params,
                    "rid", str("fuzz-turn-" + r.nextInt(20)));
            if (r.nextInt(4) == 0) body.put("stream", "true");
            return jsonRoute("POST /generate", "POST", "/generate", body, false, 50);
        }

        Req liberty() {
            String path = pick(List.of("/health", "/health/ready", "/health/live", "/health/started", "/metrics", "/metrics?scope=base"));
            return new Req("GET " + (path.startsWith("/metrics") ? "/metrics" : path), "valid", "GET", path, Map.of(), null, false, Expect.ANY);
        }
    }

    // ---- the summary -----------------------------------------------------------------------------

    static final class Summary {
        final List<Outcome> all;
        final List<Outcome> serverErrors = new ArrayList<>(), timeouts = new ArrayList<>(), unexpected = new ArrayList<>();
        final Map<String, Integer> byStatus = new TreeMap<>(), byRoute = new TreeMap<>();
        int healthDown, closed;

        Summary(List<Outcome> all) {
            this.all = all;
            for (Outcome o : all) {
                byStatus.merge(o.status() == -1 ? "timeout" : o.status() == 0 ? "closed" : String.valueOf(o.status()), 1, Integer::sum);
                byRoute.merge(o.req().route(), 1, Integer::sum);
                boolean down = o.status() == 503 && o.req().route().startsWith("GET /health") && o.body().contains("\"DOWN\"");
                if (down) healthDown++;
                else if (o.status() >= 500) serverErrors.add(o);
                if (o.status() == -1 || o.micros() > QUEUE_BOUND.toNanos() / 1000) timeouts.add(o);
                if (o.status() == 0) closed++;
                if (o.req().expect() == Expect.REFUSED && o.status() >= 200 && o.status() < 300) unexpected.add(o);
            }
        }

        boolean coveredEveryRoute() {
            return missingRoutes().isEmpty();
        }

        Set<String> missingRoutes() {
            Set<String> missing = new TreeSet<>(ROUTES);
            missing.removeAll(byRoute.keySet());
            return missing;
        }

        String first(List<Outcome> os) {
            StringBuilder b = new StringBuilder();
            for (Outcome o : os.subList(0, Math.min(5, os.size())))
                b.append("\n  ").append(o.req().method()).append(' ').append(abbreviate(o.req().path())).append(" [").append(o.req().kind())
                        .append("] -> ").append(o.status()).append(' ').append(abbreviate(o.body()));
            return b.toString();
        }

        void print(double seconds, long rss0, List<long[]> rss, ConcurrentLinkedQueue<String> controlFailures) {
            System.out.printf("fuzz: seed %d, %d requests from %d threads in %.1f s (%.0f/s)%n", SEED, all.size(), THREADS, seconds, all.size() / seconds);
            System.out.println("fuzz: by status " + byStatus + "; health DOWN (503 by MicroProfile Health) " + healthDown
                    + "; closed without an answer " + closed + "; 5xx " + serverErrors.size() + "; over " + QUEUE_BOUND.toSeconds() + " s "
                    + timeouts.size() + "; broken expectations " + unexpected.size() + "; control failures " + controlFailures.size());
            System.out.println("fuzz: by route " + byRoute);
            Map<String, int[]> kinds = new TreeMap<>();
            for (Outcome o : all) {
                int[] c = kinds.computeIfAbsent(o.req().kind().replaceAll(" [?].*", ""), k -> new int[3]);
                c[o.status() >= 200 && o.status() < 300 ? 0 : o.status() >= 400 && o.status() < 500 ? 1 : 2]++;
            }
            StringBuilder k = new StringBuilder("fuzz: mutations [2xx, 4xx, other]:");
            kinds.forEach((name, c) -> k.append(' ').append(name).append('=').append(c[0]).append('/').append(c[1]).append('/').append(c[2]).append(';'));
            System.out.println(k);
            System.out.println("fuzz: slowest:");
            all.stream().sorted(Comparator.comparingLong(Outcome::micros).reversed()).limit(10).forEach(o -> System.out.printf(
                    "  %7.0f ms %3d %s %s [%s]%n", o.micros() / 1000.0, o.status(), o.req().method(), abbreviate(o.req().path()), o.req().kind()));
            long peak = rss.stream().mapToLong(p -> p[1]).max().orElse(0);
            StringBuilder series = new StringBuilder();
            for (int i = 0; i < rss.size(); i += Math.max(1, rss.size() / 12)) series.append(' ').append(rss.get(i)[0] / 1000).append("s:").append(rss.get(i)[1] >> 20);
            System.out.printf("fuzz: server RSS %d MiB before, peak %d MiB, end %d MiB (bound %d MiB); MiB over time:%s%n", rss0 >> 20,
                    peak >> 20, rss.isEmpty() ? 0 : rss.get(rss.size() - 1)[1] >> 20, rssBound >> 20, series);
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    /** The processes whose resident memory is measured: -Dfuzz.pids, else the IT server from its pid file. */
    static List<Long> serverPids() throws IOException {
        String given = System.getProperty("fuzz.pids", "");
        List<Long> pids = new ArrayList<>();
        if (!given.isBlank()) {
            for (String p : given.split(",")) pids.add(Long.parseLong(p.trim()));
            return pids;
        }
        Path pidFile = Path.of(System.getProperty("it.server.dir", "target/liberty/wlp/usr/servers/itServer")).getParent()
                .resolve(".pid/itServer.pid");
        if (Files.exists(pidFile)) pids.add(Long.parseLong(Files.readString(pidFile).trim()));
        return pids;
    }

    static long rss(List<Long> pids) {
        long sum = 0;
        for (long pid : pids) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status")))
                    if (line.startsWith("VmRSS:")) sum += Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            } catch (IOException gone) {
                // the process ended: nothing resident
            }
        }
        return sum;
    }

    /** The server's -Xmx, from MicroProfile's base metrics. */
    static long heapCap() {
        for (String line : Http.get("/metrics?scope=base").body().split("\n"))
            if (line.startsWith("memory_maxHeap_bytes")) return (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        throw new AssertionError("no memory_maxHeap_bytes in /metrics?scope=base");
    }

    static String abbreviate(String s) {
        String one = s.replaceAll("\\s+", " ");
        return one.length() <= 160 ? one : one.substring(0, 160) + "...";
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
