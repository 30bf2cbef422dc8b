package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.constrain.ByteDfa;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.ModelConfig;
import dev.rollout.runtime.Constraints;
import dev.rollout.runtime.DefaultModel;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import java.io.StringReader;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Constrained generation through the engine (issue #22) with the server's default model (random
 * weights, the real Qwen3 tokenizer and its 151,936 ids), in the deterministic arithmetic so that
 * a request's tokens can be compared bit for bit with and without company. The model's text means
 * nothing, so the checks are structural: what comes out matches the regex or validates against
 * the schema, and the constraint, not max_new_tokens, ends it, with EOS.
 */
class ConstrainedGenerationTest {
    static final Set<Integer> EOS = Set.of(151645, 151643);
    static final String REGEX = "(yes|no), [0-9]{1,3} (apples|pears)\\.";
    static final String SCHEMA = """
            {"type": "object", "properties": {
              "name": {"type": "string", "maxLength": 8},
              "age": {"type": "integer"},
              "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 2},
              "ok": {"type": "boolean"}},
             "required": ["name", "age", "tags", "ok"], "additionalProperties": false}""";
    static Path dir;
    static HfTokenizer tok;
    static Constraints constraints;
    static int[] prompt;

    @BeforeAll
    static void load() throws Exception {
        dir = DefaultModel.materialize(Path.of(System.getProperty("java.io.tmpdir")));
        tok = HfTokenizer.load(dir.resolve("tokenizer.json"));
        ModelConfig c = ModelConfig.read(dir);
        constraints = new Constraints(tok, c.vocabSize(), c.eosTokenIds(), ConstraintLimits.DEFAULT, null);
        prompt = tok.encode("Answer in the format asked for:");
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    /** An engine over the default model, in the deterministic arithmetic (ADR 0026) or libtorch's default. */
    static EngineHarness harness(int kvBlocks, boolean deterministic) throws Exception {
        ModelConfig c = ModelConfig.read(dir);
        Device cpu = new Device(EngineHarness.DEVICE);
        Kernels kernels = deterministic
                ? Kernels.resolve(new Kernels.Wanted(false, false, false, false, false, false, false, true), c, ScalarType.Float, cpu)
                : Kernels.LIBTORCH;
        return new EngineHarness(CausalLm.load(dir, ScalarType.Float, cpu, kernels),
                new EngineConfig(EngineHarness.DEVICE, "float32", 4, kvBlocks, 16, 256, 0, 0.8), tok);
    }

    static SamplingParams regex(SamplingParams.Builder b) {
        return b.constraint(constraints.regex(REGEX)).build();
    }

    static SamplingParams schema(SamplingParams.Builder b) {
        return b.constraint(constraints.jsonSchema(SCHEMA)).build();
    }

    static LogprobOptions logprobs(LogprobsMode mode) {
        return new LogprobOptions(true, -1, 2, null, mode);
    }

    /** Finished by the constraint: the last token is EOS and the finish reason says so, as for any EOS. */
    static void endsByTheConstraint(SequenceOutput out) {
        int[] ids = out.outputIds();
        assertTrue(EOS.contains(ids[ids.length - 1]), out.rid() + " ends with EOS: " + out.text());
        assertEquals(FinishReason.Type.STOP, out.finishReason().type(), out.rid() + ": " + out.finishReason());
        assertEquals(ids[ids.length - 1], out.finishReason().matched());
    }

    static void validates(String text) {
        JsonObject o = Json.createReader(new StringReader(text)).readObject();
        assertEquals(List.of("name", "age", "tags", "ok"), List.copyOf(o.keySet()), text);
        assertTrue(o.getString("name").codePointCount(0, o.getString("name").length()) <= 8, text);
        assertTrue(o.getJsonNumber("age").isIntegral(), text);
        JsonArray tags = o.getJsonArray("tags");
        assertTrue(tags.size() <= 2, text);
        for (int i = 0; i < tags.size(); i++) assertTrue(Set.of("red", "green", "blue").contains(((JsonString) tags.get(i)).getString()), text);
        assertTrue(o.get("ok") == jakarta.json.JsonValue.TRUE || o.get("ok") == jakarta.json.JsonValue.FALSE, text);
    }

    /** A regex and a schema, greedy and sampled (two samples of one schema, each with a cursor of its own). */
    @Test
    void outputsMatchTheirConstraintAndEndByIt() throws Exception {
        EngineHarness h = harness(1024, false);
        h.add("regex-greedy", prompt, regex(SamplingParams.builder().temperature(0).maxNewTokens(64)), logprobs(LogprobsMode.SGLANG));
        h.add("regex-sampled", prompt, regex(SamplingParams.builder().temperature(1.0).seed(3L).maxNewTokens(64)), LogprobOptions.NONE);
        for (int i = 0; i < 2; i++)
            h.add("schema-" + i, i, prompt, schema(SamplingParams.builder().temperature(1.0).topP(0.95).seed(100L + i).maxNewTokens(160)),
                    logprobs(i == 0 ? LogprobsMode.RAW_LOGPROBS : LogprobsMode.PROCESSED_LOGPROBS), false, null);
        h.add("schema-greedy", prompt, schema(SamplingParams.builder().temperature(0).maxNewTokens(160)), LogprobOptions.NONE);
        h.runToCompletion();

        Pattern p = Pattern.compile(REGEX);
        for (String rid : List.of("regex-greedy", "regex-sampled")) {
            SequenceOutput out = h.finished.get(rid);
            assertTrue(p.matcher(out.text()).matches(), rid + ": " + out.text());
            endsByTheConstraint(out);
        }
        for (String rid : List.of("schema-0", "schema-1", "schema-greedy")) {
            SequenceOutput out = h.finished.get(rid);
            validates(out.text());
            endsByTheConstraint(out);
        }
        assertTrue(!h.finished.get("schema-0").text().equals(h.finished.get("schema-1").text()), "two samples, two cursors: they differ");
        // raw_logprobs are the model's own distribution (never -inf); processed_logprobs the masked one, where EOS
        // closes a complete object with probability 1
        for (TokenLogprob t : h.finished.get("schema-0").outputLogprobs()) assertTrue(Float.isFinite(t.logprob()), "raw: " + t);
        List<TokenLogprob> processed = h.finished.get("schema-1").outputLogprobs();
        TokenLogprob last = processed.get(processed.size() - 1);
        // (top_p 0.95 may drop the less likely of the two EOS ids too)
        boolean secondKept = last.topLogprobs()[1] != Float.NEGATIVE_INFINITY;
        assertTrue(EOS.contains(last.topIds()[0]) && (!secondKept || EOS.contains(last.topIds()[1])),
                "after the closing brace the mask allows the EOS ids alone: " + last);
        assertEquals(1.0, Math.exp(last.topLogprobs()[0]) + (secondKept ? Math.exp(last.topLogprobs()[1]) : 0), 1e-5,
                "and they hold all the mass");
    }

    /**
     * Unconstrained requests beside constrained ones come out bit for bit as when they run alone
     * (the deterministic arithmetic, so that the batch itself changes nothing).
     */
    @Test
    void unconstrainedRequestsBesideConstrainedOnesAreUntouched() throws Exception {
        SamplingParams plain = SamplingParams.builder().temperature(0).maxNewTokens(10).ignoreEos(true).build();
        SamplingParams plainSampled = SamplingParams.builder().temperature(1.0).seed(7L).maxNewTokens(10).ignoreEos(true).build();
        EngineHarness h = harness(1024, true);
        h.add("plain", prompt, plain, logprobs(LogprobsMode.SGLANG));
        h.add("plain-sampled", prompt, plainSampled, logprobs(LogprobsMode.PROCESSED_LOGPROBS));
        h.runToCompletion();
        SequenceOutput greedyAlone = h.finished.remove("plain"), sampledAlone = h.finished.remove("plain-sampled");

        h.add("plain", prompt, plain, logprobs(LogprobsMode.SGLANG));
        h.add("plain-sampled", prompt, plainSampled, logprobs(LogprobsMode.PROCESSED_LOGPROBS));
        h.add("regex-greedy", prompt, regex(SamplingParams.builder().temperature(0).maxNewTokens(12)), logprobs(LogprobsMode.SGLANG));
        h.add("schema-sampled", prompt, schema(SamplingParams.builder().temperature(1.0).seed(5L).maxNewTokens(10)), LogprobOptions.NONE);
        h.runToCompletion();
        for (SequenceOutput[] pair : List.of(new SequenceOutput[] {greedyAlone, h.finished.get("plain")},
                new SequenceOutput[] {sampledAlone, h.finished.get("plain-sampled")})) {
            SequenceOutput a = pair[0], b = pair[1];
            assertArrayEquals(a.outputIds(), b.outputIds(), a.rid());
            for (int i = 0; i < a.outputLogprobs().size(); i++) {
                TokenLogprob x = a.outputLogprobs().get(i), y = b.outputLogprobs().get(i);
                assertEquals(Float.floatToIntBits(x.logprob()), Float.floatToIntBits(y.logprob()), a.rid() + " token " + i);
                assertArrayEquals(x.topLogprobs(), y.topLogprobs(), a.rid() + " token " + i);
            }
        }
        String cut = h.finished.get("schema-sampled").text();
        assertTrue(cut.startsWith("{\"name\":\"") || "{\"name\":\"".startsWith(cut), cut);
    }

    /**
     * Preempted and computed again from its tokens, a constrained sequence's cursor is not walked
     * twice: the output is the same, bit for bit, as without preemption.
     */
    @Test
    void aPreemptedConstrainedSequenceGoesOnWhereItWas() throws Exception {
        SamplingParams sp = schema(SamplingParams.builder().temperature(0).maxNewTokens(160));
        EngineHarness roomy = harness(1024, true);
        roomy.add("target", prompt, sp, LogprobOptions.NONE);
        roomy.runToCompletion();

        EngineHarness tight = harness(28, true);   // 112 KV slots; five companions ahead of it want 40 each
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        for (int i = 0; i < 5; i++)
            tight.add("c" + i, r.ints(12, 2, 150_000).toArray(), SamplingParams.builder().temperature(0).maxNewTokens(28).ignoreEos(true).build(),
                    LogprobOptions.NONE);
        tight.add("target", prompt, sp, LogprobOptions.NONE);
        tight.runToCompletion();
        SequenceOutput a = roomy.finished.get("target"), b = tight.finished.get("target");
        assertTrue(b.numRetractions() > 0, "the target was preempted");
        assertArrayEquals(a.outputIds(), b.outputIds());
        validates(b.text());
        endsByTheConstraint(b);
    }

    /**
     * The constraint's end wins over ignore_eos and min_new_tokens (nothing may follow); stop
     * strings and max_new_tokens still cut a constrained output short, and say so.
     */
    @Test
    void theConstraintsEndBesideIgnoreEosMinTokensStopStringsAndLength() throws Exception {
        TokenIndex three = constraints.regex("[a-z]{3}");
        EngineHarness h = harness(1024, false);
        h.add("ignore-eos", prompt, SamplingParams.builder().temperature(1.0).seed(1L).maxNewTokens(40).minNewTokens(30).ignoreEos(true)
                .constraint(three).build(), LogprobOptions.NONE);
        h.add("stop", prompt, SamplingParams.builder().temperature(0).maxNewTokens(40).stop(List.of(","))
                .constraint(constraints.regex("[0-9]{2},[0-9]{2}")).build(), LogprobOptions.NONE);
        h.add("length", prompt, schema(SamplingParams.builder().temperature(0).maxNewTokens(3)), LogprobOptions.NONE);
        h.runToCompletion();

        SequenceOutput ignore = h.finished.get("ignore-eos");
        assertTrue(ignore.outputIds().length <= 4, "three letters and EOS at most: " + ignore.text());
        assertTrue(Pattern.matches("[a-z]{3}", ignore.text()), ignore.text());
        endsByTheConstraint(ignore);
        SequenceOutput stop = h.finished.get("stop");
        assertEquals(FinishReason.stopString(","), stop.finishReason());
        assertTrue(Pattern.matches("[0-9]{2}", stop.text()), stop.text());
        SequenceOutput length = h.finished.get("length");
        assertEquals(FinishReason.length(3), length.finishReason());
        assertTrue(length.text().startsWith("{\"name\":\"") || "{\"name\":\"".startsWith(length.text()), length.text());
    }

    /**
     * tool_choice "auto" enforced as chat completions builds it (issue #22): a think block of free
     * text may come first, then free text in which every {@code <tool_call>} is a whole call of
     * get_weather, one call at most (parallel_tool_calls false).
     */
    static final String AUTO_CALLS = """
            {"type": "structural_tag", "format": {"type": "reasoning", "begin": "<think>", "end": "</think>", "started": false, "content":
              {"type": "triggered_tags", "triggers": ["<tool_call>"], "stop_after_first": true, "tags": [
                {"type": "tag", "begin": "<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": ", "end": "}\\n</tool_call>",
                 "content": {"type": "json_schema", "separators": [", ", ": "], "json_schema": {"type": "object", "properties": {
                   "city": {"type": "string", "maxLength": 6}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                   "required": ["city", "days"], "additionalProperties": false}}}]}}}""";

    /** One whole call of get_weather, as the template writes it, its arguments valid. */
    static void aCallOfGetWeather(String text) {
        String open = "<tool_call>\n", close = "\n</tool_call>";
        assertTrue(text.startsWith(open) && text.endsWith(close), text);
        JsonObject call = Json.createReader(new StringReader(text.substring(open.length(), text.length() - close.length()))).readObject();
        assertEquals("get_weather", call.getString("name"), text);
        JsonObject args = call.getJsonObject("arguments");
        assertEquals(List.of("city", "days"), List.copyOf(args.keySet()), text);
        assertTrue(args.getString("city").codePointCount(0, args.getString("city").length()) <= 6, text);
        assertTrue(args.getInt("days") >= 1 && args.getInt("days") <= 7, text);
    }

    /**
     * Free text and a call through the engine. The random model rarely writes {@code <tool_call>}
     * itself, so one request leans on it with a logit bias: the call that follows is the
     * constraint's (the bias cannot push the trigger into the call), and nothing but EOS after it.
     * Another runs free: its text stays a live prefix of the constraint, and ends at EOS or the length.
     */
    @Test
    void autoToolCallsInFreeTextThroughTheEngine() throws Exception {
        TokenIndex auto = constraints.structuralTag(AUTO_CALLS);
        int toolCall = 151657;
        EngineHarness h = harness(1024, false);
        for (int i = 0; i < 2; i++)
            h.add("call-" + i, prompt, SamplingParams.builder().temperature(1.0).seed(60L + i).maxNewTokens(120).constraint(auto)
                    .logitBias(LogitBias.of(java.util.Map.of(toolCall, 30.0))).build(), LogprobOptions.NONE);
        h.add("free", prompt, SamplingParams.builder().temperature(1.0).seed(5L).maxNewTokens(24).constraint(auto).build(), LogprobOptions.NONE);
        h.runToCompletion();
        for (String rid : List.of("call-0", "call-1")) {
            SequenceOutput out = h.finished.get(rid);
            aCallOfGetWeather(out.text());
            assertEquals(toolCall, out.outputIds()[0], "the bias chose the trigger first");
            endsByTheConstraint(out);
        }
        SequenceOutput free = h.finished.get("free");
        byte[] bytes = free.text().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(auto.dfa().walk(ByteDfa.START, bytes) != ByteDfa.DEAD, free.text());
        assertTrue(free.outputIds().length > 1, "free text goes on: " + free.text());
        if (free.finishReason().type() == FinishReason.Type.STOP) assertTrue(auto.dfa().matches(bytes), free.text());
    }

    /** Lists of digits nested up to the bound, then a word list written with left recursion. */
    static final String GRAMMAR = """
            root  ::= list " -- " words "."
            list  ::= "[" item ("," item)? "]"
            item  ::= [0-9] | list
            words ::= words " " word | word    # left recursion: a loop, not a bound
            word  ::= "red" | "green" | "blue"
            """;
    /** The same texts, nesting aside: what the output must match (depth is checked separately). */
    static final Pattern SHAPE = Pattern.compile("[\\[\\],0-9]+ -- (red|green|blue)( (red|green|blue))*\\.");

    /**
     * EBNF grammars through the engine: what comes out is derived by the grammar, nested no deeper
     * than the bound, and ended by it with EOS, greedy and sampled. The grammar recurses (nested
     * lists) and loops by left recursion (a list of words), so both halves of the compiler are on the path.
     */
    @Test
    void grammarOutputsAreDerivedByTheGrammarAndEndByIt() throws Exception {
        TokenIndex grammar = constraints.ebnf(GRAMMAR);
        int[] listPrompt = tok.encode("Write a nested list, then some colours:");
        EngineHarness h = harness(1024, false);
        h.add("greedy", listPrompt, SamplingParams.builder().temperature(0).maxNewTokens(200).constraint(grammar).build(), LogprobOptions.NONE);
        for (int i = 0; i < 3; i++)
            h.add("sampled-" + i, listPrompt, SamplingParams.builder().temperature(1.0).seed(40L + i).maxNewTokens(200).constraint(grammar).build(),
                    LogprobOptions.NONE);
        h.runToCompletion();
        for (String rid : List.of("greedy", "sampled-0", "sampled-1", "sampled-2")) {
            SequenceOutput out = h.finished.get(rid);
            String text = out.text();
            assertTrue(SHAPE.matcher(text).matches(), rid + ": " + text);
            assertTrue(grammar.dfa().matches(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)), rid + ": " + text);
            nestedWithinTheBound(text.substring(0, text.indexOf(" -- ")));
            endsByTheConstraint(out);
        }
    }

    /** Brackets balanced and nested at most the top list plus the bound. */
    static void nestedWithinTheBound(String text) {
        int depth = 0, max = 0;
        for (char ch : text.toCharArray()) {
            depth += ch == '[' ? 1 : ch == ']' ? -1 : 0;
            assertTrue(depth >= 0, text);
            max = Math.max(max, depth);
        }
        assertEquals(0, depth, text);
        assertTrue(max <= 1 + ConstraintLimits.DEFAULT.maxGrammarDepth(), max + " deep: " + text);
    }
}
