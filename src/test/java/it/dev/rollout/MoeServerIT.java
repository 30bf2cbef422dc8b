package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.rollout.client.RolloutClient;
import dev.rollout.safetensors.SafetensorsWriter;
import dev.rollout.client.ServerProcess;
import dev.rollout.model.Safetensors;
import com.google.gson.JsonParser;
import jakarta.json.JsonArray;
import jakarta.json.JsonValue;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A server of a mixture-of-experts model (the Qwen3-MoE fixture that transformers made: 8
 * experts, 2 per token, a dense layer between two sparse ones) generates transformers' greedy
 * tokens, and takes pushes under both names Hugging Face gives experts: a push of one layer's
 * experts under the checkpoint's per-expert names changes the output, and the same layer pushed
 * back as transformers 5 holds it in memory (stacked gate_up_proj and down_proj, a trainer's
 * state_dict) restores it. The stacked name also reads back.
 */
class MoeServerIT {
    private static final Path FIXTURE = Path.of("src/test/resources/fixtures/qwen3_moe").toAbsolutePath();
    private static final int EXPERTS = 8;
    private static final String LAYER = "model.layers.0.mlp.experts.";

    /**
     * One server of the fixture for both tests (a Liberty start takes some 20 s on a CI machine),
     * with routed experts returned and incremental streaming output on: what the second test
     * asks; generation and pushes are the same either way.
     */
    private static ServerProcess server;

    @BeforeAll
    static void start() throws Exception {
        Http.awaitReady();
        server = ServerProcess.start(ServerProcessIT.secondServer("moe", ServerProcessIT.freePort())
                .withEnvironment("ROLLOUT_MODEL_PATH", FIXTURE.toString()).withEnvironment("ROLLOUT_TORCH_THREADS", "1")
                .withEnvironment("ROLLOUT_ENABLE_RETURN_ROUTED_EXPERTS", "true")
                .withEnvironment("ROLLOUT_INCREMENTAL_STREAMING_OUTPUT", "true"));
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    @Test
    void generatesTransformersTokensAndTakesPerExpertAndStackedPushes() throws Exception {
        var ref = JsonParser.parseString(Files.readString(FIXTURE.resolve("reference.json"))).getAsJsonObject()
                .getAsJsonArray("prompts");
        int port = server.url().getPort();
        try (RolloutClient client = RolloutClient.connect(URI.create("http://localhost:" + port),
                     RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY))) {
            String base = "http://localhost:" + port;
            List<String> before = new ArrayList<>();
            for (var p : ref) {
                var prompt = p.getAsJsonObject();
                String got = greedy(base, prompt.getAsJsonArray("input_ids").toString(), prompt.getAsJsonArray("output_ids").size());
                assertEquals(prompt.getAsJsonArray("output_ids").toString().replace(" ", ""), got, "transformers' greedy tokens");
                before.add(got);
            }

            // layer 0's experts with every gate negated, under the checkpoint's names: the output changes
            Map<String, Safetensors.Entry> header = Safetensors.readHeader(FIXTURE.resolve("model.safetensors"));
            Map<String, SafetensorsWriter.Tensor> negated = new LinkedHashMap<>();
            for (int e = 0; e < EXPERTS; e++) {
                String name = LAYER + e + ".gate_proj.weight";
                negated.put(name, new SafetensorsWriter.Tensor("F32", header.get(name).shape(), negate(bytes(header.get(name)))));
            }
            assertEquals("moe-negated", client.pushWeights(write(negated), "moe-negated").weightVersion());
            assertNotEquals(before, outputs(base, ref), "negated gates route and compute otherwise");

            // the same layer as a trainer's state_dict holds it: stacked, (experts, 2 * inter, hidden) and (experts, hidden, inter)
            long[] gate = header.get(LAYER + "0.gate_proj.weight").shape(), down = header.get(LAYER + "0.down_proj.weight").shape();
            ByteArrayOutputStream gateUp = new ByteArrayOutputStream(), downs = new ByteArrayOutputStream();
            for (int e = 0; e < EXPERTS; e++) {
                gateUp.writeBytes(bytes(header.get(LAYER + e + ".gate_proj.weight")));
                gateUp.writeBytes(bytes(header.get(LAYER + e + ".up_proj.weight")));
                downs.writeBytes(bytes(header.get(LAYER + e + ".down_proj.weight")));
            }
            Map<String, SafetensorsWriter.Tensor> stacked = new LinkedHashMap<>();
            stacked.put(LAYER + "gate_up_proj", new SafetensorsWriter.Tensor("F32", new long[] {EXPERTS, 2 * gate[0], gate[1]},
                    ByteBuffer.wrap(gateUp.toByteArray())));
            stacked.put(LAYER + "down_proj", new SafetensorsWriter.Tensor("F32", new long[] {EXPERTS, down[0], down[1]},
                    ByteBuffer.wrap(downs.toByteArray())));
            assertEquals("moe-stacked", client.pushWeights(write(stacked), "moe-stacked").weightVersion());
            assertEquals(before, outputs(base, ref), "the stacked push restores every expert of the layer");

            // read back by the stacked name: expert 0's gate rows, then its up rows
            Http.Reply back = Http.send(java.net.http.HttpRequest.newBuilder(URI.create(base + "/get_weights_by_name"))
                    .header("Content-Type", "application/json").header("Authorization", "Bearer " + Http.ADMIN_KEY)
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"name\": \"" + LAYER + "gate_up_proj\", \"truncate_size\": 1}")));
            assertEquals(200, back.status(), back.body());
            JsonArray expert0 = back.array().getJsonArray(0);
            assertEquals(2 * gate[0], expert0.size());
            float[] want = floats(gateUp.toByteArray());
            int at = 0;
            for (JsonValue row : expert0)
                for (JsonValue x : row.asJsonArray())
                    assertEquals(want[at++], ((jakarta.json.JsonNumber) x).doubleValue(), 0.0, "value " + (at - 1));
        }
    }

    /**
     * SGLang's return_routed_experts on the same model: each position's experts in every layer
     * (the dense one's zeros), as base64 int32, are those transformers' router chose; streamed
     * incrementally, the chunks' pieces put together are the whole; an abort keeps every position
     * computed before it. A dense server refuses the field by name.
     */
    @Test
    void returnsEachTokensRoutedExpertsWholeStreamedAndCutByAnAbort() throws Exception {
        Http.awaitReady();
        Http.Reply dense = Http.post("/generate", "{\"input_ids\": [1, 2, 3], \"return_routed_experts\": true, "
                + "\"sampling_params\": {\"max_new_tokens\": 1}}");
        assertEquals(400, dense.status(), dense.body());
        org.junit.jupiter.api.Assertions.assertTrue(dense.body().contains("rollout.enable-return-routed-experts"), dense.body());

        var ref = JsonParser.parseString(Files.readString(FIXTURE.resolve("reference.json"))).getAsJsonObject().getAsJsonArray("prompts");
        var prompt = ref.get(2).getAsJsonObject();
        int layers = 3, k = 2, moeLayers[] = {0, 2};   // mlp_only_layers = [1]
        String base = "http://localhost:" + server.url().getPort();
        assertEquals(JsonValue.TRUE, Http.send(java.net.http.HttpRequest.newBuilder(URI.create(base + "/server_info"))).object()
                .get("enable_return_routed_experts"));
        int tokens = prompt.getAsJsonArray("output_ids").size();
        String body = "{\"input_ids\": " + prompt.getAsJsonArray("input_ids") + ", \"return_routed_experts\": true, "
                + "\"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": " + tokens + ", \"ignore_eos\": true}";
        Http.Reply whole = post(base, body + "}");
        assertEquals(200, whole.status(), whole.body());
        int[] routed = int32s(whole.object().getJsonObject("meta_info").getString("routed_experts"));
        var want = prompt.getAsJsonArray("routed_experts");                                 // (positions, MoE layers, k)
        assertEquals(want.size() * layers * k, routed.length, "prompt + output - 1 positions x layers x top-k");
        for (int t = 0; t < want.size(); t++)
            for (int l = 0; l < layers; l++)
                for (int j = 0; j < k; j++) {
                    int m = l == moeLayers[0] ? 0 : l == moeLayers[1] ? 1 : -1;
                    int expected = m < 0 ? 0 : want.get(t).getAsJsonArray().get(m).getAsJsonArray().get(j).getAsInt();
                    assertEquals(expected, routed[(t * layers + l) * k + j], "position " + t + ", layer " + l + ", choice " + j);
                }

        // streamed, each chunk with only what is new: the pieces are the whole
        Http.Reply stream = post(base, body + ", \"stream\": true}");
        assertEquals(200, stream.status(), stream.body());
        ByteArrayOutputStream pieces = new ByteArrayOutputStream();
        int carrying = 0;
        for (String line : stream.body().split("\n")) {
            if (!line.startsWith("data: {")) continue;
            var chunk = jakarta.json.Json.createReader(new java.io.StringReader(line.substring(6))).readObject().getJsonObject("meta_info");
            if (!chunk.containsKey("routed_experts")) continue;
            byte[] b = java.util.Base64.getDecoder().decode(chunk.getString("routed_experts"));
            if (b.length > 0) carrying++;
            pieces.writeBytes(b);
        }
        org.junit.jupiter.api.Assertions.assertTrue(carrying > 1, "several chunks carried experts: " + carrying);
        org.junit.jupiter.api.Assertions.assertArrayEquals(routed, int32s(java.util.Base64.getEncoder().encodeToString(pieces.toByteArray())));

        // cut by an abort: every position computed before it, and its experts, are reported
        int len = prompt.getAsJsonArray("input_ids").size();
        String longBody = "{\"rid\": \"cut\", \"input_ids\": " + prompt.getAsJsonArray("input_ids") + ", \"return_routed_experts\": true, "
                + "\"stream\": true, \"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": " + (250 - len) + ", \"ignore_eos\": true}}";
        java.net.http.HttpResponse<java.util.stream.Stream<String>> open = Http.CLIENT.send(java.net.http.HttpRequest.newBuilder(
                URI.create(base + "/generate")).header("Content-Type", "application/json")
                .POST(java.net.http.HttpRequest.BodyPublishers.ofString(longBody)).build(), java.net.http.HttpResponse.BodyHandlers.ofLines());
        ByteArrayOutputStream cut = new ByteArrayOutputStream();
        jakarta.json.JsonObject last = null;
        boolean aborted = false;
        for (java.util.Iterator<String> it = open.body().iterator(); it.hasNext(); ) {
            String line = it.next();
            if (!line.startsWith("data: {")) continue;
            last = jakarta.json.Json.createReader(new java.io.StringReader(line.substring(6))).readObject();
            if (last.getJsonObject("meta_info").containsKey("routed_experts"))
                cut.writeBytes(java.util.Base64.getDecoder().decode(last.getJsonObject("meta_info").getString("routed_experts")));
            if (!aborted) {
                assertEquals(200, post(base, "/abort_request", "{\"rid\": \"cut\"}").status());
                aborted = true;
            }
        }
        var meta = last.getJsonObject("meta_info");
        assertEquals("abort", meta.getJsonObject("finish_reason").getString("type"), "aborted before its " + (250 - len) + " tokens");
        int made = meta.getInt("completion_tokens");
        int[] kept = int32s(java.util.Base64.getEncoder().encodeToString(cut.toByteArray()));
        assertEquals((len + made - 1) * layers * k, kept.length, "every position computed before the abort");
        for (int i = 0; i < Math.min(kept.length, routed.length); i++) assertEquals(routed[i], kept[i], "the same greedy positions, value " + i);
    }

    private static Http.Reply post(String base, String body) {
        return post(base, "/generate", body);
    }

    private static Http.Reply post(String base, String path, String body) {
        return Http.send(java.net.http.HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .POST(java.net.http.HttpRequest.BodyPublishers.ofString(body)));
    }

    private static int[] int32s(String base64) {
        byte[] b = java.util.Base64.getDecoder().decode(base64);
        int[] out = new int[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(out);
        return out;
    }

    private static List<String> outputs(String base, com.google.gson.JsonArray ref) {
        List<String> out = new ArrayList<>();
        for (var p : ref) {
            var prompt = p.getAsJsonObject();
            out.add(greedy(base, prompt.getAsJsonArray("input_ids").toString(), prompt.getAsJsonArray("output_ids").size()));
        }
        return out;
    }

    /** The greedy output ids of one prompt, as JSON without spaces. */
    private static String greedy(String base, String inputIds, int tokens) {
        Http.Reply r = Http.send(java.net.http.HttpRequest.newBuilder(URI.create(base + "/generate"))
                .header("Content-Type", "application/json")
                .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"input_ids\": " + inputIds + ", \"sampling_params\": "
                        + "{\"temperature\": 0, \"max_new_tokens\": " + tokens + ", \"ignore_eos\": true}}")));
        assertEquals(200, r.status(), r.body());
        return r.object().getJsonArray("output_ids").toString().replace(" ", "");
    }

    private static byte[] bytes(Safetensors.Entry e) throws Exception {
        ByteBuffer b = Safetensors.map(e);
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }

    /** float32 little-endian values with their sign flipped. */
    private static ByteBuffer negate(byte[] f32) {
        byte[] out = f32.clone();
        for (int i = 3; i < out.length; i += 4) out[i] ^= (byte) 0x80;
        return ByteBuffer.wrap(out);
    }

    private static float[] floats(byte[] f32) {
        float[] out = new float[f32.length / 4];
        ByteBuffer.wrap(f32).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    private static byte[] write(Map<String, SafetensorsWriter.Tensor> tensors) throws Exception {
        Path tmp = Files.createTempFile("moe-push", ".safetensors");
        try {
            Safetensors.write(tmp, tensors, Map.of());
            return Files.readAllBytes(tmp);
        } finally {
            Files.delete(tmp);
        }
    }
}
