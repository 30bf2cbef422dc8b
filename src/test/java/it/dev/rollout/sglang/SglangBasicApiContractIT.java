package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.arr;
import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code python/sglang/test/kits/basic_api_contract_kit.py} at commit
 * {@code e861116ea4051e42983d13ce255111cd2c059fc1} ({@code BasicAPIContractMixin}), every case,
 * over plain HTTP. As in the kit, the OpenAI probes name the model {@code "default"}.
 *
 * <p>The kit wants non-empty text from a real model. The default model has random weights, so the
 * text checks become structural ones: a string, generated from at least one token.
 */
class SglangBasicApiContractIT {
    /** The kit's {@code served_model_name}. */
    static final String SERVED_MODEL_NAME = "default";

    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    @Test
    void test_health() {
        assertEquals(200, Http.get("/health").status());
    }

    @Test
    void test_health_generate() {
        assertEquals(200, Http.get("/health_generate").status());
    }

    @Test
    void test_get_server_info() {
        Http.Reply r = Http.get("/get_server_info");
        assertEquals(200, r.status());
        assertFalse(r.object().isEmpty());
    }

    @Test
    void test_get_model_info() {
        Http.Reply r = Http.get("/get_model_info");
        assertEquals(200, r.status());
        assertTrue(r.object().containsKey("model_path"));
        assertFalse(r.object().getString("model_path").isEmpty());
    }

    @Test
    void test_openai_chat_completion() {
        JsonObject body = Sglang.ok("/v1/chat/completions", obj("model", SERVED_MODEL_NAME,
                "messages", arr(obj("role", "user", "content", "Say hi in one word.")), "temperature", 0.0, "max_tokens", 16)).object();
        assertTrue(body.containsKey("choices"));
        assertFalse(body.getJsonArray("choices").isEmpty());
        JsonObject message = body.getJsonArray("choices").getJsonObject(0).getJsonObject("message");
        assertEquals(JsonValue.ValueType.STRING, message.get("content").getValueType());
        // random weights: the kit's len(content) > 0 becomes "tokens were generated"; with Qwen3's
        // template they may all be reasoning (reasoning_content), leaving content ""
        assertTrue(body.getJsonObject("usage").getInt("completion_tokens") > 0, body.toString());
        assertTrue(body.containsKey("usage"));
    }

    @Test
    void test_openai_completion() {
        JsonObject body = Sglang.ok("/v1/completions", obj("model", SERVED_MODEL_NAME, "prompt", "The capital of France is",
                "temperature", 0.0, "max_tokens", 16)).object();
        assertFalse(body.getJsonArray("choices").isEmpty());
        JsonObject choice = body.getJsonArray("choices").getJsonObject(0);
        assertEquals(JsonValue.ValueType.STRING, choice.get("text").getValueType());
        assertFalse(choice.getString("text").isEmpty(), body.toString());
        assertTrue(body.containsKey("usage"));
    }
}
