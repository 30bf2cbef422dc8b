package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.LogprobsMode;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The context rule of SGLang (prompt + max_new_tokens) and the refusal of texts that cannot fit, before tokenizing. */
class GenerateRequestParserTest {
    static HfTokenizer tok;
    static GenerateRequestParser parser;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(Path.of(GenerateRequestParserTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI()));
        parser = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 64, 10_000, 4, 8), tok);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    static String ids(int n) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < n; i++) b.append(i == 0 ? "" : ",").append(100 + i);
        return b.append("]").toString();
    }

    static String refused(String body) {
        ApiException e = assertThrows(ApiException.class, () -> parser.parse(json(body)));
        assertEquals(400, e.status());
        return e.getMessage();
    }

    @Test
    void promptPlusMaxNewTokensMayFillTheContextButNotPassIt() {
        assertEquals(54, parser.parse(json("{\"input_ids\": " + ids(10) + ", \"sampling_params\": {\"max_new_tokens\": 54}}"))
                .items().get(0).params().maxNewTokens());
        assertEquals("Requested token count exceeds the model's maximum context length of 64 tokens. You requested a total of 65 "
                + "tokens: 10 tokens from the input messages and 55 tokens for the completion. Please reduce the number of tokens in "
                + "the input messages or the completion to fit within the limit.",
                refused("{\"input_ids\": " + ids(10) + ", \"sampling_params\": {\"max_new_tokens\": 55}}"));
        assertTrue(refused("{\"input_ids\": " + ids(10) + ", \"sampling_params\": {\"max_tokens\": 1e9}}")
                .contains("You requested a total of 1000000010 tokens"));
        assertTrue(refused("{\"input_ids\": [" + ids(10) + ", " + ids(2) + "], \"sampling_params\": {\"max_new_tokens\": 60}}")
                .startsWith("input_ids[0]: Requested token count exceeds"));
    }

    @Test
    void withoutMaxNewTokensGenerationStopsAtTheContextsEnd() {
        // the default (128) is not the caller's request: as in SGLang, it is not checked against the context
        assertEquals(128, parser.parse(json("{\"input_ids\": " + ids(60) + "}")).items().get(0).params().maxNewTokens());
    }

    @Test
    void aPromptThatFillsTheContextIsRefusedAsSglangRefusesIt() {
        assertEquals("The input (64 tokens) is longer than the model's context length (64 tokens).",
                refused("{\"input_ids\": " + ids(64) + ", \"sampling_params\": {\"max_new_tokens\": 0}}"));
        assertEquals("input_ids[1]: The input (70 tokens) is longer than the model's context length (64 tokens).",
                refused("{\"input_ids\": [" + ids(3) + ", " + ids(70) + "]}"));
    }

    @Test
    void aTextTooLongForTheContextIsRefusedByItsLengthBeforeTokenizing() {
        String text = "x".repeat(12_000_000);
        long t0 = System.nanoTime();
        String m = refused("{\"text\": [\"short\", \"" + text + "\"]}");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(m.startsWith("text[1]: The input (at least 93750 tokens) is longer than the model's context length (64 tokens)"), m);
        assertTrue(ms < 3000, "took " + ms + " ms");  // tokenizing it takes seconds (16 s on the server)
    }

    @Test
    void theSequencesOfOneRequestAreBounded() {
        String prompts = "[" + "[1],".repeat(70_000) + "[1]]";
        assertTrue(refused("{\"input_ids\": " + prompts + "}").contains("more than 65536"));
        String some = "[" + "[1],".repeat(19_999) + "[1]]";
        assertTrue(refused("{\"input_ids\": " + some + ", \"sampling_params\": {\"n\": 4, \"max_new_tokens\": 1}}")
                .contains("more than 65536 sequences"));
        assertEquals(16_000, parser.parse(json("{\"input_ids\": " + "[" + "[1],".repeat(3_999) + "[1]]"
                + ", \"sampling_params\": {\"n\": 4, \"max_new_tokens\": 1}}")).items().size() * 4);
    }

    static dev.rollout.engine.SamplingParams params(String samplingParams) {
        return parser.parse(json("{\"input_ids\": [1, 2], \"sampling_params\": " + samplingParams + "}")).items().get(0).params();
    }

    @Test
    void logitBiasTakesTokenIdKeysAndRefusesOthersByName() {
        dev.rollout.engine.LogitBias b = params("{\"logit_bias\": {\"151935\": -100, \"7\": 2.5}}").logitBias();
        assertEquals(dev.rollout.engine.LogitBias.of(java.util.Map.of(7, 2.5, 151935, -100.0)), b);
        assertEquals(150.0f, params("{\"logit_bias\": {\"3\": 150}}").logitBias().biases()[0], "any finite bias, as SGLang takes it");
        assertTrue(params("{\"logit_bias\": null}").logitBias().isEmpty());
        assertEquals("sampling_params.logit_bias must have keys in [0, 151935], got 151936",
                refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"151936\": 1}}}"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"-1\": 1}}}").contains("got -1"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"the\": 1}}}")
                .contains("logit_bias has the key 'the', which is not a token id"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"1\": \"x\"}}}").contains("logit_bias[\"1\"]"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": [1, 2]}}").contains("sampling_params.logit_bias"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"1\": 1, \" 1\": 2}}}").contains("twice"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"logit_bias\": {\"1\": 1e300}}}").contains("finite"));
    }

    @Test
    void stopRegexIsCompiledAndABadOneIsRefusedByName() {
        assertEquals(java.util.List.of("and|or"), params("{\"stop_regex\": \"and|or\"}").stopRegex().patterns());
        assertEquals(java.util.List.of("a", "[.!?]\\s*$"), params("{\"stop_regex\": [\"a\", \"[.!?]\\\\s*$\"]}").stopRegex().patterns());
        String m = refused("{\"input_ids\": [1], \"sampling_params\": {\"stop_regex\": [\"ok\", \"(unclosed\"]}}");
        assertTrue(m.startsWith("sampling_params.stop_regex has an invalid regular expression '(unclosed'"), m);
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"stop_regex\": [\"\"]}}").contains("empty pattern"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"stop_regex\": 5}}").contains("sampling_params.stop_regex"));
        GenerateRequestParser noTokenizer = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 64, 10_000, 4, 8), null);
        ApiException e = assertThrows(ApiException.class, () -> noTokenizer.parse(json(
                "{\"input_ids\": [1], \"sampling_params\": {\"stop_regex\": \"x\"}}")));
        assertTrue(e.getMessage().contains("needs a tokenizer"), e.getMessage());
    }

    @Test
    void unsupportedConstraintsAreRefusedByName() {
        for (String k : java.util.List.of("custom_logit_processor"))
            assertEquals("sampling_params." + k + " is not supported by this server",
                    refused("{\"input_ids\": [1], \"sampling_params\": {\"" + k + "\": \"x\"}}"));
        // without the server's compiler (this parser has none) a regex, a grammar or a structural tag is refused, not ignored
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"regex\": \"a+\"}}")
                .contains("constrained decoding is unavailable"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"ebnf\": \"root ::= x\"}}")
                .startsWith("sampling_params.ebnf: constrained decoding is unavailable"));
        assertTrue(refused("{\"input_ids\": [1], \"sampling_params\": {\"structural_tag\": \"x\"}}")
                .contains("sampling_params.structural_tag: constrained decoding is unavailable"));
    }

    static LogprobsMode mode(GenerateRequest r, int item) {
        return r.items().get(item).logprobs().mode();
    }

    /**
     * logprobs_mode follows return_logprob's rules: one value, or one per prompt (null taking the
     * server's default, rollout.logprobs-mode); without it, the server's default.
     */
    @Test
    void logprobsModeIsTheRequestsOrTheServersDefaultPerPrompt() {
        assertEquals(LogprobsMode.SGLANG, mode(parser.parse(json("{\"input_ids\": [1, 2], \"return_logprob\": true}")), 0));
        GenerateRequestParser rawByDefault = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 64, 10_000, 4, 8), tok,
                LogprobsMode.RAW_LOGPROBS, null);
        assertEquals(LogprobsMode.RAW_LOGPROBS, mode(rawByDefault.parse(json("{\"input_ids\": [1, 2], \"return_logprob\": true}")), 0));
        assertEquals(LogprobsMode.PROCESSED_LOGITS, mode(rawByDefault.parse(json(
                "{\"input_ids\": [1, 2], \"return_logprob\": true, \"logprobs_mode\": \"processed_logits\"}")), 0));
        GenerateRequest listed = rawByDefault.parse(json("{\"input_ids\": [[1, 2], [3, 4], [5]], \"return_logprob\": true, "
                + "\"logprobs_mode\": [\"raw_logits\", null, \"sglang\"]}"));
        assertEquals(List.of(LogprobsMode.RAW_LOGITS, LogprobsMode.RAW_LOGPROBS, LogprobsMode.SGLANG),
                List.of(mode(listed, 0), mode(listed, 1), mode(listed, 2)));
        GenerateRequest one = parser.parse(json("{\"text\": [\"a\", \"b\"], \"return_logprob\": [true, false], "
                + "\"logprobs_mode\": \"processed_logprobs\"}"));
        assertEquals(List.of(LogprobsMode.PROCESSED_LOGPROBS, LogprobsMode.PROCESSED_LOGPROBS), List.of(mode(one, 0), mode(one, 1)));
    }

    @Test
    void anUnknownLogprobsModeIsA400NamingTheFieldAndTheModes() {
        String modes = "one of sglang, raw_logprobs, raw_logits, processed_logits, processed_logprobs";
        assertEquals("logprobs_mode must be " + modes + ", got \"processed\"",
                refused("{\"input_ids\": [1, 2], \"return_logprob\": true, \"logprobs_mode\": \"processed\"}"));
        assertEquals("logprobs_mode must be " + modes + ", got true",
                refused("{\"input_ids\": [1, 2], \"return_logprob\": true, \"logprobs_mode\": true}"));
        assertEquals("logprobs_mode[1] must be " + modes + ", got \"RAW_LOGITS\"",
                refused("{\"input_ids\": [[1], [2]], \"return_logprob\": true, \"logprobs_mode\": [\"sglang\", \"RAW_LOGITS\"]}"));
        assertEquals("logprobs_mode has 1 entries for 2 prompts",
                refused("{\"input_ids\": [[1], [2]], \"return_logprob\": true, \"logprobs_mode\": [\"sglang\"]}"));
    }
}
