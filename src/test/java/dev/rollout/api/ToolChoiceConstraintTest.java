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
import dev.rollout.runtime.ServerSettings.ToolStrictLevel;
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
 * tool_choice on chat completions (issue #22): "required" and a named function (slice 3), the plan
 * carrying a structural tag of the offered tools in Qwen's tool-call format; it accepts exactly what
 * the chat template writes for a call (so a sampled call re-renders as it was sampled), its random
 * walks over the real vocabulary parse into tool calls valid under the tools' schemas, and a
 * refused parameters schema is a 400 naming the tool. "auto" enforced (free text, every call
 * whole) where a tool is strict or the server's level says, and response_format beside tools.
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

    /** The tools without "strict": what most clients send. */
    static final String LOOSE = TOOLS.replace("\"strict\": true, ", "");

    static OpenAiChat.Plan plan(String tools, String extra, ToolStrictLevel level) {
        return OpenAiChat.plan(json("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 200, \"tools\": " + tools
                + extra + "}"), templates, tok, 4096, level);
    }

    static boolean accepts(TokenIndex c, String text) {
        return c.dfa().matches(text.getBytes(StandardCharsets.UTF_8));
    }

    /** A {@code /v1/responses} request as the chat plan it runs as. */
    static OpenAiChat.Plan responses(String fields) {
        return plan(OpenAiResponses.toChat(json("{\"input\": \"hi\", \"max_output_tokens\": 200, " + fields + "}")));
    }

    static OpenAiChat.Plan plan(OpenAiResponses.Translation t) {
        return OpenAiChat.plan(t.chat(), templates, tok, 4096, ToolStrictLevel.AUTO, t.tools());
    }

    /** The offered tools in the Responses API's flat form ({@code strict} as each of {@link #TOOLS} says). */
    static final String FLAT_TOOLS = "\"tools\": [{\"type\": \"function\", \"name\": \"get_city\", \"strict\": true, \"parameters\": " + CITY + "}, "
            + "{\"type\": \"function\", \"name\": \"ping\", \"description\": \"no arguments\", \"strict\": false}]";

    /** parallel_tool_calls on /v1/responses as on chat: false, one call at most; true or absent, several. */
    @Test
    void responsesHonourParallelToolCalls() {
        String one = rendered("[" + call("ping", "{}") + "]"), two = rendered("[" + call("ping", "{}") + ", " + call("ping", "{}") + "]");
        for (String choice : List.of("auto", "required")) {
            String fields = FLAT_TOOLS + ", \"tool_choice\": \"" + choice + "\"";
            for (String parallel : List.of("", ", \"parallel_tool_calls\": true")) {
                TokenIndex several = constraint(responses(fields + parallel));
                assertTrue(accepts(several, one) && accepts(several, two), choice + parallel);
            }
            TokenIndex single = constraint(responses(fields + ", \"parallel_tool_calls\": false"));
            assertTrue(accepts(single, one), choice);
            assertFalse(accepts(single, two), choice + ": parallel_tool_calls false, one call");
        }
    }

    /**
     * On /v1/responses a function tool is strict unless it says "strict": false (OpenAI's default
     * there), so "auto" is enforced and the arguments held to the schema; one whose schema the
     * compiler refuses is loose instead, as OpenAI falls back to best effort.
     */
    @Test
    void responsesToolsAreStrictByDefault() {
        String unsaid = FLAT_TOOLS.replace("\"strict\": true, ", "").replace(", \"strict\": false", "");
        String city = rendered("[" + call("get_city", "{\"city\": \"Oslo\", \"rank\": 3, \"tags\": [], \"note\": null}") + "]");
        String badCity = rendered("[" + call("get_city", "{\"city\": \"Oslo\"}") + "]");
        TokenIndex c = constraint(responses(unsaid + ", \"tool_choice\": \"auto\""));
        assertTrue(accepts(c, city));
        assertFalse(accepts(c, badCity), "get_city's schema is held");
        assertFalse(accepts(c, rendered("[" + call("ping", "{\"x\": 1}") + "]")), "ping takes {} only: strict too");
        assertNull(constraint(responses(unsaid.replace("\"parameters\"", "\"strict\": false, \"parameters\"")
                .replace("\"description\"", "\"strict\": false, \"description\"") + ", \"tool_choice\": \"auto\"")), "said false: loose, as on chat");
        String email = "\"tools\": [{\"type\": \"function\", \"name\": \"mail\", \"parameters\": {\"type\": \"object\", \"properties\": "
                + "{\"to\": {\"type\": \"string\", \"format\": \"email\"}}}}]";
        assertNull(constraint(responses(email)), "a schema the compiler refuses: loose, not a 400");
        OpenAiResponses.Translation strict = OpenAiResponses.toChat(json("{\"input\": \"hi\", " + email.replace("\"parameters\"", "\"strict\": true, \"parameters\"")
                + ", \"tool_choice\": \"auto\"}"));
        OpenAiChat.Plan p = plan(strict);
        ApiException refused = assertThrows(ApiException.class, () -> parser.constraintField(strict.constraintField(p.constraintField())).parse(p.generate()));
        assertTrue(refused.getMessage().startsWith("tools (tool_choice \"auto\") is refused: structural_tag at format.content.tags[0].content"),
                refused.getMessage());
        OpenAiResponses.Translation named = OpenAiResponses.toChat(json("{\"input\": \"hi\", " + email + ", \"tool_choice\": {\"type\": \"function\", "
                + "\"name\": \"mail\"}}"));
        OpenAiChat.Plan forced = plan(named);
        ApiException namedRefused = assertThrows(ApiException.class,
                () -> parser.constraintField(named.constraintField(forced.constraintField())).parse(forced.generate()));
        assertTrue(namedRefused.getMessage().startsWith("tools[0].parameters is refused:"), "the Responses field: " + namedRefused.getMessage());
    }

    /**
     * A string argument may hold the call's end tag (and its start): the constraint keeps it inside
     * the call, and the reply's parser reads the call by its JSON, so the call comes back whole
     * (SGLang's and vLLM's parsers cut at the first end tag and lose it).
     */
    @Test
    void anEndTagInsideAStringArgumentStaysInTheCall() {
        String echo = "[{\"type\": \"function\", \"function\": {\"name\": \"echo\", \"strict\": true, \"parameters\": {\"type\": \"object\", "
                + "\"properties\": {\"x\": {\"type\": \"string\"}}, \"required\": [\"x\"], \"additionalProperties\": false}}}]";
        String one = rendered("[" + call("echo", "{\"x\": \"a\\n}\\n</tool_call>\\n<tool_call> b\"}") + "]");
        assertTrue(one.contains("</tool_call>\\n<tool_call> b\"}}\n</tool_call>"), one);
        for (String choice : List.of("auto", "required")) {
            OpenAiChat.Plan p = plan(echo, ", \"tool_choice\": \"" + choice + "\"", ToolStrictLevel.AUTO);
            String text = choice.equals("auto") ? "Sure.\n" + one : one;   // "required": calls only
            assertTrue(accepts(constraint(p), text), text);
            AssistantOutput out = p.parser();
            AssistantOutput.Delta d = out.feed(text), rest = out.finish();
            List<AssistantOutput.ToolCall> calls = new ArrayList<>(d.toolCalls());
            calls.addAll(rest.toolCalls());
            assertEquals(1, calls.size(), text);
            assertEquals("echo", calls.get(0).name());
            assertEquals(Map.of("x", "a\n}\n</tool_call>\n<tool_call> b"), calls.get(0).arguments());
            assertEquals(choice.equals("auto") ? "Sure." : "", d.content() + rest.content());
        }
    }

    /** As vLLM and SGLang by default: "auto" is left alone unless a tool is strict or the server says otherwise. */
    @Test
    void autoIsEnforcedWhereAToolIsStrictOrTheServerSays() {
        assertNull(constraint(plan(LOOSE, ", \"tool_choice\": \"auto\"", ToolStrictLevel.AUTO)));
        assertNull(constraint(plan(LOOSE, "", ToolStrictLevel.AUTO)));
        OpenAiChat.Plan none = plan(", \"tool_choice\": \"none\"");
        assertNull(constraint(none));
        assertFalse(none.parseTools());
        assertNull(constraint(plan(TOOLS, ", \"tool_choice\": \"none\"", ToolStrictLevel.PARAMETER)), "none is never constrained");

        String ping = rendered("[" + call("ping", "{\"x\": [1, \"y\"]}") + "]");
        String city = rendered("[" + call("get_city", "{\"city\": \"Oslo\", \"rank\": 3, \"tags\": [], \"note\": null}") + "]");
        String badCity = rendered("[" + call("get_city", "{\"city\": \"Oslo\"}") + "]");
        // a strict tool: enforced; its arguments held to its schema, the other's to any object
        OpenAiChat.Plan strict = plan(", \"tool_choice\": \"auto\"");
        assertTrue(strict.parseTools());
        assertTrue(strict.reasoning(), "the text is free: a think block is still split off");
        TokenIndex c = constraint(strict);
        assertTrue(accepts(c, city) && accepts(c, ping), ping);
        assertFalse(accepts(c, badCity), "the strict tool's required properties");
        // the server's levels: function enforces loose tools' calls, parameter their schemas too
        TokenIndex function = constraint(plan(LOOSE, "", ToolStrictLevel.FUNCTION));
        assertTrue(accepts(function, badCity) && accepts(function, ping), "function: the call's envelope, any arguments object");
        assertFalse(accepts(function, rendered("[" + call("get_town", "{}") + "]")), "function: offered names only");
        TokenIndex parameter = constraint(plan(LOOSE, "", ToolStrictLevel.PARAMETER));
        assertTrue(accepts(parameter, city));
        assertFalse(accepts(parameter, badCity), "parameter: every tool as if strict");
        assertFalse(accepts(parameter, ping), "parameter: ping takes {} only");
        assertTrue(accepts(parameter, rendered("[" + call("ping", "{}") + "]")));
    }

    /** Enforced "auto": free text, and every call the reply's parser would take is a whole call of an offered tool. */
    @Test
    void autoAllowsTextAndHoldsEveryCallToTheFormat() {
        TokenIndex c = constraint(plan(", \"tool_choice\": \"auto\""));
        String one = call("get_city", "{\"city\": \"Oslo\", \"rank\": 3, \"tags\": [\"a\"], \"note\": \"x\"}");
        // the template's own spelling of content then calls, as the next turn's prompt holds it
        String withText = rendered("[" + one + ", " + call("ping", "{}") + "]").replace("<tool_call>", "Let me look that up.\n<tool_call>");
        assertTrue(accepts(c, withText), withText);
        assertTrue(accepts(c, "Just an answer, no call: <tool_call is not a call, nor is tool_call>. ünïcödé ✓"));
        assertTrue(accepts(c, ""));
        assertFalse(accepts(c, "Text, then <tool_call>\n{\"name\": \"get_city\", \"arguments\": {}}\n</tool_call>"), "a call must be whole");
        assertFalse(accepts(c, "Text <tool_call>{\"name\": \"ping\"}</tool_call>"), "in the template's spelling");
        // a think block first is free text of its own (SGLang leaves reasoning out of the grammar)
        String thought = "<think>\nMaybe <tool_call> get_city? No.\n</think>\n\n";
        assertTrue(accepts(c, thought + "The answer." + rendered("[" + call("ping", "{}") + "]")));
        assertTrue(accepts(c, "\n" + thought), "whitespace before it, as the parser strips");
        assertTrue(accepts(c, "<think>\nstill thinking <tool_call> when it ended"), "the answer may end inside the think block");
        assertFalse(accepts(c, thought + "After it: <tool_call> no"), "after the think block, calls are held to the format");
        assertFalse(accepts(c, "Text first <think> <tool_call> no"), "a think block only where the parser takes one");

        String oneText = rendered("[" + one + "]"), pingText = rendered("[" + call("ping", "{}") + "]");
        TokenIndex single = constraint(plan(", \"tool_choice\": \"auto\", \"parallel_tool_calls\": false"));
        assertTrue(accepts(single, "Text " + oneText));
        assertTrue(accepts(c, "Text " + oneText + "\n" + pingText));
        assertFalse(accepts(single, "Text " + oneText + "\n" + pingText), "parallel_tool_calls false: one call, and nothing after it");
        assertFalse(accepts(single, oneText + " more text"));

        // a prompt that opens the think block for the model: the answer starts inside it
        OpenAiChat.Plan opened = OpenAiChat.plan(json("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                + "\"content\": \"<think>\\nLet me\"}], \"continue_final_message\": true, \"add_generation_prompt\": false, \"tools\": " + TOOLS
                + "}"), templates, tok, 4096);
        assertTrue(opened.startsInReasoning());
        TokenIndex inside = constraint(opened);
        assertTrue(accepts(inside, " see <tool_call> anything\n</think>\n\n" + oneText));
        assertTrue(accepts(inside, " see, and stop"));
        assertFalse(accepts(inside, " see</think> <tool_call> no"));
    }

    /**
     * Random walks over the real vocabulary under enforced "auto", leaning towards {@code <think>},
     * {@code </think>} and {@code <tool_call>} so that each part is walked: the parser finds no
     * call left as text, and every call it finds is valid under its tool's schema.
     */
    @Test
    void randomAutoWalksParseIntoTextAndValidCalls() {
        TokenIndex c = constraint(plan(TOOLS, "", ToolStrictLevel.PARAMETER));
        int callStart = 151657, thinkStart = 151667, thinkEnd = 151668;
        Random r = new Random(29);
        int calls = 0, texts = 0, thoughts = 0;
        for (int run = 0; run < 40; run++) {
            ConstraintCursor cur = c.cursor();
            List<Integer> ids = new ArrayList<>();
            for (int step = 0; !cur.ended(); step++) {
                assertTrue(step < 3000, "bounded: " + tok.decode(ids.stream().mapToInt(Integer::intValue).toArray(), false));
                int[] allowed = cur.allowed().ids();
                int id = allowed[r.nextInt(allowed.length)];
                for (int lean : new int[] {thinkEnd, callStart})
                    if (r.nextInt(4) == 0 && java.util.Arrays.binarySearch(allowed, lean) >= 0) id = lean;
                if (step == 0 && r.nextBoolean()) id = thinkStart;
                if (cur.canEnd() && r.nextInt(8) == 0) id = IM_END;
                assertTrue(cur.advance(id));
                if (id != IM_END && id != 151643) ids.add(id);
            }
            String text = tok.decode(ids.stream().mapToInt(Integer::intValue).toArray(), false);
            AssistantOutput out = new AssistantOutput(true, false, true);
            AssistantOutput.Delta d = out.feed(text), end = out.finish();
            String content = d.content() + end.content();
            List<AssistantOutput.ToolCall> found = new ArrayList<>(d.toolCalls());
            found.addAll(end.toolCalls());
            assertFalse(content.contains(AssistantOutput.CALL_START), "no call left as text: " + text);
            for (AssistantOutput.ToolCall call : found) {
                if (call.name().equals("ping")) {
                    assertEquals(Map.of(), call.arguments(), text);
                    continue;
                }
                assertEquals("get_city", call.name(), text);
                assertEquals(List.of("city", "rank", "tags", "note"), List.copyOf(((Map<?, ?>) call.arguments()).keySet()), text);
            }
            calls += found.size();
            texts += content.isBlank() ? 0 : 1;
            thoughts += (d.reasoning() + end.reasoning()).isEmpty() ? 0 : 1;
        }
        assertTrue(calls > 10 && texts > 10 && thoughts > 5, calls + " calls, " + texts + " texts, " + thoughts + " thoughts");
    }

    /**
     * response_format beside tools: under "auto" the answer is the format's content or calls; under
     * "required" or a named function it is calls, and the format applies to no text of this answer.
     */
    @Test
    void responseFormatBesideToolChoice() {
        String rf = ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"r\", \"schema\": "
                + "{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, \"required\": [\"ok\"], \"additionalProperties\": false}}}";
        OpenAiChat.Plan auto = plan(LOOSE, rf, ToolStrictLevel.AUTO);
        assertTrue(auto.parseTools());
        assertFalse(auto.reasoning(), "the format shapes the answer from its first token, as alone");
        JsonObject sp = auto.generate().getJsonObject("sampling_params");
        assertTrue(sp.containsKey("structural_tag") && !sp.containsKey("json_schema"), sp.toString());
        TokenIndex c = constraint(auto);
        assertTrue(accepts(c, "{\"ok\":true}"), "the format's content, compact as alone");
        String one = rendered("[" + call("ping", "{}") + "]");
        assertTrue(accepts(c, one));
        assertTrue(accepts(c, rendered("[" + call("ping", "{}") + ", " + call("get_city", "{\"a\": 1}") + "]")),
                "calls of loose tools: any arguments object");
        assertFalse(accepts(c, "Sure: {\"ok\":true}"), "no free text");
        assertFalse(accepts(c, "{\"ok\":true}" + one), "content or calls, not both");
        assertFalse(accepts(constraint(plan(LOOSE, rf + ", \"parallel_tool_calls\": false", ToolStrictLevel.AUTO)),
                rendered("[" + call("ping", "{}") + ", " + call("ping", "{}") + "]")));
        // the other constraint kinds beside tools: a regex, a grammar, a structural tag
        TokenIndex regex = constraint(plan(LOOSE, ", \"regex\": \"(yes|no)\"", ToolStrictLevel.AUTO));
        assertTrue(accepts(regex, "yes") && accepts(regex, one) && !accepts(regex, "maybe"));
        TokenIndex grammar = constraint(plan(LOOSE, ", \"ebnf\": \"root ::= \\\"a\\\"+\"", ToolStrictLevel.AUTO));
        assertTrue(accepts(grammar, "aaa") && accepts(grammar, one) && !accepts(grammar, "b"));
        TokenIndex tag = constraint(plan(LOOSE, ", \"response_format\": {\"type\": \"structural_tag\", \"format\": {\"type\": \"const_string\", "
                + "\"value\": \"done\"}}", ToolStrictLevel.AUTO));
        assertTrue(accepts(tag, "done") && accepts(tag, one));

        for (String choice : List.of("\"required\"", "{\"type\": \"function\", \"function\": {\"name\": \"ping\"}}")) {
            OpenAiChat.Plan forced = plan(LOOSE, rf + ", \"tool_choice\": " + choice, ToolStrictLevel.AUTO);
            JsonObject fsp = forced.generate().getJsonObject("sampling_params");
            assertTrue(fsp.containsKey("structural_tag") && !fsp.containsKey("json_schema"), fsp.toString());
            TokenIndex calls = constraint(forced);
            assertTrue(accepts(calls, one));
            assertFalse(accepts(calls, "{\"ok\":true}"), choice + ": calls only");
        }
        // a refusal names both fields; the format is the first element, tool i the i-th tag of the second
        ApiException bad = assertThrows(ApiException.class, () -> constraint(plan(LOOSE, ", \"response_format\": {\"type\": \"json_schema\", "
                + "\"json_schema\": {\"name\": \"r\", \"schema\": {\"type\": \"string\", \"format\": \"email\"}}}", ToolStrictLevel.AUTO)));
        assertTrue(bad.getMessage().startsWith("response_format.json_schema.schema or tools (tool_choice \"auto\") is refused: "
                + "structural_tag at format.elements[0]:"), bad.getMessage());
        parser.constraintField(null);
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
        String mail = bad.replace("\"name\": \"mail\"", "\"name\": \"mail\", \"strict\": true");
        ApiException auto = assertThrows(ApiException.class, () -> constraint(OpenAiChat.plan(json("{\"messages\": [{\"role\": \"user\", "
                + "\"content\": \"hi\"}], \"tools\": " + mail + "}"), templates, tok, 4096)));
        assertTrue(auto.getMessage().startsWith("tools (tool_choice \"auto\") is refused: structural_tag at format.content.tags[0].content:"),
                auto.getMessage());
        ApiException flag = assertThrows(ApiException.class, () -> plan(", \"tool_choice\": \"required\", \"parallel_tool_calls\": \"no\""));
        assertTrue(flag.getMessage().contains("parallel_tool_calls"), flag.getMessage());
        parser.constraintField(null);
    }
}
