package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.RolloutClient;
import dev.rollout.client.ServerProcess;
import dev.rollout.dist.C10d;
import dev.rollout.engine.LlmEngine;
import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.Safetensors;
import dev.rollout.model.ShardOnly;
import dev.rollout.trainer.WeightBroadcaster;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A server with the model in tensor-parallel shards: rank 0 is the Liberty server, which starts
 * its other ranks as worker processes over gloo. Qwen2 and Llama checkpoints must generate at
 * several ranks what they generate at one. It must generate what the build's IT server (one
 * rank, the same default model, float32) generates, with chunked prefill (a step budget of 16
 * tokens splits every prompt) and the prefix cache (each prompt asked twice); after a push in
 * each transport that runs on a CPU (from disk, a safetensors body, a flattened bucket, an atomic session of
 * buckets, a trainer's broadcasts on a weight-update group that every rank joins) it must
 * generate what one rank with the pushed weights generates, and weights_checker
 * must report each rank's checksums of exactly its shard, get_weights_by_name the whole
 * parameter put back together, and the checker's snapshot, noise and compare span every rank; every rank must release its memory and
 * take it back (the weights from an update made meanwhile, then from each rank's host copy at
 * tp_size 4, where checksums, read-back and the checker's snapshot read the host copies while
 * released, or from the next push at 2); and when a worker
 * is killed it must say so, naming the rank (readiness and liveness DOWN, a 503 for requests),
 * rather than hang.
 */
class TensorParallelServerIT {
    /** Token ids of different lengths (the longest spans several chunks), inside the default model's vocabulary. */
    private static final int[][] PROMPTS = {
            {9707, 11, 1879, 0, 358, 1079, 264, 1273, 315, 279, 1614, 13, 5209, 4486, 1744, 311, 5254, 3786, 389, 2686, 3491, 382, 1075,
                    13, 576, 6722, 3283, 374, 12095, 11, 323, 279, 17767, 1879, 34, 2038},
            {785, 6722, 3283, 315, 9625, 374},
            {16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34}};
    private static final int NEW_TOKENS = 10;

    @ParameterizedTest(name = "tp_size {0}")
    @ValueSource(ints = {2, 4})
    void generatesWhatOneRankGeneratesAndReportsALostRank(int tpSize) throws Exception {
        Http.awaitReady();
        boolean hostCopies = tpSize == 4;   // each rank keeps a host copy of its shards across a release
        int port = ServerProcessIT.freePort();
        ServerProcess.Spec spec = ServerProcessIT.secondServer("tp" + tpSize, port).withEnvironment("ROLLOUT_TP_SIZE", String.valueOf(tpSize))
                .withEnvironment("ROLLOUT_MAX_BATCHED_TOKENS", "16").withEnvironment("ROLLOUT_TORCH_THREADS", "1")
                .withEnvironment("ROLLOUT_DIST_TIMEOUT_SECONDS", "60")
                .withEnvironment("ROLLOUT_WEIGHTS_HOST_BACKUP", String.valueOf(hostCopies));
        try (ServerProcess server = ServerProcess.start(spec)) {
            String base = "http://localhost:" + port;
            assertEquals(tpSize, get(base, "/server_info").object().getInt("tp_size"));

            JsonArray reference = generate(Http.BASE, PROMPTS).array();      // one rank
            JsonArray sharded = generate(base, PROMPTS).array();             // cold: every prompt computed, in chunks
            JsonArray cached = generate(base, PROMPTS).array();              // again: prefixes from the cache
            for (int i = 0; i < PROMPTS.length; i++) {
                assertSame(reference.getJsonObject(i), sharded.getJsonObject(i), "prompt " + i + " at tp_size " + tpSize);
                assertSame(reference.getJsonObject(i), cached.getJsonObject(i), "prompt " + i + " at tp_size " + tpSize + ", cached");
            }
            int hits = 0;
            for (JsonValue v : cached) hits += v.asJsonObject().getJsonObject("meta_info").getInt("cached_tokens");
            assertTrue(hits > 0, "the second pass reads the prefix cache: " + cached);

            // pushes: each rank takes its shard of every full tensor, and the server generates what one rank with those weights does
            try (RolloutClient client = RolloutClient.connect(URI.create(base), RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY))) {
                Path disk = Checkpoints.other(60 + tpSize);
                assertEquals("tp-disk", client.updateWeightsFromDisk(disk.toString(), "tp-disk").weightVersion());
                assertGenerates(base, disk, "tp-disk");

                Path body = Checkpoints.other(70 + tpSize);
                List<String> names = new ArrayList<>(Safetensors.readHeader(body.resolve("model.safetensors")).keySet());
                assertEquals("tp-body", client.pushWeights(Checkpoints.subset(body, names), "tp-body").weightVersion());
                assertGenerates(base, body, "tp-body");
                assertChecksumsOfEachShard(base, body, tpSize);
                assertReadBackWhole(base, body);

                // slime's --check-weight-update-equal: snapshot, noise, the push, compare (whole parameters, from every rank)
                assertEquals(200, admin(base, "/weights_checker", "{\"action\": \"snapshot\"}").status());
                assertEquals(200, admin(base, "/weights_checker", "{\"action\": \"reset_tensors\"}").status());
                Http.Reply noisy = admin(base, "/weights_checker", "{\"action\": \"compare\"}");
                assertEquals(400, noisy.status(), "every rank's parts are noise now: " + noisy.body());
                assertEquals(503, generate(base, PROMPTS).status(), "noise is not served");
                assertEquals("tp-body", client.pushWeights(Checkpoints.subset(body, names), "tp-body").weightVersion());
                Http.Reply equal = admin(base, "/weights_checker", "{\"action\": \"compare\"}");
                assertEquals(200, equal.status(), "the same push restores every rank's parts bit for bit: " + equal.body());
                assertGenerates(base, body, "tp-body");
                assertBroadcastsReachEveryRank(base, client, tpSize);

                Path flat = Checkpoints.other(85 + tpSize);   // veRL's flattened bucket on update_weights_from_tensor
                Http.Reply flatPush = admin(base, "/update_weights_from_tensor", flattenedBucket(flat, "tp-flat"));
                assertEquals(200, flatPush.status(), flatPush.body());
                assertGenerates(base, flat, "tp-flat");

                Path buckets = Checkpoints.other(80 + tpSize);
                List<byte[]> parts = new ArrayList<>();
                for (int i = 0; i < names.size(); i += 5) parts.add(Checkpoints.subset(buckets, names.subList(i, Math.min(names.size(), i + 5))));
                assertEquals("tp-session", client.pushWeights(parts, "tp-session").weightVersion());   // an atomic session of buckets
                assertGenerates(base, buckets, "tp-session");

                // every rank releases its memory and takes it back; an update while released (AReaL's colocated
                // order) waits in each rank's host memory for the resume
                assertEquals(200, admin(base, "/release_memory_occupation", "{}").status());
                assertEquals(503, get(base, "/health/ready").status(), "released");
                if (hostCopies) {   // each rank hashes and reads back its host copy, as one rank does
                    Http.Reply sums = admin(base, "/weights_checker", "{}");
                    assertEquals(200, sums.status(), sums.body());
                    assertEquals(tpSize, sums.object().getJsonArray("ranks").size());
                    assertReadBackWhole(base, buckets);
                }
                Http.Reply whileReleased = admin(base, "/update_weights_from_disk",
                        "{\"model_path\": \"" + disk + "\", \"weight_version\": \"tp-released\"}");
                assertEquals(200, whileReleased.status(), whileReleased.body());
                if (hostCopies) {   // the checker's snapshot of every rank's host copy, the update in it; compared after the resume
                    assertReadBackWhole(base, disk);
                    Http.Reply snap = admin(base, "/weights_checker", "{\"action\": \"snapshot\"}");
                    assertEquals(200, snap.status(), snap.body());
                }
                assertEquals(200, admin(base, "/resume_memory_occupation", "{}").status());
                assertGenerates(base, disk, "tp-released");
                if (hostCopies) {
                    Http.Reply same = admin(base, "/weights_checker", "{\"action\": \"compare\"}");
                    assertEquals(200, same.status(), "the resumed weights are the snapshot taken while released: " + same.body());
                }
                // without an update meanwhile, the resumed weights come from each rank's host copy, or wait for the next push
                assertEquals(200, admin(base, "/release_memory_occupation", "{}").status());
                assertEquals(200, admin(base, "/resume_memory_occupation", "{}").status());
                if (hostCopies) {
                    assertGenerates(base, disk, "tp-released");
                } else {
                    assertEquals(503, generate(base, PROMPTS).status(), "the resumed weights wait for a push");
                    assertEquals("tp-resumed", client.pushWeights(Checkpoints.subset(body, names), "tp-resumed").weightVersion());
                    assertGenerates(base, body, "tp-resumed");
                }
            }

            // a worker dies: the server says which, at once, and answers instead of hanging
            long pid = workerPid(server, 1);
            ProcessHandle.of(pid).orElseThrow().destroyForcibly();
            Http.Reply ready = awaitNotReady(base, 30);
            assertEquals(503, ready.status(), "readiness DOWN within 30 s of the kill: " + ready.body());
            assertTrue(ready.body().contains("tensor-parallel rank 1 (pid " + pid + ")"), ready.body());
            assertEquals(503, get(base, "/health/live").status(), "a lost rank does not come back: restart the pod");
            long t1 = System.nanoTime();
            Http.Reply refused = generate(base, PROMPTS);
            assertEquals(503, refused.status(), refused.body());
            assertTrue(refused.body().contains("tensor-parallel rank 1"), refused.body());
            assertTrue(System.nanoTime() - t1 < 10_000_000_000L, "answered, not left waiting");
        }
    }

    /** Token ids below 500: inside the fixtures' vocabularies of 512. */
    private static final int[][] SMALL_PROMPTS = {
            {17, 301, 44, 5, 98, 250, 3, 77, 412, 9, 8, 7, 123, 456, 321, 11, 2, 99, 100, 101, 480, 33, 64},
            {250, 251, 13, 400, 6},
            {9, 8, 7, 123, 456, 321, 11, 2, 99, 100}};

    /**
     * Qwen2 (tied, q/k/v biases), Llama (untied) and Qwen3-MoE (every rank a slice of every expert)
     * checkpoints, each served by several ranks, generate what one rank generates: the same greedy
     * tokens and logprobs within 1e-4, chunked and from the prefix cache. The one rank is an engine
     * in this JVM over the same checkpoint (a one-rank server of it was another Liberty start, some
     * 20 s on a CI machine, for the same engine); the first test compares two servers end to end.
     */
    @ParameterizedTest(name = "{0} at tp_size {1}")
    @org.junit.jupiter.params.provider.CsvSource({"qwen2, 2", "llama, 4", "qwen3_moe, 2"})
    void otherArchitecturesGenerateWhatOneRankGenerates(String fixture, int tpSize) throws Exception {
        Path dir = Path.of("src/test/resources/fixtures", fixture).toAbsolutePath();
        String model = dir.toString();
        JsonArray reference = generateInProcess(dir, SMALL_PROMPTS);
        int port = ServerProcessIT.freePort();
        try (ServerProcess sharded = ServerProcess.start(ServerProcessIT.secondServer(fixture + tpSize, port)
                .withEnvironment("ROLLOUT_MODEL_PATH", model).withEnvironment("ROLLOUT_TP_SIZE", String.valueOf(tpSize))
                .withEnvironment("ROLLOUT_MAX_BATCHED_TOKENS", "8").withEnvironment("ROLLOUT_TORCH_THREADS", "1"))) {
            String base = base(sharded);
            JsonArray cold = generate(base, SMALL_PROMPTS).array(), cached = generate(base, SMALL_PROMPTS).array();
            for (int i = 0; i < SMALL_PROMPTS.length; i++) {
                assertSame(reference.getJsonObject(i), cold.getJsonObject(i), fixture + " prompt " + i + " at tp_size " + tpSize);
                assertSame(reference.getJsonObject(i), cached.getJsonObject(i), fixture + " prompt " + i + " at tp_size " + tpSize + ", cached");
            }
        }
    }

    /**
     * Two nodes on this machine: the server is node 0 (rank 0) and starts no worker; node 1 is
     * {@code dev.rollout.ranks.Worker} in node mode, configured as an operator would configure
     * it, by environment variables. The server generates what one rank does; when node 1's
     * process is killed (no process of the server's own to watch), the next keep-alive finds the
     * group broken and the server says so within the deadline, rather than hang.
     */
    @org.junit.jupiter.api.Test
    void aSecondNodeJoinsByItsNodeRankAndItsLossIsReported() throws Exception {
        Http.awaitReady();
        int port = ServerProcessIT.freePort(), store = ServerProcessIT.freePort();
        java.util.Map<String, String> env = java.util.Map.of("ROLLOUT_TP_SIZE", "2", "ROLLOUT_NNODES", "2",
                "ROLLOUT_DIST_INIT_ADDR", "127.0.0.1:" + store, "ROLLOUT_TORCH_THREADS", "1", "ROLLOUT_DIST_TIMEOUT_SECONDS", "20");
        Path nodeLog = Files.createTempFile("rollout-node1-", ".log");
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g",
                ServerProcessIT.SECOND_SERVER_JVM_OPTIONS,
                "-cp", System.getProperty("java.class.path"), "dev.rollout.ranks.Worker").redirectErrorStream(true).redirectOutput(nodeLog.toFile());
        pb.environment().putAll(env);
        pb.environment().put("ROLLOUT_NODE_RANK", "1");
        Process node = pb.start();   // first: the server is ready only once every rank has met
        try {
            ServerProcess.Spec spec = ServerProcessIT.secondServer("tpnodes", port);
            for (var e : env.entrySet()) spec = spec.withEnvironment(e.getKey(), e.getValue());
            try (ServerProcess server = ServerProcess.start(spec.withEnvironment("ROLLOUT_NODE_RANK", "0"))) {
                String base = base(server);
                JsonArray reference = generate(Http.BASE, PROMPTS).array();
                JsonArray sharded = generate(base, PROMPTS).array();
                for (int i = 0; i < PROMPTS.length; i++) assertSame(reference.getJsonObject(i), sharded.getJsonObject(i), "prompt " + i + ", two nodes");
                assertTrue(Files.readString(nodeLog).contains("[tp rank 1]"), "node 1 ran rank 1:\n" + Files.readString(nodeLog));

                node.descendants().forEach(ProcessHandle::destroyForcibly);
                node.destroyForcibly();
                Http.Reply ready = awaitNotReady(base, 60);
                assertEquals(503, ready.status(), "readiness DOWN once the group is found broken: " + ready.body());
                assertTrue(ready.body().contains("tensor-parallel"), ready.body());
                Http.Reply refused = generate(base, PROMPTS);
                assertEquals(503, refused.status(), refused.body());
            }
        } finally {
            node.descendants().forEach(ProcessHandle::destroyForcibly);
            node.destroyForcibly();
        }
    }

    /** The sharded server, after a push of {@code ckpt}'s weights, generates what one rank with them does, under {@code version}. */
    /**
     * A trainer's broadcasts, slime's path: every rank joins the group at 1 + its rank and takes
     * part in each push (one broadcast per tensor, then a flattened bucket); a group that cannot
     * form is a 400 within its deadline on every rank, and leaves the name free.
     */
    private static void assertBroadcastsReachEveryRank(String base, RolloutClient client, int tpSize) throws Exception {
        int nobody = WeightGroupsIT.freePort();
        long t0 = System.nanoTime();
        Http.Reply unreachable = admin(base, "/init_weights_update_group", "{\"master_address\": \"127.0.0.1\", \"master_port\": "
                + nobody + ", \"rank_offset\": 1, \"world_size\": " + (1 + tpSize) + ", \"group_name\": \"tp-group\", "
                + "\"backend\": \"gloo\", \"timeout_s\": 3}");
        assertEquals(400, unreachable.status(), unreachable.body());
        assertTrue(unreachable.body().contains("127.0.0.1:" + nobody), unreachable.body());
        assertTrue(System.nanoTime() - t0 < 30_000_000_000L, "answered within the deadline");
        Http.Reply small = admin(base, "/init_weights_update_group", "{\"master_address\": \"127.0.0.1\", \"master_port\": "
                + nobody + ", \"rank_offset\": 1, \"world_size\": 2, \"group_name\": \"tp-group\", \"backend\": \"gloo\"}");
        assertEquals(400, small.status(), small.body());
        assertTrue(small.body().contains("no room for this server's " + tpSize + " rank(s)"), small.body());

        Path ckpt = Checkpoints.other(90 + tpSize);
        Map<String, Tensor> all = WeightGroupsIT.parameters(ckpt);
        List<Map<String, Tensor>> halves = WeightGroupsIT.halves(all);
        java.time.Duration t = java.time.Duration.ofSeconds(60);
        try (WeightBroadcaster b = WeightBroadcaster.form(client, "127.0.0.1", WeightGroupsIT.freePort(), "tp-group", C10d.Backend.GLOO, t)) {
            assertEquals(1 + tpSize, b.group().world(), "the trainer and every rank of the server");
            assertTrue(get(base, "/rl/state").body().contains("tp-group"));
            b.push(halves.get(0), null);
        }
        // formed again under the same name: every rank left the first
        try (WeightBroadcaster b = WeightBroadcaster.form(client, "127.0.0.1", WeightGroupsIT.freePort(), "tp-group", C10d.Backend.GLOO, t)) {
            Map<String, Tensor> last = halves.get(1);
            List<Tensor> bytes = new ArrayList<>();
            for (Tensor v : last.values()) bytes.add(v.contiguous().view(ScalarType.Byte).reshape(-1));
            Tensor flat = org.bytedeco.pytorch.global.torch.cat(new org.bytedeco.pytorch.TensorArrayRef(new org.bytedeco.pytorch.TensorVector(
                    bytes.toArray(new Tensor[0]))));                                                 // (sum of the bucket's bytes) uint8
            String body = "{\"group_name\": \"tp-group\", \"load_format\": \"flattened_bucket\", \"weight_version\": \"tp-dist\", "
                    + WeightGroupsIT.announce(last) + "}";
            Http.Reply r = WeightGroupsIT.withBroadcasts(b.group(), () -> admin(base, "/update_weights_from_distributed", body),
                    Map.of("flat", flat));
            assertEquals(200, r.status(), r.body());
        }
        assertGenerates(base, ckpt, "tp-dist");
        assertChecksumsOfEachShard(base, ckpt, tpSize);
    }

    /** SGLang's flattened bucket on update_weights_from_tensor, veRL's path: every tensor's bytes back to back, base64 in JSON. */
    private static String flattenedBucket(Path ckpt, String version) throws Exception {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        List<String> meta = new ArrayList<>();
        for (var e : Safetensors.readHeader(ckpt.resolve("model.safetensors")).entrySet()) {
            byte[] raw = Checkpoints.rawBytes(ckpt, e.getKey());
            long[] shape = e.getValue().shape();
            String dtype = switch (e.getValue().dtype()) {
                case "BF16" -> "torch.bfloat16";
                case "F32" -> "torch.float32";
                default -> throw new IllegalStateException(e.getValue().dtype());
            };
            meta.add("{\"name\": \"" + e.getKey() + "\", \"dtype\": \"" + dtype + "\", \"shape\": " + java.util.Arrays.toString(shape)
                    + ", \"start_idx\": " + bytes.size() + ", \"end_idx\": " + (bytes.size() + raw.length) + ", \"numel\": "
                    + java.util.Arrays.stream(shape).reduce(1, Math::multiplyExact) + "}");
            bytes.writeBytes(raw);
        }
        return "{\"serialized_named_tensors\": [\"" + java.util.Base64.getEncoder().encodeToString(bytes.toByteArray())
                + "\"], \"load_format\": \"flattened_bucket\", \"flattened_bucket_metadata\": [" + String.join(", ", meta)
                + "], \"weight_version\": \"" + version + "\"}";
    }

    private static void assertGenerates(String base, Path ckpt, String version) throws Exception {
        LlmEngine reference = Checkpoints.engine(ckpt);
        Http.Reply r = Http.send(HttpRequest.newBuilder(URI.create(base + "/generate")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(Checkpoints.greedyBody(12))));
        assertEquals(200, r.status(), r.body());
        int[] got = r.object().getJsonArray("output_ids").getValuesAs(jakarta.json.JsonNumber.class).stream()
                .mapToInt(jakarta.json.JsonNumber::intValue).toArray();
        org.junit.jupiter.api.Assertions.assertArrayEquals(Checkpoints.greedy(reference, 12), got, version);
        assertEquals(version, r.object().getJsonObject("meta_info").getString("weight_version"));
        reference.model().releaseWeights();
    }

    /**
     * get_weights_by_name answers the whole parameter, put together from every rank's shard:
     * split by rows (q, k, gate; at tp_size 4 the two KV heads are held twice each), by columns
     * (o, down: every row spans every rank) or held whole (the norms).
     */
    private static void assertReadBackWhole(String base, Path ckpt) throws Exception {
        LlmEngine reference = Checkpoints.engine(ckpt);
        var table = reference.model().parameters();
        java.util.Map<String, Integer> rows = new java.util.LinkedHashMap<>();
        rows.put("model.layers.0.self_attn.q_proj.weight", 128);
        rows.put("model.layers.1.self_attn.k_proj.weight", 64);
        rows.put("model.layers.2.mlp.gate_proj.weight", 384);
        rows.put("model.layers.0.self_attn.o_proj.weight", 3);
        rows.put("model.layers.3.mlp.down_proj.weight", 3);
        rows.put("model.layers.0.self_attn.q_norm.weight", 32);
        rows.put("model.norm.weight", 128);
        for (var e : rows.entrySet()) {
            Http.Reply r = admin(base, "/get_weights_by_name", "{\"name\": \"" + e.getKey() + "\", \"truncate_size\": " + e.getValue() + "}");
            assertEquals(200, r.status(), r.body());
            List<Double> got = new ArrayList<>();
            for (JsonValue v : r.array()) {
                if (v instanceof JsonArray row) for (JsonValue x : row) got.add(((jakarta.json.JsonNumber) x).doubleValue());
                else got.add(((jakarta.json.JsonNumber) v).doubleValue());
            }
            Tensor t = table.get(e.getKey());
            float[] want = dev.rollout.model.Torch.toFloats(t.narrow(0, 0, Math.min(e.getValue(), t.size(0))));
            assertEquals(want.length, got.size(), e.getKey());
            for (int i = 0; i < want.length; i++) assertEquals(want[i], got.get(i).floatValue(), e.getKey() + "[" + i + "]");
        }
        reference.model().releaseWeights();
    }

    /** weights_checker reports each rank's checksums, of exactly its shard of {@code ckpt}'s weights. */
    private static void assertChecksumsOfEachShard(String base, Path ckpt, int tpSize) throws Exception {
        Http.Reply r = admin(base, "/weights_checker", "{}");
        assertEquals(200, r.status(), r.body());
        JsonArray ranks = r.object().getJsonArray("ranks");
        assertEquals(tpSize, ranks.size(), r.body());
        for (int rank = 0; rank < tpSize; rank++) {
            JsonObject served = ranks.getJsonObject(rank);
            assertEquals(rank, served.getJsonObject("parallelism_info").getInt("tp_rank"));
            assertEquals(tpSize, served.getJsonObject("parallelism_info").getInt("tp_size"));
            CausalLm shard = CausalLm.load(ckpt, ScalarType.Float, new Device("cpu"), Kernels.LIBTORCH, new ShardOnly(rank, tpSize));
            java.util.Map<String, String> expected = shard.parameters().checksums();
            shard.releaseWeights();
            JsonObject sums = served.getJsonObject("checksums");
            assertEquals(expected.size(), sums.size());
            for (var e : expected.entrySet()) assertEquals(e.getValue(), sums.getString(e.getKey()), "rank " + rank + ": " + e.getKey());
        }
    }

    /** Greedy tokens equal, each logprob within 1e-4 (float32 over different reduction orders). */
    private static void assertSame(JsonObject want, JsonObject got, String what) {
        assertEquals(want.getJsonArray("output_ids"), got.getJsonArray("output_ids"), what + ": greedy tokens");
        JsonArray a = want.getJsonObject("meta_info").getJsonArray("output_token_logprobs");
        JsonArray b = got.getJsonObject("meta_info").getJsonArray("output_token_logprobs");
        assertEquals(NEW_TOKENS, a.size(), what);
        for (int t = 0; t < a.size(); t++) {
            double x = a.getJsonArray(t).getJsonNumber(0).doubleValue(), y = b.getJsonArray(t).getJsonNumber(0).doubleValue();
            assertTrue(Math.abs(x - y) < 1e-4, what + ", token " + t + ": logprob " + y + ", one rank " + x);
        }
    }

    /**
     * What {@link #generate} asks of a server, answered by one rank in this JVM: the output ids and
     * each output token's logprob, as /generate's output_ids and meta_info.output_token_logprobs.
     */
    private static JsonArray generateInProcess(Path ckpt, int[][] prompts) throws Exception {
        LlmEngine engine = Checkpoints.engine(ckpt);
        dev.rollout.engine.SequenceOutput[] outs = new dev.rollout.engine.SequenceOutput[prompts.length];
        for (int i = 0; i < prompts.length; i++) {
            int at = i;
            engine.add(new dev.rollout.engine.Sequence("ref-" + i, 0, prompts[i], dev.rollout.engine.SamplingParams.builder().temperature(0)
                    .maxNewTokens(NEW_TOKENS).ignoreEos(true).build(), new dev.rollout.engine.LogprobOptions(true, -1, 0, null), null,
                    o -> { if (o.finished()) outs[at] = o; }, false, 0));
        }
        while (engine.hasWork()) engine.step();
        engine.model().releaseWeights();
        jakarta.json.JsonArrayBuilder all = jakarta.json.Json.createArrayBuilder();
        for (dev.rollout.engine.SequenceOutput o : outs) {
            jakarta.json.JsonArrayBuilder ids = jakarta.json.Json.createArrayBuilder(), lps = jakarta.json.Json.createArrayBuilder();
            for (int id : o.outputIds()) ids.add(id);
            for (dev.rollout.engine.TokenLogprob t : o.outputLogprobs())
                lps.add(jakarta.json.Json.createArrayBuilder().add((double) t.logprob()).add(t.tokenId()));
            all.add(jakarta.json.Json.createObjectBuilder().add("output_ids", ids)
                    .add("meta_info", jakarta.json.Json.createObjectBuilder().add("output_token_logprobs", lps)));
        }
        return all.build();
    }

    private static Http.Reply generate(String base, int[][] prompts) {
        StringBuilder ids = new StringBuilder("[");
        for (int i = 0; i < prompts.length; i++) {
            if (i > 0) ids.append(',');
            ids.append(java.util.Arrays.toString(prompts[i]));
        }
        ids.append(']');
        String body = "{\"input_ids\": " + ids + ", \"return_logprob\": true, \"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": "
                + NEW_TOKENS + ", \"ignore_eos\": true}}";
        return Http.send(HttpRequest.newBuilder(URI.create(base + "/generate")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    /** Readiness once it is no longer UP, or after {@code seconds}. */
    private static Http.Reply awaitNotReady(String base, int seconds) throws InterruptedException {
        long t0 = System.nanoTime();
        Http.Reply ready;
        do {
            Thread.sleep(200);
            ready = get(base, "/health/ready");
        } while (ready.status() == 200 && System.nanoTime() - t0 < seconds * 1_000_000_000L);
        return ready;
    }

    private static Http.Reply admin(String base, String path, String body) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .header("Authorization", "Bearer " + Http.ADMIN_KEY).POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    private static String base(ServerProcess server) {
        return "http://localhost:" + server.url().getPort();
    }

    private static Http.Reply get(String base, String path) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).GET());
    }

    /** The pid the server logged when it started {@code rank}. */
    private static long workerPid(ServerProcess server, int rank) throws Exception {
        Matcher m = Pattern.compile("started tensor-parallel rank " + rank + " \\(pid (\\d+)\\)").matcher(Files.readString(server.log()));
        assertTrue(m.find(), "the server logs each worker's pid");
        return Long.parseLong(m.group(1));
    }
}
