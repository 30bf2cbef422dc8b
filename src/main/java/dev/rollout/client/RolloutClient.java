package dev.rollout.client;

import dev.rollout.safetensors.SafetensorsWriter;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonValue;
import jakarta.json.spi.JsonProvider;
import java.io.IOException;
import java.io.StringReader;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Consumer;
import java.util.function.IntFunction;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A trainer's or an environment's handle on one rollout server (this one, or any server with
 * SGLang's HTTP API for what it uses) over HTTP: readiness, generation (blocking, asynchronous,
 * streamed), weight pushes (one file, or buckets as an atomic update) and the served version,
 * pause and continue, memory release and resume, abort, flush and the RL state. The JDK's
 * HttpClient and JSON-P only; nothing of the server.
 *
 * <p>Every failure is a {@link RolloutClientException} whose message names the server, the call
 * and the cause. Calls that may be repeated safely are retried on a lost connection: reads, and
 * the buckets of an atomic update, which carry an idempotency key (update id and bucket number) so
 * that a bucket the server already applied is not applied twice. A single push outside a session
 * and generation are not retried.
 */
public final class RolloutClient implements AutoCloseable {
    /**
     * @param requestTimeout  how long one call may take (a generation, a push)
     * @param apiKey          the server's {@code rollout.api-key}, or null
     * @param adminApiKey     its {@code rollout.admin-api-key} for control calls (pushes), or null
     * @param retries         further tries of a retryable call after a lost connection
     */
    public record Options(Duration requestTimeout, String apiKey, String adminApiKey, int retries) {
        public static Options defaults() {
            return new Options(Duration.ofMinutes(10), null, null, 2);
        }

        public Options withAdminApiKey(String key) {
            return new Options(requestTimeout, apiKey, key, retries);
        }
    }

    /** Looked up once: each {@code Json.createX} call would search the service loader again. */
    private static final JsonProvider JSON = JsonProvider.provider();

    private final URI base;
    private final Options options;
    private final HttpClient http;
    private final ServerProcess owned;  // the server this client started, or null

    private RolloutClient(URI base, Options options, ServerProcess owned) {
        String s = base.toString();
        this.base = URI.create(s.endsWith("/") ? s.substring(0, s.length() - 1) : s);
        this.options = options;
        this.owned = owned;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    }

    public static RolloutClient connect(URI base) {
        return connect(base, Options.defaults());
    }

    public static RolloutClient connect(URI base, Options options) {
        return new RolloutClient(base, options, null);
    }

    /**
     * Starts a server process ({@link ServerProcess.Spec#liberty}, {@link ServerProcess.Spec#distribution})
     * and returns a client of it once it is ready; {@link #close()} stops the server.
     */
    public static RolloutClient launch(ServerProcess.Spec spec, Options options) {
        ServerProcess server = ServerProcess.start(spec);
        return new RolloutClient(server.url(), options, server);
    }

    /** The server process this client started, or null when it connected to a running server. */
    public ServerProcess serverProcess() {
        return owned;
    }

    /** Stops the server if this client started it; a connected client has nothing to release. */
    @Override
    public void close() {
        if (owned != null) owned.close();
    }

    /** Waits until the server reports ready (/health/ready), polling; throws once {@code timeout} has passed. */
    public void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        String last = "no answer yet";
        while (true) {
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(uri("/health/ready")).timeout(Duration.ofSeconds(5)).GET().build(),
                        HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) return;
                last = "status " + r.statusCode();
            } catch (IOException e) {
                last = e.toString();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw failure("GET /health/ready", 0, "interrupted", e);
            }
            if (System.nanoTime() > deadline)
                throw failure("GET /health/ready", 0, "not ready after " + timeout.toSeconds() + " s (last: " + last + ")", null);
            sleep(250);
        }
    }

    /** Generates from token ids, with each output token's logprob; blocks until done. */
    public Generation generate(int[] inputIds, Sampling sampling) {
        return generation(call("POST", "/generate", generateBody(inputIds, sampling), false, false));
    }

    /** {@link #generate} without blocking: many rollouts in flight over one client. */
    public CompletableFuture<Generation> generateAsync(int[] inputIds, Sampling sampling) {
        return callAsync("POST", "/generate", generateBody(inputIds, sampling)).thenApply(RolloutClient::generation);
    }

    /**
     * Generates as {@link #generate} does, handing each streamed snapshot (everything so far, as
     * SGLang streams) to {@code onChunk} as it arrives; returns the finished generation.
     */
    public Generation stream(int[] inputIds, Sampling sampling, Consumer<Generation> onChunk) {
        JsonObject body = JSON.createObjectBuilder(generateBody(inputIds, sampling)).add("stream", true).build();
        HttpRequest req = request("POST", "/generate", body, false);
        String what = "POST /generate (stream)";
        Generation last = null;
        try {
            HttpResponse<Stream<String>> r = http.send(req, HttpResponse.BodyHandlers.ofLines());
            if (r.statusCode() >= 400) {
                String text;
                try (Stream<String> lines = r.body()) {
                    text = lines.collect(Collectors.joining("\n"));
                }
                answer(what, new StringResponse(r, text));  // throws the server's refusal
            }
            try (Stream<String> lines = r.body()) {
                for (String line : (Iterable<String>) lines::iterator) {
                    if (!line.startsWith("data: ") || line.equals("data: [DONE]")) continue;
                    JsonObject chunk;
                    try (var reader = JSON.createReader(new StringReader(line.substring(6)))) {
                        chunk = reader.readObject();
                    }
                    if (chunk.get("error") instanceof JsonObject err) throw failure(what, 0, err.getString("message", ""), null);
                    last = generation(chunk);
                    onChunk.accept(last);
                }
            }
        } catch (IOException e) {
            throw failure(what, 0, e.toString(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw failure(what, 0, "interrupted", e);
        }
        if (last == null || last.finishReason() == null) throw failure(what, 0, "the stream ended before the generation did", null);
        return last;
    }

    /** How many tensor-parallel ranks hold the served model ({@code tp_size} of {@code /server_info}): each is a rank of a weight-update group. */
    public int tpSize() {
        return call("GET", "/server_info", null, false, true).getInt("tp_size");
    }

    /** The weight version the server serves now. */
    public String weightVersion() {
        return call("GET", "/get_weight_version", null, false, true).getString("weight_version");
    }

    /**
     * Pushes a safetensors file's tensors (any subset of the model's parameters, by their Hugging
     * Face names) as one update outside a session, SGLang's semantics: they serve from the next
     * step on, stamped {@code weightVersion}.
     */
    public PushResult pushWeights(byte[] safetensors, String weightVersion) {
        return pushResult(push(safetensors, "?weight_version=" + enc(weightVersion), false));
    }

    /**
     * Pushes buckets of tensors as one atomic update: nothing of it serves until every bucket has
     * arrived, then all of it does, as {@code weightVersion}. A failed bucket rolls the update
     * back on the server before the exception comes.
     */
    public PushResult pushWeights(List<byte[]> buckets, String weightVersion) {
        return pushSession(buckets.size(), buckets::get, weightVersion);
    }

    /**
     * Pushes named tensors (Hugging Face names, raw little-endian bytes) in safetensors buckets of
     * at most {@code bucketBytes} of tensor data each: one update when they fit in one bucket, an
     * atomic session of buckets (as {@link #pushWeights(List, String)}) when they do not. Each
     * bucket is encoded as it is sent, so a model is never held twice over.
     */
    public PushResult pushTensors(Map<String, SafetensorsWriter.Tensor> tensors, long bucketBytes, String weightVersion) {
        WeightBuckets buckets = WeightBuckets.of(tensors, bucketBytes);
        return buckets.size() == 1 ? pushWeights(buckets.encode(0), weightVersion)
                : pushSession(buckets.size(), buckets::encode, weightVersion);
    }

    private PushResult pushSession(int count, IntFunction<byte[]> bucket, String weightVersion) {
        UpdateSession session = beginWeightUpdate();
        try {
            for (int i = 0; i < count; i++) session.pushBucket(bucket.apply(i));
            return session.commit(weightVersion);
        } catch (RolloutClientException e) {
            try {
                session.abort();
            } catch (RolloutClientException rollback) {
                e.addSuppressed(rollback);
            }
            throw e;
        }
    }

    /**
     * Starts an atomic weight update: buckets pushed into it are held by the server and serve
     * together on {@link UpdateSession#commit}, or not at all. For pushers that make each bucket
     * only as the previous one is sent ({@link #pushWeights(List, String)} takes them all at once).
     */
    public UpdateSession beginWeightUpdate() {
        String id = "client-" + UUID.randomUUID();
        call("POST", "/begin_weight_update", JSON.createObjectBuilder().add("update_id", id).build(), true, false);
        return new UpdateSession(id);
    }

    /** An atomic weight update in progress; closed uncommitted, it is rolled back on the server. */
    public final class UpdateSession implements AutoCloseable {
        private final String id;
        private int buckets;
        private boolean ended;

        private UpdateSession(String id) {
            this.id = id;
        }

        /** Sends one safetensors bucket (one HTTP update); a retried bucket reuses its sequence number. */
        public void pushBucket(byte[] safetensors) {
            if (ended) throw new IllegalStateException("update " + id + " has ended");
            push(safetensors, "?update_id=" + enc(id) + "&bucket_seq=" + buckets, true);
            buckets++;
        }

        /** Makes every bucket serve, stamped {@code weightVersion}. */
        public PushResult commit(String weightVersion) {
            PushResult r = pushResult(call("POST", "/end_weight_update",
                    JSON.createObjectBuilder().add("update_id", id).add("weight_version", weightVersion).build(), true, true));
            ended = true;
            return r;
        }

        /** Drops the buckets sent so far; the served weights stay as they were. */
        public void abort() {
            if (ended) return;
            ended = true;
            call("POST", "/abort_weight_update", JSON.createObjectBuilder().add("update_id", id).build(), true, true);
        }

        /** Buckets sent so far. */
        public int buckets() {
            return buckets;
        }

        @Override
        public void close() {
            abort();
        }
    }

    /** A tensor a trainer broadcasts on a weight-update group: its name, torch's dtype name ("bfloat16") and shape. */
    public record BroadcastTensor(String name, String dtype, long[] shape) {}

    /**
     * Asks the server to join a weight-update group (SGLang's init_weights_update_group) as rank
     * {@code rankOffset} of {@code worldSize}. The server answers only once every rank has met,
     * so the trainer forms its own side (rank 0, which hosts the rendezvous at
     * {@code masterAddress:masterPort}) while this call is in flight. {@code backend}: "nccl" or
     * "gloo". {@code timeout}, if not null, is the group's deadline on the server: for forming
     * it and for each push on it (else the server's rollout.weight-group-timeout-seconds).
     */
    public CompletableFuture<JsonObject> initWeightsUpdateGroup(String masterAddress, int masterPort, int rankOffset, int worldSize,
                                                                String groupName, String backend, Duration timeout) {
        var body = JSON.createObjectBuilder().add("master_address", masterAddress).add("master_port", masterPort)
                .add("rank_offset", rankOffset).add("world_size", worldSize).add("group_name", groupName).add("backend", backend);
        if (timeout != null) body.add("timeout_s", timeout.toMillis() / 1000.0);
        return callAsync("POST", "/init_weights_update_group", body.build(), true);
    }

    /**
     * Announces a push over a weight-update group (SGLang's update_weights_from_distributed):
     * the server receives while the trainer's rank 0 broadcasts each tensor, in this order; the
     * answer comes once they are applied, stamped {@code weightVersion} (null keeps the version).
     */
    public CompletableFuture<PushResult> updateWeightsFromDistributed(String groupName, List<BroadcastTensor> tensors, String weightVersion) {
        var names = JSON.createArrayBuilder();
        var dtypes = JSON.createArrayBuilder();
        var shapes = JSON.createArrayBuilder();
        for (BroadcastTensor t : tensors) {
            names.add(t.name());
            dtypes.add(t.dtype());
            var shape = JSON.createArrayBuilder();
            for (long d : t.shape()) shape.add(d);
            shapes.add(shape);
        }
        var body = JSON.createObjectBuilder().add("names", names).add("dtypes", dtypes).add("shapes", shapes).add("group_name", groupName);
        if (weightVersion != null) body.add("weight_version", weightVersion);
        return callAsync("POST", "/update_weights_from_distributed", body.build(), true).thenApply(RolloutClient::pushResult);
    }

    /** Leaves a weight-update group (SGLang's destroy_weights_update_group). */
    public void destroyWeightsUpdateGroup(String groupName) {
        call("POST", "/destroy_weights_update_group", JSON.createObjectBuilder().add("group_name", groupName).build(), true, false);
    }

    /** Loads a checkpoint directory the server can read (SGLang's update_weights_from_disk). */
    public PushResult updateWeightsFromDisk(String modelPath, String weightVersion) {
        return pushResult(call("POST", "/update_weights_from_disk",
                JSON.createObjectBuilder().add("model_path", modelPath).add("weight_version", weightVersion).build(), true, false));
    }

    /**
     * Stops generation (SGLang's pause_generation): {@code mode} "abort" ends what runs with its
     * partial output, "retract" requeues it to be recomputed, "in_place" keeps it; new requests
     * wait until {@link #continueGeneration}. Returns how many requests it touched.
     */
    public int pauseGeneration(String mode) {
        return call("POST", "/pause_generation", JSON.createObjectBuilder().add("mode", mode).build(), true, false)
                .getInt("affected_requests", 0);
    }

    public void continueGeneration() {
        call("POST", "/continue_generation", JsonValue.EMPTY_JSON_OBJECT, true, true);
    }

    /**
     * Frees device memory for the trainer (SGLang's release_memory_occupation); {@code tags} among
     * "weights", "kv_cache", "cuda_graph", none for all. Returns the bytes freed per tag; the call
     * returns once the memory is free.
     */
    public Map<String, Long> releaseMemory(String... tags) {
        JsonObject freed = call("POST", "/release_memory_occupation", tagsBody(tags), true, false).getJsonObject("freed_bytes");
        Map<String, Long> out = new LinkedHashMap<>();
        if (freed != null) freed.forEach((k, v) -> out.put(k, ((JsonNumber) v).longValue()));
        return out;
    }

    /** Takes the memory back; returns true when the weights must be pushed again before serving. */
    public boolean resumeMemory(String... tags) {
        return call("POST", "/resume_memory_occupation", tagsBody(tags), true, false).getBoolean("weights_must_be_pushed", false);
    }

    /**
     * SGLang's drain: waits, for up to {@code timeout}, until no request runs or waits, holding
     * nothing back and leaving the server as it was; {@link DrainResult#success()} says whether
     * it got there. POST /drain.
     */
    public DrainResult drain(Duration timeout) {
        return drain(timeout, "wait");
    }

    /**
     * Ours: holds new requests back, lets what runs finish for up to {@code timeout}, then cuts
     * the rest: {@code mode} "retract" requeues them (they finish after {@link
     * #continueGeneration}), "abort" ends them with their partial output; leaves the server
     * paused. "wait" is {@link #drain(Duration)}. POST /drain.
     */
    public DrainResult drain(Duration timeout, String mode) {
        // a drain that ran out of time answers 200 with success false: an outcome, not a refusal
        JsonObject o = send("POST /drain", request("POST", "/drain", JSON.createObjectBuilder().add("timeout", timeout.toMillis() / 1000.0)
                .add("mode", mode).build(), true), false, true);
        List<String> finished = o.getJsonArray("finished").getValuesAs(JsonValue.class).stream()
                .map(v -> ((jakarta.json.JsonString) v).getString()).toList();
        Map<String, int[]> cut = new LinkedHashMap<>();
        for (JsonObject c : o.getJsonArray("cut").getValuesAs(JsonObject.class))
            cut.put(c.getString("rid"), c.getJsonArray("output_ids").getValuesAs(JsonNumber.class).stream()
                    .mapToInt(JsonNumber::intValue).toArray());
        return new DrainResult(o.getBoolean("success"), o.getInt("remaining_requests"), finished, cut, o.getString("mode"),
                o.getBoolean("paused"));
    }

    /** Aborts every running and waiting request; each caller gets its partial output. */
    public void abortAll() {
        call("POST", "/abort_request", JSON.createObjectBuilder().add("abort_all", true).build(), true, true);
    }

    /** Empties the prefix cache (SGLang's flush_cache). */
    public void flushCache() {
        call("POST", "/flush_cache", null, true, true);
    }

    /** {@code text} as the served model's tokenizer encodes it, special tokens included (POST /tokenize). */
    public int[] tokenize(String text) {
        return tokens(call("POST", "/tokenize", tokenizeBody(text), false, true));
    }

    /** {@link #tokenize} without blocking, for agent loops appending an environment's answer. */
    public CompletableFuture<int[]> tokenizeAsync(String text) {
        return callAsync("POST", "/tokenize", tokenizeBody(text)).thenApply(RolloutClient::tokens);
    }

    /**
     * A conversation as the served model's chat template renders it, with an open assistant turn,
     * tokenized (POST /tokenize with messages): the prompt {@code /v1/chat/completions} would run.
     * {@code tools} in OpenAI's function format, or empty.
     */
    public CompletableFuture<int[]> tokenizeChatAsync(List<JsonObject> messages, List<JsonObject> tools) {
        JsonArrayBuilder m = JSON.createArrayBuilder(), t = JSON.createArrayBuilder();
        messages.forEach(m::add);
        tools.forEach(t::add);
        JsonObjectBuilder body = JSON.createObjectBuilder().add("messages", m).add("add_generation_prompt", true);
        if (!tools.isEmpty()) body.add("tools", t);
        return callAsync("POST", "/tokenize", body.build()).thenApply(RolloutClient::tokens);
    }

    /** {@link #tokenizeChatAsync}, waiting for the answer. */
    public int[] tokenizeChat(List<JsonObject> messages, List<JsonObject> tools) {
        return tokenizeChatAsync(messages, tools).join();
    }

    /** A call without blocking and without retries: its answer, or the failure naming server, call and cause. */
    private CompletableFuture<JsonObject> callAsync(String method, String path, JsonObject body) {
        return callAsync(method, path, body, false);
    }

    private CompletableFuture<JsonObject> callAsync(String method, String path, JsonObject body, boolean admin) {
        String what = method + " " + path;
        return http.sendAsync(request(method, path, body, admin), HttpResponse.BodyHandlers.ofString()).handle((r, e) -> {
            if (e != null) throw new CompletionException(failure(what, 0, cause(e).toString(), cause(e)));
            return answer(what, r);
        });
    }

    private static JsonObject tokenizeBody(String text) {
        return JSON.createObjectBuilder().add("prompt", text).build();
    }

    private static int[] tokens(JsonObject answer) {
        return answer.getJsonArray("tokens").getValuesAs(JsonNumber.class).stream().mapToInt(JsonNumber::intValue).toArray();
    }

    /** The text of {@code ids} (POST /detokenize). */
    public String detokenize(int[] ids, boolean skipSpecialTokens) {
        var a = JSON.createArrayBuilder();
        for (int id : ids) a.add(id);
        return call("POST", "/detokenize", JSON.createObjectBuilder().add("tokens", a).add("skip_special_tokens", skipSpecialTokens)
                .build(), false, true).getString("text");
    }

    /** The RL state: "serving", "paused", "draining", "updating" or "released" (GET /rl/state). */
    public String rlState() {
        return call("GET", "/rl/state", null, false, true).getString("state");
    }

    private static JsonObject tagsBody(String... tags) {
        if (tags.length == 0) return JSON.createObjectBuilder().addNull("tags").build();
        var a = JSON.createArrayBuilder();
        for (String t : tags) a.add(t);
        return JSON.createObjectBuilder().add("tags", a).build();
    }

    private JsonObject push(byte[] safetensors, String query, boolean retry) {
        HttpRequest req = request("POST", "/update_weights_from_tensor" + query, "application/octet-stream",
                HttpRequest.BodyPublishers.ofByteArray(safetensors), true);
        return send("POST /update_weights_from_tensor", req, retry, false);
    }

    private static JsonObject generateBody(int[] inputIds, Sampling s) {
        var ids = JSON.createArrayBuilder();
        for (int id : inputIds) ids.add(id);
        JsonObjectBuilder sp = JSON.createObjectBuilder().add("max_new_tokens", s.maxNewTokens()).add("temperature", s.temperature())
                .add("top_p", s.topP()).add("top_k", s.topK()).add("ignore_eos", s.ignoreEos());
        if (s.seed() != null) sp.add("seed", s.seed());
        return JSON.createObjectBuilder().add("input_ids", ids).add("sampling_params", sp).add("return_logprob", true).build();
    }

    private static Generation generation(JsonObject o) {
        JsonArray ids = o.getJsonArray("output_ids");
        int[] out = new int[ids.size()];
        for (int i = 0; i < out.length; i++) out[i] = ids.getInt(i);
        JsonObject meta = o.getJsonObject("meta_info");
        JsonArray lps = meta.getJsonArray("output_token_logprobs");  // [[logprob, id, text], ...]
        float[] logprobs = new float[lps == null ? 0 : lps.size()];
        for (int i = 0; i < logprobs.length; i++) {
            JsonValue v = lps.getJsonArray(i).get(0);
            logprobs[i] = v instanceof JsonNumber n ? (float) n.doubleValue() : Float.NaN;
        }
        JsonValue reason = meta.get("finish_reason");
        String finish = reason instanceof JsonObject r ? r.getString("type", null) : null;
        return new Generation(out, logprobs, o.containsKey("text") ? o.getString("text") : null, finish,
                meta.getString("weight_version", null), meta.getInt("prompt_tokens", -1));
    }

    private static PushResult pushResult(JsonObject o) {
        return new PushResult(o.getString("weight_version", null), o.getInt("num_tensors", 0),
                o.containsKey("bytes") ? o.getJsonNumber("bytes").longValue() : 0,
                o.containsKey("seconds") ? o.getJsonNumber("seconds").doubleValue() : 0);
    }

    private JsonObject call(String method, String path, JsonObject body, boolean admin, boolean retry) {
        return send(method + " " + path, request(method, path, body, admin), retry, false);
    }

    private HttpRequest request(String method, String path, JsonObject body, boolean admin) {
        return body == null ? request(method, path, null, HttpRequest.BodyPublishers.noBody(), admin)
                : request(method, path, "application/json", HttpRequest.BodyPublishers.ofString(body.toString()), admin);
    }

    private HttpRequest request(String method, String path, String contentType, HttpRequest.BodyPublisher body, boolean admin) {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri(path)).timeout(options.requestTimeout()).headers(auth(admin));
        if (contentType != null) b.header("Content-Type", contentType);
        return b.method(method, body).build();
    }

    /**
     * Sends, retrying a lost connection up to {@code options.retries()} times when {@code retry}.
     * {@code successIsOutcome}: a 200 whose {@code success} is false is an answer (a drain that ran
     * out of time), not a refusal.
     */
    private JsonObject send(String what, HttpRequest req, boolean retry, boolean successIsOutcome) {
        for (int attempt = 0; ; attempt++) {
            try {
                HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
                return answer(what, new StringResponse(r, r.body()), successIsOutcome);
            } catch (IOException e) {
                if (!retry || attempt >= options.retries()) throw failure(what, 0, e.toString(), e);
                sleep(200L << attempt);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw failure(what, 0, "interrupted", e);
            }
        }
    }

    /** A streamed answer's status with its body read as text (to report a refusal). */
    private record StringResponse(int statusCode, String body) {
        StringResponse(HttpResponse<?> r, String body) {
            this(r.statusCode(), body);
        }
    }

    /** The answer's JSON, or the server's refusal as an exception. */
    private JsonObject answer(String what, HttpResponse<String> r) {
        return answer(what, new StringResponse(r, r.body()));
    }

    private JsonObject answer(String what, StringResponse r) {
        return answer(what, r, false);
    }

    private JsonObject answer(String what, StringResponse r, boolean successIsOutcome) {
        JsonObject o;
        try (var reader = JSON.createReader(new StringReader(r.body()))) {
            o = reader.readObject();
        } catch (RuntimeException e) {
            // some answers are text (flush_cache's "Cache flushed.") or empty (abort_request)
            if (r.statusCode() < 400) return JsonValue.EMPTY_JSON_OBJECT;
            throw failure(what, r.statusCode(), abbreviate(r.body()), null);
        }
        boolean refused = r.statusCode() >= 400 || (!successIsOutcome && o.containsKey("success") && !o.getBoolean("success", true));
        if (refused) {
            String message = o.containsKey("message") ? o.getString("message", "")
                    : o.get("error") instanceof JsonObject err ? err.getString("message", "") : abbreviate(r.body());
            throw failure(what, r.statusCode(), message, null);
        }
        return o;
    }

    /**
     * The key a call needs (the admin key for control calls where one is set, else the API key),
     * after an Accept of anything: most answers are JSON, a few text (flush_cache).
     */
    private String[] auth(boolean admin) {
        String key = admin && options.adminApiKey() != null ? options.adminApiKey() : options.apiKey();
        return key == null ? new String[] {"Accept", "*/*"} : new String[] {"Accept", "*/*", "Authorization", "Bearer " + key};
    }

    private URI uri(String path) {
        return URI.create(base + path);
    }

    private RolloutClientException failure(String what, int status, String cause, Throwable t) {
        String s = status == 0 ? "" : " (" + status + ")";
        return new RolloutClientException(base + ": " + what + " failed" + s + ": " + cause, status, t);
    }

    private static Throwable cause(Throwable e) {
        return e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    private static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "…";
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
