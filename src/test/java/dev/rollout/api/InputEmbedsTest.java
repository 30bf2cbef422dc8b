package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Base64;
import org.junit.jupiter.api.Test;

/** SGLang's {@code input_embeds} and {@code input_embeds_bytes} on /generate, for a model of hidden size 8 and context 64. */
class InputEmbedsTest {
    static final GenerateRequestParser PARSER = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 64, 10_000, 4, 8), null);

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    static String row(float v) {
        StringBuilder b = new StringBuilder("[");
        for (int j = 0; j < 8; j++) b.append(j == 0 ? "" : ",").append(v + j);
        return b.append("]").toString();
    }

    static String refused(String body) {
        ApiException e = assertThrows(ApiException.class, () -> PARSER.parse(json(body)));
        assertEquals(400, e.status());
        return e.getMessage();
    }

    @Test
    void onePromptOfRowsIsItsOwnPromptWithPlaceholderIds() {
        GenerateRequest r = PARSER.parse(json("{\"input_embeds\": [" + row(0) + "," + row(10) + "," + row(20) + "]}"));
        assertEquals(false, r.batch());
        GenerateRequest.Item item = r.items().get(0);
        assertEquals(3, item.inputIds().length);
        assertEquals(3, item.embeds().length());
        assertEquals(8, item.embeds().hidden());
        assertEquals(12.0f, item.embeds().values()[8 + 2]);
    }

    @Test
    void aListOfPromptsIsABatch() {
        GenerateRequest r = PARSER.parse(json("{\"input_embeds\": [[" + row(0) + "], [" + row(1) + "," + row(2) + "]], "
                + "\"sampling_params\": {\"n\": 2}}"));
        assertEquals(true, r.batch());
        assertEquals(2, r.items().size());
        assertEquals(2, r.items().get(1).embeds().length());
        assertEquals(4, r.numSequences());
    }

    @Test
    void theBytesFormIsFloat32LittleEndianWithItsShape() {
        ByteBuffer b = ByteBuffer.allocate(2 * 8 * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 16; i++) b.putFloat(i * 0.5f);
        String b64 = Base64.getEncoder().encodeToString(b.array());
        GenerateRequest r = PARSER.parse(json("{\"input_embeds_bytes\": \"" + b64 + "\", \"input_embeds_shape\": [2, 8]}"));
        float[] want = new float[16];
        for (int i = 0; i < 16; i++) want[i] = i * 0.5f;
        assertArrayEquals(want, r.items().get(0).embeds().values());

        assertTrue(refused("{\"input_embeds_bytes\": \"" + b64 + "\", \"input_embeds_shape\": [3, 8]}")
                .contains("holds 64 bytes; shape 3 x 8 of float32 is 96"));
        assertTrue(refused("{\"input_embeds_bytes\": \"" + b64 + "\"}").contains("needs input_embeds_shape"));
        assertTrue(refused("{\"input_embeds_bytes\": \"" + b64 + "\", \"input_embeds_shape\": [4, 4]}").contains("[rows, 8]"));
        assertTrue(refused("{\"input_embeds_bytes\": \"%%%\", \"input_embeds_shape\": [2, 8]}").contains("not base64"));
        b.putFloat(4 * 3, Float.NaN);
        assertEquals("input_embeds_bytes[0][3] is not a finite float32", refused("{\"input_embeds_bytes\": \""
                + Base64.getEncoder().encodeToString(b.array()) + "\", \"input_embeds_shape\": [2, 8]}"));
    }

    @Test
    void badEmbeddingsAreRefusedNamingWhere() {
        assertEquals("input_embeds[1] has 3 values; the model's hidden size is 8",
                refused("{\"input_embeds\": [" + row(0) + ", [1, 2, 3]]}"));
        assertTrue(refused("{\"input_embeds\": [[" + row(0) + "], [" + row(0) + ", [1]]]}").startsWith("input_embeds[1][1] has 1 values"));
        assertTrue(refused("{\"input_embeds\": [[1, 2, 3, 4, 5, 6, 7, \"x\"]]}").startsWith("input_embeds[0][7]"));
        assertTrue(refused("{\"input_embeds\": [[1, 2, 3, 4, 5, 6, 7, 1e39]]}").contains("input_embeds[0][7] is not a finite float32"));
        assertTrue(refused("{\"input_embeds\": []}").startsWith("input_embeds"));
        assertTrue(refused("{\"input_embeds\": [1, 2]}").startsWith("input_embeds"));
        assertEquals("Either text, input_ids or input_embeds should be provided (exactly one of them).",
                refused("{\"input_ids\": [1], \"input_embeds\": [" + row(0) + "]}"));
        assertTrue(refused("{\"input_embeds\": [" + row(0) + "], \"return_logprob\": true, \"logprob_start_len\": 0}")
                .contains("logprob_start_len must be -1 with input_embeds"));
        assertTrue(refused("{\"input_embeds\": [" + row(0) + "], \"session_params\": {\"id\": \"s1\"}}")
                .startsWith("input_embeds cannot continue a session"));
        StringBuilder tooLong = new StringBuilder("{\"input_embeds\": [");
        for (int i = 0; i < 64; i++) tooLong.append(i == 0 ? "" : ",").append(row(i));
        assertTrue(refused(tooLong.append("]}").toString()).contains("The input (64 tokens) is longer than the model's context length"));
    }

    @Test
    void tokenPromptsCarryNoEmbeddings() {
        assertNull(PARSER.parse(json("{\"input_ids\": [1, 2]}")).items().get(0).embeds());
    }
}
