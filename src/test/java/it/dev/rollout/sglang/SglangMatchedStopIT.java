package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.arr;
import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SGLang's {@code test/registered/openai_server/validation/test_matched_stop.py} at commit
 * {@code 008b79d2358b08adf9b6c879625030f890c8c4e2}, with its cases from
 * {@code python/sglang/test/kits/matched_stop_kit.py} at {@code ad0119fdde519598c25f5c48b95dacaa2b85d607}:
 * {@code choices[].matched_stop} on {@code /v1/completions} and {@code /v1/chat/completions}, the
 * model named by its path as the kit names it ({@code self.model}).
 *
 * <p>The kit stops a trained model on {@code "\n"} and on its EOS ids (Llama's 128000, 128009,
 * 2). The default model has random weights, so the stops are taken from its own greedy answer:
 * a piece of the text it writes (the stop string) and a token it writes (in {@code stop_token_ids},
 * standing for the EOS id). Greedy decoding repeats that answer, so the stop is reached.
 */
class SglangMatchedStopIT {
    static final String MANY_NEW_TOKENS_PROMPT = """

            Please write an extremely detailed and vivid fantasy story, set in a world full of intricate magic systems, political intrigue, and complex characters.
            Ensure that you thoroughly describe every scene, character's motivations, and the environment. Include long, engaging dialogues and elaborate on the inner thoughts of the characters.
            Each section should be as comprehensive as possible to create a rich and immersive experience for the reader.
            The story should span multiple events, challenges, and character developments over time. Aim to make the story at least 3,000 words long.
            """;
    static String model;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        model = Sglang.modelPath();
    }

    /** The kit's payload, plus what the structural stops need. */
    static JsonObject completions(String prompt, int maxTokens, Object... extra) {
        List<Object> kv = new ArrayList<>(List.of("prompt", prompt, "model", model, "temperature", 0, "top_p", 1, "max_tokens", maxTokens));
        kv.addAll(Arrays.asList(extra));
        return Sglang.ok("/v1/completions", obj(kv.toArray())).object();
    }

    static JsonObject chat(String prompt, int maxTokens, Object... extra) {
        List<Object> kv = new ArrayList<>(List.of("model", model, "messages", arr(obj("role", "system", "content", "You are a helpful AI assistant"),
                obj("role", "user", "content", prompt)), "temperature", 0, "top_p", 1, "max_tokens", maxTokens));
        kv.addAll(Arrays.asList(extra));
        return Sglang.ok("/v1/chat/completions", obj(kv.toArray())).object();
    }

    /** The kit's two assertions on the first choice. */
    static void expect(JsonObject res, String finishReason, Object... matchedStop) {
        JsonObject choice = res.getJsonArray("choices").getJsonObject(0);
        assertEquals(finishReason, choice.getString("finish_reason"), res.toString());
        JsonValue got = choice.get("matched_stop");
        assertTrue(choice.containsKey("matched_stop"), res.toString());
        List<JsonValue> wanted = new ArrayList<>();
        for (Object m : matchedStop) wanted.add(m == null ? JsonValue.NULL : obj("v", m).get("v"));
        assertTrue(wanted.contains(got), "matched_stop " + got + ", expected one of " + wanted);
    }

    /** A piece of the greedy answer's text (ids decoded as the stop matcher sees them), away from its start. */
    static String pieceOf(JsonObject res) {
        int[] ids = Sglang.ints(res.getJsonArray("choices").getJsonObject(0).getJsonArray("token_ids"));
        String text = Sglang.ok("/detokenize", obj("tokens", ids, "skip_special_tokens", true)).object().getString("text");
        String clean = text.replace("\uFFFD", "");
        assertTrue(clean.length() >= 8, "the greedy answer should have some text: " + text);
        int at = clean.length() / 2;
        return clean.substring(at, at + 2);
    }

    /** A token of the greedy answer, standing for the model's EOS id. */
    static int tokenOf(JsonObject res) {
        int[] ids = Sglang.ints(res.getJsonArray("choices").getJsonObject(0).getJsonArray("token_ids"));
        return ids[Math.min(3, ids.length - 1)];
    }

    @Test
    void test_finish_stop_str() {
        String stop = pieceOf(completions(MANY_NEW_TOKENS_PROMPT, 40, "return_token_ids", true));
        expect(completions(MANY_NEW_TOKENS_PROMPT, 1000, "stop", stop), "stop", stop);
        String chatStop = pieceOf(chat(MANY_NEW_TOKENS_PROMPT, 40, "return_token_ids", true));
        expect(chat(MANY_NEW_TOKENS_PROMPT, 1000, "stop", chatStop), "stop", chatStop);
    }

    /**
     * The kit's stop_regex {@code and|or} and its sentence end {@code [.!?]\s*$}, which a trained
     * model writes; this model's words are its own, so the alternation is made of two pieces of
     * its greedy answer and the sentence end of a character its greedy answer ends a token with.
     * As in SGLang, {@code matched_stop} is the pattern, not the text it matched.
     */
    @Test
    void test_finish_stop_regex_str() {
        JsonObject res = completions(MANY_NEW_TOKENS_PROMPT, 40, "return_token_ids", true);
        String stopRegexStr = Pattern.quote(pieceOf(res)) + "|" + Pattern.quote(otherPieceOf(res));
        expect(completions(MANY_NEW_TOKENS_PROMPT, 1000, "stop_regex", stopRegexStr), "stop", stopRegexStr);
        JsonObject chatRes = chat(MANY_NEW_TOKENS_PROMPT, 40, "return_token_ids", true);
        String chatRegexStr = Pattern.quote(pieceOf(chatRes)) + "|" + Pattern.quote(otherPieceOf(chatRes));
        expect(chat(MANY_NEW_TOKENS_PROMPT, 1000, "stop_regex", chatRegexStr), "stop", chatRegexStr);

        String sentence = "[" + tokenEndOf(chatRes) + "]\\s*$";
        expect(chat(MANY_NEW_TOKENS_PROMPT, 1000, "stop_regex", sentence), "stop", sentence);
    }

    /** A second piece of the greedy answer, from its last quarter. */
    static String otherPieceOf(JsonObject res) {
        String clean = decoded(Sglang.ints(res.getJsonArray("choices").getJsonObject(0).getJsonArray("token_ids"))).replace("\uFFFD", "");
        int at = clean.length() * 3 / 4;
        return clean.substring(at, at + 2);
    }

    static String decoded(int[] ids) {
        return Sglang.ok("/detokenize", obj("tokens", ids, "skip_special_tokens", true)).object().getString("text");
    }

    /**
     * The last character of the answer's text up to one of its tokens, other than whitespace, as
     * a regex escape: after that token the output ends with it (and maybe whitespace), which is
     * what {@code [.!?]\s*$} waits for after a sentence.
     */
    static String tokenEndOf(JsonObject res) {
        int[] ids = Sglang.ints(res.getJsonArray("choices").getJsonObject(0).getJsonArray("token_ids"));
        for (int n = 2; n <= ids.length; n++) {
            String text = decoded(Arrays.copyOf(ids, n)).stripTrailing();
            if (text.isEmpty()) continue;
            int c = text.codePointBefore(text.length());
            if (c != 0xFFFD) return String.format("\\x{%x}", c);
        }
        throw new AssertionError("no token of the greedy answer ends in a character: " + res);
    }

    @Test
    void test_finish_stop_eos() {
        String llamaFormatPrompt = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\nYou are a helpful assistant.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\nWhat is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n        ";
        int eos = tokenOf(completions(llamaFormatPrompt, 8, "return_token_ids", true));
        expect(completions(llamaFormatPrompt, 1000, "stop_token_ids", arr(eos)), "stop", eos);
        int chatEos = tokenOf(chat("What is 2 + 2?", 8, "return_token_ids", true));
        expect(chat("What is 2 + 2?", 1000, "stop_token_ids", arr(chatEos)), "stop", chatEos);
    }

    @Test
    void test_finish_length() {
        expect(completions(MANY_NEW_TOKENS_PROMPT, 5), "length", (Object) null);
        expect(chat(MANY_NEW_TOKENS_PROMPT, 5), "length", (Object) null);
    }
}
