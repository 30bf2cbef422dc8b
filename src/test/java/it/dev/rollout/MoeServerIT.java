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

    @Test
    void generatesTransformersTokensAndTakesPerExpertAndStackedPushes() throws Exception {
        Http.awaitReady();
        var ref = JsonParser.parseString(Files.readString(FIXTURE.resolve("reference.json"))).getAsJsonObject()
                .getAsJsonArray("prompts");
        int port = ServerProcessIT.freePort();
        try (ServerProcess server = ServerProcess.start(ServerProcessIT.secondServer("moe", port)
                .withEnvironment("ROLLOUT_MODEL_PATH", FIXTURE.toString()).withEnvironment("ROLLOUT_TORCH_THREADS", "1"));
             RolloutClient client = RolloutClient.connect(URI.create("http://localhost:" + port),
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
