package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** /tokenize and /detokenize (SGLang's, also under /v1/) with the served model's Qwen3 tokenizer. */
class TokenizeIT {
    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    private static List<Integer> ints(JsonArray a) {
        return a.getValuesAs(jakarta.json.JsonNumber.class).stream().map(jakarta.json.JsonNumber::intValue).toList();
    }

    @Test
    void tokenizesAsTheModelDoesAndDecodesBack() {
        JsonObject t = Http.post("/tokenize", "{\"prompt\": \"Hello, world\"}").object();
        assertEquals(List.of(9707, 11, 1879), ints(t.getJsonArray("tokens")), "Qwen3's ids, no BOS");
        assertEquals(3, t.getInt("count"));
        assertTrue(t.getInt("max_model_len") > 0);
        assertEquals(t, Http.post("/v1/tokenize", "{\"prompt\": \"Hello, world\"}").object());

        String text = "héllo 世界 🙂 <|im_end|>";
        JsonArray ids = Http.post("/tokenize", "{\"prompt\": \"" + text + "\"}").object().getJsonArray("tokens");
        assertEquals(text, Http.post("/detokenize", "{\"tokens\": " + ids + "}").object().getString("text"), "multi-byte text round-trips");
        assertEquals("héllo 世界 🙂 ", Http.post("/v1/detokenize", "{\"tokens\": " + ids + ", \"skip_special_tokens\": true}").object()
                .getString("text"), "the special token dropped on request");
    }

    @Test
    void takesBatches() {
        JsonObject t = Http.post("/tokenize", "{\"prompt\": [\"Hello, world\", \"Hello\"]}").object();
        assertEquals(List.of(9707, 11, 1879), ints(t.getJsonArray("tokens").getJsonArray(0)));
        assertEquals(List.of(9707), ints(t.getJsonArray("tokens").getJsonArray(1)));
        assertEquals(2, t.getJsonArray("count").size());
        JsonArray texts = Http.post("/detokenize", "{\"tokens\": [[9707, 11, 1879], [9707]]}").object().getJsonArray("text");
        assertEquals("Hello, world", texts.getString(0));
        assertEquals("Hello", texts.getString(1));
    }

    @Test
    void refusesBadInputByName() {
        Http.Reply r = Http.post("/tokenize", "{\"text\": \"Hello\"}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("prompt"), r.body());
        r = Http.post("/tokenize", "{\"prompt\": 7}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("prompt"), r.body());
        r = Http.post("/detokenize", "{\"tokens\": [9707, 99999999]}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("outside the vocabulary"), r.body());
        r = Http.post("/detokenize", "{\"tokens\": [\"a\"]}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("tokens[0]"), r.body());
    }
}
