package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.LlmEngine;
import dev.rollout.model.ParameterTable;
import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The RL control plane over HTTP: weight pushes in every transport, sessions, versions,
 * read-back and checksums, pause/continue/drain, memory release and resume, and the admin key.
 * Each test leaves the server serving the default weights as version "default".
 */
class RlControlIT {
    static Path other;
    static String originalDir;
    static int[] original;
    static int[] reference;
    static String referenceChecksum;

    @BeforeAll
    static void setUp() throws Exception {
        Http.awaitReady();
        originalDir = Http.get("/get_model_info").object().getString("model_path");
        original = ids(generate(Checkpoints.greedyBody(12)));
        other = Checkpoints.other(99);
        LlmEngine ref = Checkpoints.engine(other);
        reference = Checkpoints.greedy(ref, 12);
        referenceChecksum = ParameterTable.combinedChecksum(ref.model().parameters().checksums());
        assertFalse(java.util.Arrays.equals(original, reference), "the two weight sets must generate differently");
    }

    @AfterEach
    void restore() {
        Http.admin("/continue_generation", "{}");
        Http.resumeReleased();
        if (!"default".equals(Http.get("/rl/state").object().getString("weight_version"))
                || Http.get("/rl/state").object().getInt("unpushed_parameters") > 0
                || !java.util.Arrays.equals(original, ids(generateAllowingFailure())))
            assertEquals(200, Http.admin("/update_weights_from_disk",
                    "{\"model_path\": \"" + originalDir + "\", \"weight_version\": \"default\"}").status());
    }

    @AfterAll
    static void back() {
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))), "the default weights are back");
    }

    static JsonObject generate(String body) {
        Http.Reply r = Http.post("/generate", body);
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    static JsonObject generateAllowingFailure() {
        Http.Reply r = Http.post("/generate", Checkpoints.greedyBody(12));
        return r.status() == 200 ? r.object() : Json.createObjectBuilder().add("output_ids", Json.createArrayBuilder()).build();
    }

    static int[] ids(JsonObject o) {
        return o.getJsonArray("output_ids").getValuesAs(JsonNumber.class).stream().mapToInt(JsonNumber::intValue).toArray();
    }

    static String serverChecksum() {
        Http.Reply r = Http.admin("/weights_checker", "{\"action\": \"checksum\"}");
        assertEquals(200, r.status(), r.body());
        return r.object().getJsonArray("ranks").getJsonObject(0).getString("per_gpu_checksum");
    }

    static String tensorPush(String base64, String extra) {
        return "{\"serialized_named_tensors\": [\"" + base64 + "\"]" + extra + "}";
    }

    @Test
    void aPushedModelIsTheOneGenerating() throws Exception {
        // the whole model, base64 in JSON (streamed into native memory), with a second TP rank's entry that one rank skips
        Http.Reply r = Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                + Checkpoints.base64File(other.resolve("model.safetensors")) + "\", \"rank 1's payload, never read\"], "
                + "\"load_format\": null, \"flush_cache\": true, \"weight_version\": \"it-step-1\"}");
        assertEquals(200, r.status(), r.body());
        assertTrue(r.object().getBoolean("success"));
        assertTrue(r.object().getString("message").contains("Weight version updated to it-step-1"));
        JsonObject o = generate(Checkpoints.greedyBody(12));
        assertArrayEquals(reference, ids(o), "greedy output equals the reference for the pushed weights");
        JsonObject m = o.getJsonObject("meta_info");
        assertEquals("it-step-1", m.getString("weight_version"));
        assertEquals(Json.createArrayBuilder().add(Json.createObjectBuilder().add("version", "it-step-1").add("start", 0).add("end", 12)).build(),
                m.getJsonArray("weight_versions"));
        assertEquals(referenceChecksum, serverChecksum(), "the server holds exactly the pushed weights");
        assertEquals("it-step-1", Http.get("/get_weight_version").object().getString("weight_version"));

        JsonArray norm = Http.admin("/get_weights_by_name", "{\"name\": \"model.norm.weight\", \"truncate_size\": 4}").array();
        assertEquals(4, norm.size());
        JsonObject state = Http.get("/rl/state").object();
        assertEquals("safetensors", state.getJsonObject("last_update").getString("transport"));

        Http.Reply back = Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + originalDir + "\", \"weight_version\": \"default\"}");
        assertEquals(200, back.status(), back.body());
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))), "update_weights_from_disk restores the original");
    }

    @Test
    void flattenedBucketAndBinaryTransports() throws Exception {
        String name = "model.layers.0.mlp.down_proj.weight";
        byte[] raw = Checkpoints.rawBytes(other, name);
        long[] shape = Checkpoints.shape(other, name);
        String meta = ", \"load_format\": \"flattened_bucket\", \"flattened_bucket_metadata\": [{\"name\": \"" + name
                + "\", \"dtype\": \"torch.bfloat16\", \"shape\": [" + shape[0] + ", " + shape[1] + "], \"start_idx\": 0, \"end_idx\": "
                + raw.length + ", \"numel\": " + shape[0] * shape[1] + "}], \"weight_version\": \"it-flat\"";
        Http.Reply r = Http.admin("/update_weights_from_tensor", tensorPush(Base64.getEncoder().encodeToString(raw), meta));
        assertEquals(200, r.status(), r.body());
        assertEquals(1, r.object().getInt("num_tensors"));
        assertFalse(java.util.Arrays.equals(original, ids(generate(Checkpoints.greedyBody(12)))), "one layer changed the output");

        // and back, as a raw safetensors body (no base64, no JSON)
        byte[] body = Checkpoints.subset(Path.of(originalDir), List.of(name));
        Http.Reply b = Http.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/update_weights_from_tensor?weight_version=default"))
                .header("Content-Type", "application/octet-stream").header("Authorization", "Bearer " + Http.ADMIN_KEY)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body)));
        assertEquals(200, b.status(), b.body());
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))));
        assertEquals("safetensors-binary", Http.get("/rl/state").object().getJsonObject("last_update").getString("transport"));
    }

    @Test
    void badPushesAreRefusedAndChangeNothing() throws Exception {
        String before = serverChecksum();
        byte[] norm = Checkpoints.subset(other, List.of("model.norm.weight"));
        String renamed = Base64.getEncoder().encodeToString(new String(norm, java.nio.charset.StandardCharsets.ISO_8859_1)
                .replace("model.norm.weight", "model.nrom.weight").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        assertRefused(tensorPush(renamed, ""), "unknown parameter model.nrom.weight");
        // q_norm's 32 values under the name of the final norm (128 values): refused for its shape
        byte[] misnamed = Checkpoints.renamed(other, Map.of("model.layers.0.self_attn.q_norm.weight", "model.norm.weight"));
        assertRefused(tensorPush(Base64.getEncoder().encodeToString(misnamed), ""), "model.norm.weight has shape [128], got [32]");
        // a real exploit shape: protocol-4 pickle calling os.system
        byte[] pickle = Base64.getDecoder().decode("gASVIQAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOUjAllY2hvIHB3bmSUhZRSlC4=");
        assertRefused(tensorPush(Base64.getEncoder().encodeToString(pickle), ""), "pickle");
        assertRefused(tensorPush("Y29zCnN5c3RlbQooUydlY2hvIHB3bmQnCnRSLg==", ""), "could not read the tensors");  // protocol 0
        assertRefused(tensorPush("not base64!", ""), "not base64");
        assertRefused(tensorPush(Base64.getEncoder().encodeToString(norm), ", \"load_format\": \"pickle\""), "load_format");
        assertRefused("{\"load_format\": null}", "serialized_named_tensors is required");
        assertRefused(tensorPush("AAAA", ", \"load_format\": \"flattened_bucket\""), "flattened_bucket_metadata");
        // a real SGLang push (torch's ForkingPickler, CUDA IPC): refused while rollout.allow-pickle is off
        String real = com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(
                Path.of("src/test/resources/pickles/torch-pickles.json"))).getAsJsonObject().getAsJsonObject("payloads").get("sglang").getAsString();
        assertRefused(tensorPush(real, ""), "rollout.allow-pickle");
        assertRefused("{\"load_format\": \"cuda_ipc\", \"cuda_ipc_tensors\": [{\"name\": \"model.norm.weight\", \"dtype\": \"float32\", "
                + "\"shape\": [128], \"ipc_handle\": \"AAAA\"}]}", "server on a GPU");
        assertEquals(before, serverChecksum(), "refused pushes leave the weights untouched");
        assertEquals("default", Http.get("/get_weight_version").object().getString("weight_version"));
    }

    static void assertRefused(String body, String mentions) {
        Http.Reply r = Http.admin("/update_weights_from_tensor", body);
        assertEquals(400, r.status(), r.body());
        JsonObject o = r.object();
        String message = o.getString("message");  // both error shapes carry "message"
        assertTrue(message.contains(mentions), "'" + message + "' should mention " + mentions);
    }

    @Test
    void sessionsStageAndCommitAtomicallyAndIgnoreRetries() throws Exception {
        assertEquals(200, Http.admin("/begin_weight_update", "{\"update_id\": \"u1\"}").status());
        String bucket = tensorPush(Checkpoints.base64File(other.resolve("model.safetensors")), ", \"update_id\": \"u1\", \"bucket_seq\": 0");
        Http.Reply first = Http.admin("/update_weights_from_tensor", bucket);
        assertEquals(200, first.status(), first.body());
        assertTrue(first.object().getBoolean("staged"));
        Http.Reply retry = Http.admin("/update_weights_from_tensor", bucket);
        assertEquals(200, retry.status());
        assertFalse(retry.object().getBoolean("staged"), "a retried bucket is not applied twice");
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))), "staged weights are not served");
        assertEquals("u1", Http.get("/rl/state").object().getJsonObject("open_update").getString("update_id"));

        Http.Reply end = Http.admin("/end_weight_update", "{\"update_id\": \"u1\", \"weight_version\": \"it-session\"}");
        assertEquals(200, end.status(), end.body());
        assertArrayEquals(reference, ids(generate(Checkpoints.greedyBody(12))));
        assertEquals("committed", Http.get("/rl/state").object().getJsonObject("last_update_session").getString("result"));

        // aborted: rolled back, never served
        Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + originalDir + "\", \"weight_version\": \"default\"}");
        Http.admin("/begin_weight_update", "{\"update_id\": \"u2\"}");
        Http.admin("/update_weights_from_tensor", tensorPush(Checkpoints.base64File(other.resolve("model.safetensors")), ""));
        assertEquals(200, Http.admin("/abort_weight_update", "{\"update_id\": \"u2\"}").status());
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))));
        assertEquals("rolled back", Http.get("/rl/state").object().getJsonObject("last_update_session").getString("result"));

        // timed out: rolled back, and a late bucket hears why
        Http.admin("/begin_weight_update", "{\"update_id\": \"u3\", \"timeout_s\": 0.3}");
        Thread.sleep(600);
        Http.Reply late = Http.admin("/update_weights_from_tensor", tensorPush(Checkpoints.base64File(other.resolve("model.safetensors")),
                ", \"update_id\": \"u3\", \"bucket_seq\": 0"));
        assertEquals(409, late.status(), late.body());
        assertTrue(late.object().getString("message").contains("timed out"), late.body());
        assertEquals(409, Http.admin("/end_weight_update", "{\"update_id\": \"u3\"}").status());
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))));
    }

    @Test
    void anUpdateWaitsForInFlightRequestsOrAbortsThem() throws Exception {
        String bucket = tensorPush(Base64.getEncoder().encodeToString(Checkpoints.subset(other, List.of("model.norm.weight"))), "");
        CompletableFuture<Http.Reply> running = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [1, 2, 3], \"sampling_params\": {\"max_new_tokens\": 150, \"ignore_eos\": true}}"));
        awaitState("in_flight", 1);
        Http.Reply push = Http.admin("/update_weights_from_tensor", bucket.replace("}", ", \"weight_version\": \"it-wait\"}"));
        assertEquals(200, push.status(), push.body());
        JsonObject done = running.get(60, TimeUnit.SECONDS).object().getJsonObject("meta_info");
        assertEquals("length", done.getJsonObject("finish_reason").getString("type"));
        assertEquals(Json.createArrayBuilder().add(Json.createObjectBuilder().add("version", "default").add("start", 0).add("end", 150)).build(),
                done.getJsonArray("weight_versions"), "without abort_all_requests the update waited: every token came from the old weights");

        CompletableFuture<Http.Reply> second = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [1, 2, 3], \"sampling_params\": {\"max_new_tokens\": 3000, \"ignore_eos\": true}}"));
        awaitState("in_flight", 1);
        Http.Reply abortPush = Http.admin("/update_weights_from_tensor", bucket.replace("}", ", \"abort_all_requests\": true}"));
        assertEquals(200, abortPush.status(), abortPush.body());
        assertEquals("abort", second.get(60, TimeUnit.SECONDS).object().getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
    }

    @Test
    void pauseContinueAndDrain() throws Exception {
        String longBody = "{\"input_ids\": [4, 5, 6], \"rid\": \"paused-one\", \"sampling_params\": {\"max_new_tokens\": 400, \"ignore_eos\": true}}";
        CompletableFuture<Http.Reply> a = CompletableFuture.supplyAsync(() -> Http.post("/generate", longBody));
        awaitState("in_flight", 1);
        JsonObject paused = Http.admin("/pause_generation", "{\"mode\": \"in_place\"}").object();
        assertEquals("ok", paused.getString("status"));
        assertEquals("paused", Http.get("/rl/state").object().getString("state"));
        CompletableFuture<Http.Reply> queued = CompletableFuture.supplyAsync(() -> Http.post("/generate", Checkpoints.greedyBody(4)));
        Thread.sleep(300);
        assertFalse(a.isDone() || queued.isDone(), "nothing moves while paused");
        assertEquals(200, Http.admin("/continue_generation", "{}").status());
        assertEquals("length", a.get(60, TimeUnit.SECONDS).object().getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        assertEquals(200, queued.get(60, TimeUnit.SECONDS).status());

        CompletableFuture<Http.Reply> b = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [7, 8], \"rid\": \"drained\", \"sampling_params\": {\"max_new_tokens\": 3000, \"ignore_eos\": true}}"));
        awaitState("in_flight", 1);
        JsonObject drain = Http.admin("/drain", "{\"timeout_s\": 0.3, \"mode\": \"abort\"}").object();
        assertTrue(drain.getBoolean("paused"), drain.toString());
        assertEquals("abort", drain.getString("mode"));
        assertTrue(drain.getBoolean("success"), "aborted, nothing is left in flight: " + drain);
        assertEquals(0, drain.getInt("remaining_requests"));
        JsonObject cut = drain.getJsonArray("cut").getJsonObject(0);
        assertEquals("drained", cut.getString("rid"));
        assertTrue(cut.getInt("completion_tokens") > 0);
        JsonObject aborted = b.get(60, TimeUnit.SECONDS).object();
        assertEquals("abort", aborted.getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"));
        assertEquals(cut.getJsonArray("output_ids").size(), aborted.getJsonArray("output_ids").size());
        assertEquals("paused", Http.get("/rl/state").object().getString("state"));
        assertEquals(400, Http.admin("/pause_generation", "{\"mode\": \"sideways\"}").status());
    }

    @Test
    void releaseAndResumeMemory() throws Exception {
        CompletableFuture<Http.Reply> busy = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [1, 2], \"sampling_params\": {\"max_new_tokens\": 300, \"ignore_eos\": true}}"));
        awaitState("in_flight", 1);
        Http.Reply refused = Http.admin("/release_memory_occupation", "{\"tags\": null}");
        assertEquals(409, refused.status(), "release while a request runs is refused, not a crash");
        busy.get(60, TimeUnit.SECONDS);

        Http.Reply rel = Http.admin("/release_memory_occupation", "{\"tags\": [\"weights\", \"kv_cache\"]}");
        assertEquals(200, rel.status(), rel.body());
        JsonObject freed = rel.object().getJsonObject("freed_bytes");
        assertTrue(freed.getJsonNumber("weights").longValue() > 50_000_000L, rel.body());
        assertTrue(freed.getJsonNumber("kv_cache").longValue() > 0);
        JsonObject state = Http.get("/rl/state").object();
        assertEquals("released", state.getString("state"));
        assertFalse(state.getBoolean("ready"));
        assertEquals(503, Http.get("/health/ready").status(), "not ready while released");
        assertEquals(503, Http.post("/generate", Checkpoints.greedyBody(2)).status());
        assertEquals(400, Http.admin("/release_memory_occupation", "{\"tags\": [\"gpu\"]}").status());
        // SGLang's state errors: a second release, and a resume of what is not released, are refused and change nothing
        Http.Reply again = Http.admin("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}");
        assertEquals(400, again.status(), again.body());
        assertTrue(again.body().contains("[kv_cache] that are already released"), again.body());
        Http.Reply notReleased = Http.admin("/resume_memory_occupation", "{\"tags\": [\"cuda_graph\", \"kv_cache\"]}");
        assertEquals(400, notReleased.status(), notReleased.body());
        assertTrue(notReleased.body().contains("[cuda_graph] that are not currently released"), notReleased.body());
        assertEquals(List.of("weights", "kv_cache"), Http.get("/rl/state").object().getJsonArray("released").getValuesAs(JsonString.class)
                .stream().map(JsonString::getString).toList(), "nothing changed");

        JsonObject resumed = Http.admin("/resume_memory_occupation", "{\"tags\": [\"weights\", \"kv_cache\"]}").object();
        assertTrue(resumed.getBoolean("weights_must_be_pushed"));
        assertEquals(503, Http.post("/generate", Checkpoints.greedyBody(2)).status(), "zeroed weights do not serve");
        assertEquals(200, Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + originalDir + "\", \"weight_version\": \"default\"}").status());
        assertEquals(200, Http.get("/health/ready").status());
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))));
    }

    @Test
    void versionsReadBackAndRefusals() throws Exception {
        Http.Reply v = Http.admin("/update_weight_version", "{\"new_version\": \"it-label\"}");
        assertEquals(200, v.status(), v.body());
        assertEquals("it-label", v.object().getString("new_version"));
        assertEquals("it-label", Http.get("/get_weight_version").object().getString("weight_version"));
        assertArrayEquals(original, ids(generate(Checkpoints.greedyBody(12))), "a new label leaves the weights alone");
        assertEquals(400, Http.admin("/update_weight_version", "{}").status());

        assertEquals(200, Http.get("/get_weights_by_name?name=model.norm.weight&truncate_size=3").status());
        assertEquals(3, Http.get("/get_weights_by_name?name=model.norm.weight&truncate_size=3").array().size());
        Http.Reply unknown = Http.post("/get_weights_by_name", "{\"name\": \"model.nope\"}");
        assertEquals(400, unknown.status());
        assertTrue(unknown.body().contains("unknown parameter model.nope"));
        assertEquals(400, Http.post("/get_weights_by_name", "{\"name\": \"model.norm.weight\", \"truncate_size\": 0}").status());
        assertEquals(400, Http.admin("/weights_checker", "{\"action\": \"reset\"}").status(), "an action SGLang does not have");
        Http.Reply noSnapshot = Http.post("/weights_checker", "{\"action\": \"compare\"}");
        assertEquals(400, noSnapshot.status(), "no snapshot yet: the caller's mistake, as in SGLang");
        assertTrue(noSnapshot.body().contains("\"success\":false") && noSnapshot.body().contains("action 'snapshot' first"), noSnapshot.body());
        Http.Reply badSkip = Http.post("/weights_checker", "{\"action\": \"compare\", \"skip_tensor_list\": \"lm_head\"}");
        assertEquals(400, badSkip.status());
        assertTrue(badSkip.body().contains("skip_tensor_list must be a list of strings"), badSkip.body());

        assertEquals(200, Http.admin("/begin_weight_update", "{\"update_id\": \"v1\"}").status());
        assertEquals(200, Http.admin("/begin_weight_update", "{\"update_id\": \"v1\"}").status(), "a retried begin is fine");
        assertEquals(409, Http.admin("/begin_weight_update", "{\"update_id\": \"v2\"}").status(), "one session at a time");
        assertEquals(409, Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + originalDir + "\"}").status());
        Http.Reply empty = Http.admin("/end_weight_update", "{\"update_id\": \"v1\"}");
        assertEquals(400, empty.status(), "ending a session with nothing staged changes nothing");
        assertEquals(409, Http.admin("/abort_weight_update", "{\"update_id\": \"v1\"}").status(), "already closed");
        assertEquals(400, Http.admin("/update_weights_from_disk", "{\"model_path\": \"/nonexistent\"}").status());
        assertEquals(400, Http.admin("/update_weights_from_disk", "{}").status());

        // drain that lets the request finish, then retract mode
        CompletableFuture<Http.Reply> quick = CompletableFuture.supplyAsync(() -> Http.post("/generate", Checkpoints.greedyBody(20)));
        awaitState("in_flight", 1);
        JsonObject d = Http.admin("/drain", "{\"timeout_s\": 30, \"mode\": \"retract\"}").object();
        assertEquals(0, d.getJsonArray("cut").size(), "everything finished within the deadline");
        assertEquals(200, quick.get(60, TimeUnit.SECONDS).status());
        assertEquals(200, Http.admin("/continue_generation", "{}").status());
        assertEquals(400, Http.admin("/drain", "{\"timeout_s\": -1}").status());
    }

    @Test
    void controlRoutesNeedTheAdminKey() {
        assertEquals(403, Http.post("/pause_generation", "{}").status());
        assertEquals(403, Http.post("/update_weights_from_tensor", "{}").status());
        // they take model-sized host memory or overwrite the served weights; compare and checksum only read
        assertEquals(403, Http.post("/weights_checker", "{\"action\": \"snapshot\"}").status());
        assertEquals(403, Http.post("/weights_checker", "{\"action\": \"reset_tensors\"}").status());
        assertEquals(403, Http.post("/post_process_weights", "{}").status());
        assertEquals(403, Http.post("/pull_weights", "{}").status());
        assertEquals(403, Http.post("/release_memory_occupation", "{}").status());
        assertEquals(403, Http.post("/abort_request", "{\"abort_all\": true}").status());
        assertEquals(403, Http.get("/flush_cache").status());
        assertEquals(403, Http.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/pause_generation"))
                .header("Authorization", "Bearer wrong").POST(HttpRequest.BodyPublishers.ofString("{}"))).status());
        assertEquals(200, Http.get("/rl/state").status(), "reading the state needs no admin key");
        assertEquals(200, Http.post("/generate", Checkpoints.greedyBody(1)).status(), "generation needs no admin key");
    }

    static void awaitState(String field, int atLeast) throws InterruptedException {
        for (int i = 0; i < 400; i++) {
            if (Http.get("/rl/state").object().getInt(field) >= atLeast) return;
            Thread.sleep(10);
        }
        throw new AssertionError(field + " never reached " + atLeast);
    }
}
