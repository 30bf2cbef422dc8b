package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.Safetensors;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code test/registered/core/test_input_embeddings.py} (sgl-project/sglang at
 * 0fb3545acb5206c977e918633c91f04016364c03), over real HTTP against the served model.
 *
 * <p>SGLang makes the embeddings with transformers' {@code get_input_embeddings()}; here they are
 * the rows of {@code model.embed_tokens.weight} read from the served checkpoint on disk, which
 * is what that layer returns. SGLang's tests only print the answers, and leave the text-versus-
 * embeddings comparison out as flaky on GPUs; the served model here runs in float32 on the CPU,
 * where the same rows give the same logits, so the comparison is made exactly, on the token ids
 * (the default model's text is noise).
 */
class SglangInputEmbeddingsIT {
    static final List<String> TEXTS = List.of("The capital of France is",
            "What is the best time of year to visit Japan for cherry blossoms?");
    static final String SAMPLING = "\"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": 50}";
    static float[] table;   // (vocab, hidden), row-major
    static int hidden;

    @BeforeAll
    static void embeddingTable() throws Exception {
        Http.awaitReady();
        Path dir = Path.of(Http.get("/get_model_info").object().getString("model_path"));
        Map<String, Safetensors.Entry> header = Safetensors.readHeader(dir.resolve("model.safetensors"));
        Safetensors.Entry e = header.get("model.embed_tokens.weight");
        hidden = (int) e.shape()[1];
        ByteBuffer b = Safetensors.map(e).order(ByteOrder.LITTLE_ENDIAN);
        table = new float[(int) (e.shape()[0] * hidden)];
        switch (e.dtype()) {
            case "F32" -> b.asFloatBuffer().get(table);
            case "BF16" -> { for (int i = 0; i < table.length; i++) table[i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xFFFF) << 16); }
            default -> throw new AssertionError("the served checkpoint stores " + e.dtype());
        }
    }

    static int[] tokens(String text) {
        JsonArray ids = Http.post("/tokenize", "{\"prompt\": " + jakarta.json.Json.createValue(text) + "}").object().getJsonArray("tokens");
        return ids.stream().mapToInt(v -> ((jakarta.json.JsonNumber) v).intValue()).toArray();
    }

    /** The prompt's embedding rows, as transformers' input embeddings give them: (seq_len, hidden). */
    static float[][] embeddings(String text) {
        int[] ids = tokens(text);
        float[][] rows = new float[ids.length][hidden];
        for (int i = 0; i < ids.length; i++) System.arraycopy(table, ids[i] * hidden, rows[i], 0, hidden);
        return rows;
    }

    static String json(float[][] rows) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < rows.length; i++) {
            b.append(i == 0 ? "[" : ",[");
            // Float.toString keeps every bit of a float32, as Python's repr of the float does
            for (int j = 0; j < rows[i].length; j++) b.append(j == 0 ? "" : ",").append(rows[i][j]);
            b.append(']');
        }
        return b.append(']').toString();
    }

    static JsonObject generate(String body) {
        Http.Reply r = Http.post("/generate", body);
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    static List<Integer> outputIds(JsonObject answer) {
        return answer.getJsonArray("output_ids").stream().map(v -> ((jakarta.json.JsonNumber) v).intValue()).toList();
    }

    @Test
    void textBasedResponse() {
        for (String text : TEXTS) {
            JsonObject a = generate("{\"text\": " + jakarta.json.Json.createValue(text) + ", " + SAMPLING + "}");
            assertEquals(tokens(text).length, a.getJsonObject("meta_info").getInt("prompt_tokens"));
        }
    }

    @Test
    void embeddingBasedResponse() {
        for (String text : TEXTS) {
            float[][] rows = embeddings(text);
            JsonObject a = generate("{\"input_embeds\": " + json(rows) + ", " + SAMPLING + "}");
            assertEquals(rows.length, a.getJsonObject("meta_info").getInt("prompt_tokens"));
            assertTrue(a.containsKey("text"));
            assertEquals(a.getJsonObject("meta_info").getInt("completion_tokens"), outputIds(a).size());
        }
    }

    @Test
    void embeddingBytesResponse() {
        for (String text : TEXTS) {
            float[][] rows = embeddings(text);
            ByteBuffer raw = ByteBuffer.allocate(rows.length * hidden * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (float[] row : rows) for (float v : row) raw.putFloat(v);
            JsonObject list = generate("{\"input_embeds\": " + json(rows) + ", " + SAMPLING + "}");
            JsonObject bytes = generate("{\"input_embeds_bytes\": \"" + Base64.getEncoder().encodeToString(raw.array())
                    + "\", \"input_embeds_shape\": [" + rows.length + ", " + hidden + "], " + SAMPLING + "}");
            assertEquals(list.getString("text"), bytes.getString("text"));
            assertEquals(outputIds(list), outputIds(bytes));
        }
    }

    @Test
    void compareTextVsEmbedding() {
        for (String text : TEXTS) {
            JsonObject byText = generate("{\"text\": " + jakarta.json.Json.createValue(text) + ", " + SAMPLING + "}");
            JsonObject byEmbeds = generate("{\"input_embeds\": " + json(embeddings(text)) + ", " + SAMPLING + "}");
            assertEquals(outputIds(byText), outputIds(byEmbeds), "greedy from the embedding rows of a prompt is greedy from its tokens");
            assertEquals(byText.getString("text"), byEmbeds.getString("text"));
        }
    }

    /** Not in SGLang's file: the refusals a client sees, each naming the field. */
    @Test
    void badEmbeddingsAreRefusedWithoutDisturbingTheServer() {
        Http.Reply narrow = Http.post("/generate", "{\"input_embeds\": [[1.0, 2.0]], " + SAMPLING + "}");
        assertEquals(400, narrow.status());
        assertTrue(narrow.body().contains("input_embeds[0] has 2 values; the model's hidden size is " + hidden), narrow.body());
        Http.Reply both = Http.post("/generate", "{\"input_ids\": [1], \"input_embeds\": [[1.0]]}");
        assertEquals(400, both.status());
        generate("{\"input_ids\": [1, 2, 3], " + SAMPLING + "}");
    }
}
