package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.chat.AssistantOutput;
import dev.rollout.chat.ChatTemplates;
import dev.rollout.constrain.ConstraintCursor;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.engine.LogprobsMode;
import dev.rollout.runtime.Constraints;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * tool_choice "required" and a named function on chat completions (issue #22, slice 3): the plan
 * carries a structural tag of the offered tools in Qwen's tool-call format; it accepts exactly what
 * the chat template writes for a call (so a sampled call re-renders as it was sampled), its random
 * walks over the real vocabulary parse into tool calls valid under the tools' schemas, and a
 * refused parameters schema is a 400 naming the tool.
 */
class ToolChoiceConstraintTest {
    static final Path QWEN3 = Path.of("target/classes/dev/rollout/tokenizer/qwen3");
    static final int IM_END = 151645;
    /** What the SDKs send for a zod schema (the openai helper's draft-07 output), bounds included. */
    static final String CITY = "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"type\": \"object\", \"properties\": "
            + "{\"city\": {\"type\": \"string\", \"maxLength\": 8, \"description\": \"a name\"}, "
            + "\"rank\": {\"type\": \"integer\", \"minimum\": -9007199254740991, \"maximum\": 9007199254740991}, "
            + "\"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"maxLength\": 4}, \"maxItems\": 2}, "
            + "\"note\": {\"type\": [\"string\", \"null\"], \"maxLength\": 3, \"default\": null}}, "
            + "\"required\": [\"city\", \"rank\", \"tags\", \"note\"], \"additionalProperties\": false}";
    static final String TOOLS = "[{\"type\": \"function\", \"function\": {\"name\": \"get_city\", \"strict\": true, \"parameters\": " + CITY + "}}, "
            + "{\"type\": \"function\", \"function\": {\"name\": \"ping\", \"description\": \"no arguments\"}}]";
    static HfTokenizer tok;
    static ChatTemplates templates;
    static GenerateRequestParser parser;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(QWEN3.resolve("tokenizer.json"));
        templates = ChatTemplates.load(QWEN3);
        parser = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 4096, 100_000, 4, 8), tok, LogprobsMode.DEFAULT,
                new Constraints(tok, 151936, List.of(IM_END, 151643), ConstraintLimits.DEFAULT, null));
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    static OpenAiChat.Plan plan(String extra) {
        return OpenAiChat.plan(json("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 200, \"tools\": " + TOOLS
                + extra + "}"), templates, tok, 4096);
    }

    static TokenIndex constraint(OpenAiChat.Plan p) {
        return parser.constraintField(p.constraintField()).parse(p.generate()).items().get(0).params().constraint();
    }

    /** The text the template writes for an assistant turn with these calls (between the turn's header and its end). */
    static String rendered(String calls) {
        String prompt = templates.select(true).render(List.of(Map.of("role", "user", "content", "hi"),
                Map.of("role", "assistant", "content", "", "tool_calls", OpenAiChat.java(Json.createReader(new StringReader(calls)).readArray()))),
                null, new java.util.HashMap<>(templates.specialTokens()));
        String head = "<|im_start|>assistant\n";
        String turn = prompt.substring(prompt.lastIndexOf(head) + head.length());
        turn = turn.substring(0, turn.indexOf("<|im_end|>"));
        return turn.startsWith("<think>\n\n</think>\n\n") ? turn.substring("<think>\n\n</think>\n\n".length()) : turn;
    }

    static String call(String name, String args) {
        return "{\"type\": \"function\", \"function\": {\"name\": \"" + name + "\", \"arguments\": " + args + "}}";
    }

    @Test
    void requiredConstrainsToCallsOfTheOfferedToolsAsTheTemplateWritesThem() {
        OpenAiChat.Plan p = plan(", \"tool_choice\": \"required\"");
        assertEquals("", p.prefill(), "no prefill: the call is output, from its first token");
        assertTrue(p.parseTools());
        assertFalse(p.reasoning(), "the constraint applies from the first token");
        assertTrue(p.generate().getJsonObject("sampling_params").containsKey("structural_tag"));
        TokenIndex c = constraint(p);
        String one = rendered("[" + call("get_city", "{\"city\": \"Oslo\", \"rank\": 3, \"tags\": [\"a\", \"b\\\"c\"], \"note\": null}") + "]");
        assertTrue(c.dfa().matches(one.getBytes(StandardCharsets.UTF_8)), one);
        String two = rendered("[" + call("ping", "{}") + ", " + call("get_city", "{\"city\": \"\", \"rank\": -1, \"tags\": [], \"note\": \"x\"}") + "]");
        assertTrue(c.dfa().matches(two.getBytes(StandardCharsets.UTF_8)), "parallel calls by default: " + two);
        assertFalse(c.dfa().matches("".getBytes()), "at least one call");
        assertFalse(c.dfa().matches(rendered("[" + call("get_city", "{\"city\": \"Oslo\"}") + "]").getBytes()), "required properties");
        assertFalse(c.dfa().matches(rendered("[" + call("get_town", "{}") + "]").getBytes()), "offered names only");

        TokenIndex single = constraint(plan(", \"tool_choice\": \"required\", \"parallel_tool_calls\": false"));
        assertTrue(single.dfa().matches(one.getBytes(StandardCharsets.UTF_8)));
        assertFalse(single.dfa().matches(two.getBytes(StandardCharsets.UTF_8)), "parallel_tool_calls false: one call");
    }

    @Test
    void aNamedFunctionIsCalledOnce() {
        OpenAiChat.Plan p = plan(", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"ping\"}}");
        TokenIndex c = constraint(p);
        assertTrue(c.dfa().matches(rendered("[" + call("ping", "{}") + "]").getBytes()));
        assertFalse(c.dfa().matches(rendered("[" + call("get_city", "{\"city\": \"\", \"rank\": 1, \"tags\": [], \"note\": null}") + "]")
                .getBytes(StandardCharsets.UTF_8)));
        assertFalse(c.dfa().matches(rendered("[" + call("ping", "{}") + ", " + call("ping", "{}") + "]").getBytes()));
    }

    @Test
    void autoAndNoneAreUnconstrained() {
        assertNull(constraint(plan(", \"tool_choice\": \"auto\"")));
        assertNull(constraint(plan("")));
        OpenAiChat.Plan none = plan(", \"tool_choice\": \"none\"");
        assertNull(constraint(none));
        assertFalse(none.parseTools());
    }

    /** Random walks over the real vocabulary: every one parses into calls whose arguments the schema takes. */
    @Test
    void randomWalksParseIntoValidToolCalls() {
        TokenIndex c = constraint(plan(", \"tool_choice\": \"required\""));
        Random r = new Random(22);
        for (int run = 0; run < 12; run++) {
            ConstraintCursor cur = c.cursor();
            List<Integer> ids = new ArrayList<>();
            for (int step = 0; !cur.ended(); step++) {
                assertTrue(step < 2000, "bounded: " + tok.decode(ids.stream().mapToInt(Integer::intValue).toArray(), false));
                int[] allowed = cur.allowed().ids();
                int id = cur.canEnd() && r.nextInt(2) == 0 ? IM_END : allowed[r.nextInt(allowed.length)];
                assertTrue(cur.advance(id));
                if (id != IM_END && id != 151643) ids.add(id);  // either EOS ends it
            }
            String text = tok.decode(ids.stream().mapToInt(Integer::intValue).toArray(), false);
            AssistantOutput out = new AssistantOutput(false, false, true);
            AssistantOutput.Delta d = out.feed(text);
            AssistantOutput.Delta end = out.finish();
            List<AssistantOutput.ToolCall> calls = new ArrayList<>(d.toolCalls());
            calls.addAll(end.toolCalls());
            assertEquals("", d.content() + end.content(), text);
            assertFalse(calls.isEmpty(), text);
            for (AssistantOutput.ToolCall call : calls) {
                if (call.name().equals("ping")) {
                    assertEquals(Map.of(), call.arguments(), text);
                    continue;
                }
                assertEquals("get_city", call.name(), text);
                Map<?, ?> a = (Map<?, ?>) call.arguments();
                assertEquals(List.of("city", "rank", "tags", "note"), List.copyOf(a.keySet()), text);
                String city = (String) a.get("city");
                assertTrue(city.codePointCount(0, city.length()) <= 8, text);
                assertTrue(a.get("rank") instanceof java.math.BigInteger n && n.abs().compareTo(java.math.BigInteger.valueOf(9007199254740991L)) <= 0, text);
                assertTrue(((List<?>) a.get("tags")).size() <= 2, text);
            }
        }
    }

    @Test
    void refusalsNameTheToolAndTheProblem() {
        String bad = "[{\"type\": \"function\", \"function\": {\"name\": \"mail\", \"parameters\": {\"type\": \"object\", \"properties\": "
                + "{\"to\": {\"type\": \"string\", \"format\": \"email\"}}}}}]";
        JsonObject body = json("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": " + bad
                + ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"mail\"}}}");
        OpenAiChat.Plan p = OpenAiChat.plan(body, templates, tok, 4096);
        ApiException e = assertThrows(ApiException.class, () -> constraint(p));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().startsWith("tools[0].function.parameters is refused:") && e.getMessage().contains("'format'"), e.getMessage());
        ApiException both = assertThrows(ApiException.class, () -> plan(", \"tool_choice\": \"required\", \"response_format\": {\"type\": \"json_object\"}"));
        assertTrue(both.getMessage().contains("not supported yet"), both.getMessage());
        ApiException flag = assertThrows(ApiException.class, () -> plan(", \"tool_choice\": \"required\", \"parallel_tool_calls\": \"no\""));
        assertTrue(flag.getMessage().contains("parallel_tool_calls"), flag.getMessage());
        parser.constraintField(null);
    }
}
