package it.dev.rollout;

import dev.rollout.dist.C10d;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.PushResult;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.RolloutClientException;
import dev.rollout.client.Sampling;
import dev.rollout.dist.WeightSyncGroup;
import dev.rollout.engine.LlmEngine;
import dev.rollout.model.Safetensors;
import dev.rollout.trainer.WeightBroadcaster;
import jakarta.json.JsonObject;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * SGLang's weight-update groups (init_weights_update_group, update_weights_from_distributed,
 * destroy_weights_update_group) between two processes: this test's JVM is the trainer's rank 0
 * (it hosts the rendezvous and broadcasts over gloo, as {@link WeightBroadcaster}), the IT server
 * is rank 1. The order follows SGLang's test_update_weights_from_distributed.py: the trainer
 * starts its side while the server's init call is in flight; each update call is answered after
 * the broadcasts it announced; the weights read back are the trainer's.
 */
@ExtendWith(RestoresServedWeights.class)
class WeightGroupsIT {
    static final Duration T = Duration.ofSeconds(60);

    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static RolloutClient client() {
        return RolloutClient.connect(URI.create(Http.BASE), RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY));
    }

    /** A checkpoint's parameters as the trainer holds them: bf16, in host memory, in file order. */
    static Map<String, Tensor> parameters(Path dir) throws Exception {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (var e : Safetensors.readHeader(dir.resolve("model.safetensors")).entrySet()) {
            ByteBuffer stored = Safetensors.map(e.getValue());
            Tensor t = torch.empty(e.getValue().shape(), new TensorOptions(ScalarType.BFloat16), new org.bytedeco.pytorch.MemoryFormatOptional());
            byte[] b = new byte[stored.remaining()];
            stored.duplicate().get(b);
            new BytePointer(t.data_ptr()).capacity(b.length).put(b);
            out.put(e.getKey(), t);
        }
        return out;
    }

    /** A bucket's {@code "names", "dtypes", "shapes"} as SGLang's request carries them (dtype as torch names it). */
    static String announce(Map<String, Tensor> bucket) {
        List<String> names = new ArrayList<>(), dtypes = new ArrayList<>(), shapes = new ArrayList<>();
        for (var e : bucket.entrySet()) {
            names.add("\"" + e.getKey() + "\"");
            dtypes.add(e.getValue().scalar_type().intern() == ScalarType.BFloat16 ? "\"bfloat16\"" : "\"float32\"");
            shapes.add(java.util.Arrays.toString(e.getValue().sizes().vec().get()));
        }
        return "\"names\": " + names + ", \"dtypes\": " + dtypes + ", \"shapes\": " + shapes;
    }

    /** Sends a call that announces {@code bucket} and, while it is in flight, broadcasts the bucket as rank 0; returns the call's answer. */
    static Http.Reply withBroadcasts(WeightSyncGroup rank0, java.util.function.Supplier<Http.Reply> call, Map<String, Tensor> bucket)
            throws Exception {
        CompletableFuture<Http.Reply> answer = CompletableFuture.supplyAsync(call);
        rank0.broadcastFromRank0(new ArrayList<>(bucket.values()));
        return answer.get(60, TimeUnit.SECONDS);
    }

    /** The first and second half of a model's parameters, in order: a framework's buckets. */
    static List<Map<String, Tensor>> halves(Map<String, Tensor> all) {
        List<Map<String, Tensor>> out = List.of(new LinkedHashMap<>(), new LinkedHashMap<>());
        int i = 0;
        for (var e : all.entrySet()) out.get(i++ < all.size() / 2 ? 0 : 1).put(e.getKey(), e.getValue());
        return out;
    }

    @Test
    void aTrainerBroadcastsACheckpointInTwoCallsAndTheServerServesIt() throws Exception {
        Path ckpt = Checkpoints.other(61);
        Map<String, Tensor> all = parameters(ckpt);
        List<String> names = new ArrayList<>(all.keySet());
        Map<String, Tensor> first = new LinkedHashMap<>(), last = new LinkedHashMap<>();
        for (int i = 0; i < names.size(); i++) (i < names.size() - 1 ? first : last).put(names.get(i), all.get(names.get(i)));
        String before;
        try (RolloutClient c = client(); WeightBroadcaster b = WeightBroadcaster.form(c, "127.0.0.1", freePort(), "weight_update_group",
                C10d.Backend.GLOO, T)) {
            before = c.weightVersion();
            PushResult r1 = b.push(first, null);
            assertEquals(first.size(), r1.numTensors());
            assertEquals(before, r1.weightVersion(), "a call without weight_version keeps the version, as in SGLang");
            PushResult r2 = b.push(last, "dist-1");
            assertEquals(1, r2.numTensors());
            assertEquals("dist-1", r2.weightVersion());
            JsonObject state = Http.get("/rl/state").object();
            assertTrue(state.toString().contains("weight_update_group"), "the group is listed in /rl/state: " + state);
        }
        LlmEngine reference = Checkpoints.engine(ckpt);
        JsonObject served = Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getJsonObject("checksums");
        reference.model().parameters().checksums().forEach((name, sum) -> assertEquals(sum, served.getString(name), name));
        try (RolloutClient c = client()) {
            var g = c.generate(Checkpoints.PROMPT, Sampling.greedy(12));
            assertEquals("dist-1", g.weightVersion());
            assertArrayEquals(Checkpoints.greedy(reference, 12), g.outputIds());
        }
        // destroyed with the broadcaster: a push on it now names the problem
        Http.Reply r = Http.admin("/update_weights_from_distributed",
                "{\"names\": [\"model.norm.weight\"], \"dtypes\": [\"bfloat16\"], \"shapes\": [[64]]}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("no weight update group named 'weight_update_group'"), r.body());
    }

    @Test
    void aWrongNameIsA400AfterTheBroadcastAndTheGroupStaysInStep() throws Exception {
        Path ckpt = Checkpoints.other(62);
        Map<String, Tensor> all = parameters(ckpt);
        try (RolloutClient c = client(); WeightBroadcaster b = WeightBroadcaster.form(c, "127.0.0.1", freePort(), "g-names",
                C10d.Backend.GLOO, T)) {
            Tensor norm = all.get("model.norm.weight");
            var e = assertThrows(RolloutClientException.class, () -> b.push(Map.of("model.nrom.weight", norm), "bad"));
            assertTrue(e.getMessage().contains("model.nrom.weight"), e.getMessage());
            // the same group, next call: every tensor arrives
            PushResult ok = b.push(all, "names-ok");
            assertEquals(all.size(), ok.numTensors());
            assertEquals("names-ok", ok.weightVersion());
        }
    }

    @Test
    void broadcastCallsInsideAnUpdateSessionServeTogetherAtItsEnd() throws Exception {
        Path ckpt = Checkpoints.other(63);
        Map<String, Tensor> all = parameters(ckpt);
        List<String> names = new ArrayList<>(all.keySet());
        String norm = "model.norm.weight";
        String servedNorm = checksum(norm);
        try (RolloutClient c = client(); WeightBroadcaster b = WeightBroadcaster.form(c, "127.0.0.1", freePort(), "g-session",
                C10d.Backend.GLOO, T)) {
            assertEquals(200, Http.admin("/begin_weight_update", "{\"update_id\": \"dist-session\"}").status());
            int half = names.size() / 2;
            for (int seq = 0; seq < 2; seq++) {
                List<String> part = seq == 0 ? names.subList(0, half) : names.subList(half, names.size());
                StringBuilder body = new StringBuilder("{\"group_name\": \"g-session\", \"update_id\": \"dist-session\", \"bucket_seq\": " + seq);
                body.append(", \"names\": [").append(String.join(", ", part.stream().map(n -> "\"" + n + "\"").toList())).append("]");
                body.append(", \"dtypes\": [").append(String.join(", ", part.stream().map(n -> "\"bfloat16\"").toList())).append("]");
                body.append(", \"shapes\": [").append(String.join(", ", part.stream().map(n -> java.util.Arrays.toString(all.get(n).sizes().vec().get())).toList())).append("]}");
                CompletableFuture<Http.Reply> call = CompletableFuture.supplyAsync(() -> Http.admin("/update_weights_from_distributed", body.toString()));
                b.group().broadcastFromRank0(part.stream().map(all::get).toList());
                Http.Reply r = call.get(60, TimeUnit.SECONDS);
                assertEquals(200, r.status(), r.body());
                assertEquals(true, r.object().getBoolean("staged"), r.body());
            }
            assertEquals(servedNorm, checksum(norm), "staged, not served, until the session ends");
            Http.Reply end = Http.admin("/end_weight_update", "{\"update_id\": \"dist-session\", \"weight_version\": \"dist-session\"}");
            assertEquals(200, end.status(), end.body());
            assertEquals(all.size(), end.object().getInt("num_tensors"));
        }
        LlmEngine reference = Checkpoints.engine(ckpt);
        assertEquals(reference.model().parameters().checksums().get(norm), checksum(norm));
    }

    @Test
    void aBroadcastThatNeverComesIsA400WithinTheDeadlineAndLeavesTheWeightsAlone() throws Exception {
        String norm = "model.norm.weight";
        String servedNorm = checksum(norm);
        try (RolloutClient c = client(); WeightBroadcaster b = WeightBroadcaster.form(c, "127.0.0.1", freePort(), "g-silent",
                C10d.Backend.GLOO, Duration.ofSeconds(3))) {
            long t0 = System.nanoTime();
            // announced, but the trainer never broadcasts
            Http.Reply r = Http.admin("/update_weights_from_distributed",
                    "{\"group_name\": \"g-silent\", \"names\": [\"" + norm + "\"], \"dtypes\": [\"bfloat16\"], \"shapes\": [[64]], \"weight_version\": \"never\"}");
            long s = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
            assertEquals(400, r.status(), r.body());
            assertTrue(r.body().contains("did not complete within 3 s"), r.body());
            assertTrue(s < 30, "answered after " + s + " s");
            assertEquals(servedNorm, checksum(norm));
            // out of step for good: said on every later call, until destroyed
            Http.Reply again = Http.admin("/update_weights_from_distributed",
                    "{\"group_name\": \"g-silent\", \"names\": [\"" + norm + "\"], \"dtypes\": [\"bfloat16\"], \"shapes\": [[64]]}");
            assertEquals(409, again.status(), again.body());
            assertTrue(again.body().contains("destroy it and form it again"), again.body());
        }
    }

    static String checksum(String name) {
        return Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getJsonObject("checksums").getString(name);
    }

    @Test
    void anUnreachableMasterIsA400WithinTheDeadline() throws Exception {
        int port = freePort();  // nobody listens there
        long t0 = System.nanoTime();
        Http.Reply r = Http.admin("/init_weights_update_group", "{\"master_address\": \"127.0.0.1\", \"master_port\": \"" + port
                + "\", \"rank_offset\": 1, \"world_size\": 2, \"group_name\": \"g-unreachable\", \"backend\": \"gloo\", \"timeout_s\": 3}");
        long s = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("127.0.0.1:" + port), r.body());
        assertTrue(s < 30, "answered after " + s + " s");
        assertEquals(false, r.object().getBoolean("success"));
    }

    @Test
    void aWorldSizeTheTrainerDoesNotShareIsA400WithinTheDeadline() throws Exception {
        int port = freePort();
        // the trainer hosts a world of 3; the server is told 3 too but the third rank never comes
        CompletableFuture<Throwable> trainer = CompletableFuture.supplyAsync(() -> {
            try (WeightSyncGroup g = WeightSyncGroup.join("127.0.0.1", port, 0, 3, "g-world", C10d.Backend.GLOO, Duration.ofSeconds(5))) {
                return null;
            } catch (Throwable e) {
                return e;
            }
        });
        Http.Reply r = Http.admin("/init_weights_update_group", "{\"master_address\": \"127.0.0.1\", \"master_port\": " + port
                + ", \"rank_offset\": 1, \"world_size\": 3, \"group_name\": \"g-world\", \"backend\": \"gloo\", \"timeout_s\": 5}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("did not form"), r.body());
        assertTrue(trainer.get(60, TimeUnit.SECONDS) != null, "the trainer formed a group with a missing rank");
        // the name is free again
        assertTrue(Http.get("/rl/state").body().indexOf("g-world") < 0);
    }

    @Test
    void requestsThatCannotFormAGroupAreRefusedByName() {
        String base = "\"master_address\": \"127.0.0.1\", \"master_port\": 29500, \"group_name\": \"g-bad\"";
        assertRefused("{" + base + ", \"rank_offset\": 0, \"world_size\": 2, \"backend\": \"gloo\"}", "rank_offset must be at least 1");
        assertRefused("{" + base + ", \"rank_offset\": 1, \"world_size\": 1, \"backend\": \"gloo\"}", "world_size 1 has no room");
        assertRefused("{" + base + ", \"rank_offset\": 1, \"world_size\": 2, \"backend\": \"mpi\"}", "backend 'mpi' is not supported");
        assertRefused("{" + base + ", \"rank_offset\": 1, \"world_size\": 2}", "backend 'nccl' needs a CUDA server");
        assertRefused("{\"master_port\": 29500, \"rank_offset\": 1, \"world_size\": 2}", "master_address is required");
        assertRefused("{\"names\": [\"a\"], \"dtypes\": [], \"shapes\": [[1]]}", "must be as long as each other",
                "/update_weights_from_distributed");
        assertRefused("{\"names\": [\"a\"], \"dtypes\": [\"bfloat16\"], \"shapes\": [[1]], \"load_format\": \"direct\"}",
                "load_format 'direct' is not supported here", "/update_weights_from_distributed");
        assertRefused("{\"group_name\": \"never-formed\"}", "no weight update group named 'never-formed'", "/destroy_weights_update_group");
    }

    static void assertRefused(String body, String words) {
        assertRefused(body, words, "/init_weights_update_group");
    }

    static void assertRefused(String body, String words, String path) {
        Http.Reply r = Http.admin(path, body);
        assertEquals(400, r.status(), path + " " + body + ": " + r.body());
        assertTrue(r.body().contains(words), r.body());
    }
}
