package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;

import it.dev.rollout.Http;
import it.dev.rollout.Sse;
import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What the ported SGLang tests share: bodies written like SGLang's Python dicts, and the few
 * calls its tests make through {@code requests}. The tests run against the build's one IT server
 * (the default model: random weights, the real Qwen3 tokenizer, a 4,096-token context).
 */
final class Sglang {
    private Sglang() {}

    /** A JSON object from key, value pairs, the way SGLang's tests write {@code json={...}}. */
    static JsonObject obj(Object... kv) {
        JsonObjectBuilder b = Json.createObjectBuilder();
        for (int i = 0; i < kv.length; i += 2) {
            if (kv[i + 1] == null) b.addNull((String) kv[i]);
            else b.add((String) kv[i], value(kv[i + 1]));
        }
        return b.build();
    }

    static JsonArray arr(Object... items) {
        JsonArrayBuilder b = Json.createArrayBuilder();
        for (Object o : items) {
            if (o == null) b.addNull();
            else b.add(value(o));
        }
        return b.build();
    }

    private static JsonValue value(Object o) {
        if (o instanceof JsonValue v) return v;
        if (o instanceof String s) return Json.createValue(s);
        if (o instanceof Integer n) return Json.createValue(n);
        if (o instanceof Long n) return Json.createValue(n);
        if (o instanceof Number n) return Json.createValue(n.doubleValue());
        if (o instanceof Boolean z) return z ? JsonValue.TRUE : JsonValue.FALSE;
        if (o instanceof int[] a) {
            JsonArrayBuilder b = Json.createArrayBuilder();
            for (int x : a) b.add(x);
            return b.build();
        }
        if (o instanceof List<?> l) return arr(l.toArray());
        if (o instanceof Map<?, ?> m) {
            JsonObjectBuilder b = Json.createObjectBuilder();
            m.forEach((k, v) -> b.add((String) k, value(v)));
            return b.build();
        }
        throw new IllegalArgumentException("no JSON for " + o.getClass());
    }

    /** POST, expecting 200: the answer. */
    static Http.Reply ok(String path, JsonObject body) {
        Http.Reply r = Http.post(path, body.toString());
        assertEquals(200, r.status(), path + " " + body + " -> " + r.body());
        return r;
    }

    static JsonObject generate(JsonObject body) {
        return ok("/generate", body).object();
    }

    /** The data events of a streamed call, parsed, without the closing [DONE]. */
    static List<JsonObject> stream(String path, JsonObject body) {
        List<JsonObject> chunks = new ArrayList<>();
        List<String> data = Sse.post(path, body.toString());
        assertEquals("[DONE]", data.get(data.size() - 1), "a stream ends with [DONE]");
        for (String d : data.subList(0, data.size() - 1)) chunks.add(Sse.json(d));
        return chunks;
    }

    static int[] ints(JsonArray a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = ((JsonNumber) a.get(i)).intValue();
        return out;
    }

    static List<Integer> list(JsonArray a) {
        List<Integer> out = new ArrayList<>();
        for (int x : ints(a)) out.add(x);
        return out;
    }

    /** The prompt's ids, as SGLang's tests get them from transformers' tokenizer. */
    static int[] tokenize(String text, boolean addSpecialTokens) {
        return ints(ok("/tokenize", obj("prompt", text, "add_special_tokens", addSpecialTokens)).object().getJsonArray("tokens"));
    }

    /** The model's path, which SGLang's tests send as the OpenAI model name ({@code self.model}). */
    static String modelPath() {
        return Http.get("/get_model_info").object().getString("model_path");
    }

    static String currentVersion() {
        return Http.get("/get_model_info").object().getString("weight_version");
    }
}
