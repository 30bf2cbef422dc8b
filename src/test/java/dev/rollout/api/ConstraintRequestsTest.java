package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.engine.LogprobsMode;
import dev.rollout.engine.SamplingParams;
import dev.rollout.runtime.Constraints;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Constraints in requests (issue #22): SGLang's sampling_params keys on /generate, and OpenAI's
 * response_format with vLLM's guided_* aliases on /v1, compiled on the HTTP thread over the real
 * Qwen3 vocabulary; every refusal a 400 naming the field the client sent and the problem.
 */
class ConstraintRequestsTest {
    static HfTokenizer tok;
    static GenerateRequestParser parser;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(Path.of(ConstraintRequestsTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI()));
        Constraints constraints = new Constraints(tok, 151936, List.of(151645, 151643), ConstraintLimits.DEFAULT, null);
        parser = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 4096, 100_000, 4, 8), tok, LogprobsMode.DEFAULT,
                constraints);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    static SamplingParams params(String samplingParams) {
        return parser.parse(json("{\"input_ids\": [1, 2], \"sampling_params\": " + samplingParams + "}")).items().get(0).params();
    }

    static String refused(String samplingParams) {
        ApiException e = assertThrows(ApiException.class, () -> params(samplingParams));
        assertEquals(400, e.status(), e.getMessage());
        return e.getMessage();
    }

    @Test
    void generateCompilesARegexOrASchemaOnceForEveryRequest() {
        TokenIndex rx = params("{\"regex\": \"(yes|no)\"}").constraint();
        assertNotNull(rx);
        assertSame(rx, params("{\"regex\": \"(yes|no)\", \"n\": 2}").constraint(), "the same text compiles once");
        TokenIndex schema = params("{\"json_schema\": \"{\\\"type\\\": \\\"integer\\\"}\"}").constraint();
        assertTrue(schema.dfa().matches("-42".getBytes()));
        assertSame(schema, params("{\"json_schema\": \"{\\\"type\\\": \\\"integer\\\"}\"}").constraint());
        assertTrue(params("{\"json_schema\": {\"type\": \"boolean\"}}").constraint().dfa().matches("true".getBytes()),
                "an object is taken as the schema too");
        TokenIndex grammar = params("{\"ebnf\": \"root ::= (\\\"yes\\\" | \\\"no\\\") [0-9]{1,3}\"}").constraint();
        assertTrue(grammar.dfa().matches("no42".getBytes()) && !grammar.dfa().matches("maybe".getBytes()));
        assertSame(grammar, params("{\"ebnf\": \"root ::= (\\\"yes\\\" | \\\"no\\\") [0-9]{1,3}\"}").constraint());
        assertNull(params("{\"regex\": null, \"json_schema\": null, \"ebnf\": null}").constraint(), "null is no constraint");
        assertNull(params("{}").constraint());
    }

    @Test
    void refusalsNameTheFieldAndTheProblem() {
        String both = refused("{\"regex\": \"a\", \"json_schema\": \"{}\"}");
        assertTrue(both.contains("json_schema and regex") && both.contains("one constraint"), both);
        String ebnf = refused("{\"ebnf\": \"root ::= item\\nitem ::= \\\"a\\\" | itme\"}");
        assertTrue(ebnf.startsWith("sampling_params.ebnf is refused: ebnf: the rule 'itme' is not defined, at line 2, column 16"), ebnf);
        String bad = refused("{\"regex\": \"a(b\"}");
        assertTrue(bad.startsWith("sampling_params.regex is refused: regex:"), bad);
        String lookahead = refused("{\"regex\": \"(?=a)a\"}");
        assertTrue(lookahead.contains("sampling_params.regex") && lookahead.contains("look"), lookahead);
        String schema = refused("{\"json_schema\": \"{\\\"type\\\": \\\"string\\\", \\\"format\\\": \\\"email\\\"}\"}");
        assertTrue(schema.startsWith("sampling_params.json_schema is refused:") && schema.contains("format"), schema);
        String notJson = refused("{\"json_schema\": \"{not json\"}");
        assertTrue(notJson.contains("not valid JSON"), notJson);
        String type = refused("{\"regex\": 5}");
        assertTrue(type.contains("sampling_params.regex"), type);
    }

    /** Hostile constraints are refused by the limits, in about their time, and the refusal is cached. */
    @Test
    void hostileConstraintsAreRefusedWithinTheLimits() {
        long t0 = System.nanoTime();
        String exploding = refused("{\"regex\": \"(a|b)*a(a|b){25}\"}");
        assertTrue(exploding.contains("sampling_params.regex is refused"), exploding);
        StringBuilder deep = new StringBuilder("{\\\"$defs\\\": {");
        for (int i = 0; i < 12; i++)
            deep.append(i == 0 ? "" : ", ").append("\\\"d").append(i).append("\\\": {\\\"$ref\\\": \\\"#/$defs/d").append(i + 1).append("\\\"}");
        deep.append(", \\\"d12\\\": {\\\"type\\\": \\\"integer\\\"}}, \\\"$ref\\\": \\\"#/$defs/d0\\\"}");
        String chain = refused("{\"json_schema\": \"" + deep + "\"}");
        assertTrue(chain.contains("deeper than the limit"), chain);
        String recursive = refused("{\"json_schema\": \"{\\\"type\\\": \\\"object\\\", \\\"properties\\\": {\\\"next\\\": {\\\"$ref\\\": \\\"#\\\"}}}\"}");
        assertTrue(recursive.contains("recursive"), recursive);
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertTrue(seconds < 10, "refused in " + seconds + " s");
        long t1 = System.nanoTime();
        refused("{\"regex\": \"(a|b)*a(a|b){25}\"}");
        assertTrue((System.nanoTime() - t1) / 1e9 < 0.5, "a refusal sent again is a lookup");
    }

    // ---- OpenAI's routes: what they turn into sampling_params -----------------------------

    static OpenAi.Constraint openAi(String fields) {
        return OpenAi.constraint(json("{" + fields + "}"));
    }

    static String openAiRefused(String fields) {
        ApiException e = assertThrows(ApiException.class, () -> openAi(fields));
        assertEquals(400, e.status());
        return e.getMessage();
    }

    @Test
    void responseFormatAndTheGuidedAliases() {
        assertNull(openAi("\"response_format\": {\"type\": \"text\"}"));
        assertNull(openAi("\"response_format\": null, \"guided_json\": null, \"guided_regex\": \"\""));
        OpenAi.Constraint object = openAi("\"response_format\": {\"type\": \"json_object\"}");
        assertEquals("json_schema", object.key());
        assertEquals(OpenAi.JSON_OBJECT, object.source());
        OpenAi.Constraint schema = openAi("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"strict\": true, "
                + "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}");
        assertEquals(new OpenAi.Constraint("json_schema", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}",
                "response_format.json_schema.schema"), schema);
        assertEquals("{\"type\":\"integer\"}", openAi("\"guided_json\": {\"type\": \"integer\"}").source());
        assertEquals("{\"type\": \"integer\"}", openAi("\"guided_json\": \"{\\\"type\\\": \\\"integer\\\"}\"").source());
        assertEquals(new OpenAi.Constraint("regex", "[0-9]+", "guided_regex"), openAi("\"guided_regex\": \"[0-9]+\""));
        assertEquals(new OpenAi.Constraint("regex", "a+", "regex"), openAi("\"regex\": \"a+\""));
        assertEquals(new OpenAi.Constraint("json_schema", "{\"type\":\"integer\"}", "structured_outputs.json"),
                openAi("\"structured_outputs\": {\"json\": {\"type\": \"integer\"}}"));
        assertEquals("structured_outputs.regex", openAi("\"structured_outputs\": {\"regex\": \"a\"}").field());
        // structural tags: the response_format object is the tag; vLLM's structured_outputs takes its text
        String tag = "{\"type\":\"structural_tag\",\"format\":{\"type\":\"const_string\",\"value\":\"ok\"}}";
        OpenAi.Constraint st = openAi("\"response_format\": " + tag);
        assertEquals(new OpenAi.Constraint("structural_tag", tag, "response_format"), st);
        assertTrue(params("{\"structural_tag\": " + Json.createValue(st.source()) + "}").constraint().dfa().matches("ok".getBytes()));
        assertEquals(tag, openAi("\"structured_outputs\": {\"structural_tag\": " + Json.createValue(tag) + "}").source());
        // SGLang's older form is read as the triggered tags it means; an empty one is refused by name
        assertTrue(refused("{\"structural_tag\": {\"type\": \"structural_tag\", \"structures\": [], \"triggers\": []}}")
                .contains("triggers must be a non-empty list"));
    }

    /** guided_choice: exactly one of the strings, metacharacters literal. */
    @Test
    void guidedChoiceIsAnAlternationOfLiterals() {
        List<String> options = List.of("a.b", "(x|y)*", "c\\d", "[z]{2}", "plain text", "$^+?");
        StringBuilder list = new StringBuilder("[");
        for (String o : options) list.append(list.length() > 1 ? ", " : "").append(Json.createValue(o));
        OpenAi.Constraint c = openAi("\"guided_choice\": " + list + "]");
        assertEquals("guided_choice", c.field());
        Pattern p = Pattern.compile(c.source());
        for (String o : options) assertTrue(p.matcher(o).matches(), o + " against " + c.source());
        for (String not : List.of("aXb", "xy", "c5", "zz", "plain", "")) assertTrue(!p.matcher(not).matches(), not);
        TokenIndex compiled = params("{\"regex\": " + Json.createValue(c.source()) + "}").constraint();
        for (String o : options) assertTrue(compiled.dfa().matches(o.getBytes()), o);
        assertTrue(!compiled.dfa().matches("aXb".getBytes()));
        assertNull(openAi("\"guided_choice\": []"), "an empty list is a client's default, as elsewhere: no constraint");
    }

    @Test
    void openAiRefusalsNameTheirFields() {
        String two = openAiRefused("\"guided_grammar\": \"root ::= x\", \"guided_regex\": \"a\"");
        assertTrue(two.contains("guided_regex and guided_grammar"), two);
        assertTrue(openAiRefused("\"response_format\": {\"type\": \"yaml\"}").contains("response_format.type"));
        assertTrue(openAiRefused("\"response_format\": {\"type\": \"json_schema\"}").contains("response_format.json_schema"));
        assertTrue(openAiRefused("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\"}}")
                .contains("response_format.json_schema.schema"));
        String both = openAiRefused("\"response_format\": {\"type\": \"json_object\"}, \"guided_regex\": \"a\"");
        assertTrue(both.contains("response_format and guided_regex"), both);
        // compile errors name the OpenAI field, through the parser
        JsonObject body = json("{\"model\": \"m\", \"prompt\": [1, 2], \"max_tokens\": 4, \"response_format\": {\"type\": \"json_schema\", "
                + "\"json_schema\": {\"name\": \"x\", \"schema\": {\"type\": \"string\", \"format\": \"uri\"}}}}");
        ApiException e = assertThrows(ApiException.class,
                () -> parser.constraintField(OpenAi.constraintField(body)).parse(OpenAiCompletions.toGenerate(body)));
        assertTrue(e.getMessage().startsWith("response_format.json_schema.schema is refused: json_schema at #"), e.getMessage());
        parser.constraintField(null);
    }

    /** EBNF grammars: vLLM's guided_grammar and structured_outputs.grammar, SGLang's ebnf; a bad one is refused naming the field. */
    @Test
    void grammarsUnderTheirOpenAiNames() {
        assertEquals(new OpenAi.Constraint("ebnf", "root ::= \"a\"", "guided_grammar"), openAi("\"guided_grammar\": \"root ::= \\\"a\\\"\""));
        assertEquals(new OpenAi.Constraint("ebnf", "root ::= \"a\"", "ebnf"), openAi("\"ebnf\": \"root ::= \\\"a\\\"\""));
        assertEquals("structured_outputs.grammar", openAi("\"structured_outputs\": {\"grammar\": \"root ::= \\\"a\\\"\"}").field());
        assertNull(openAi("\"guided_grammar\": null, \"ebnf\": \"\""));
        JsonObject ok = json("{\"model\": \"m\", \"prompt\": [1, 2], \"max_tokens\": 4, \"guided_grammar\": \"root ::= [ab]{3}\"}");
        assertTrue(parser.parse(OpenAiCompletions.toGenerate(ok)).items().get(0).params().constraint().dfa().matches("bab".getBytes()));
        JsonObject bad = json("{\"model\": \"m\", \"prompt\": [1, 2], \"max_tokens\": 4, \"guided_grammar\": \"root ::= [ab\"}");
        ApiException e = assertThrows(ApiException.class,
                () -> parser.constraintField(OpenAi.constraintField(bad)).parse(OpenAiCompletions.toGenerate(bad)));
        parser.constraintField(null);
        assertTrue(e.getMessage().startsWith("guided_grammar is refused: ebnf: the character class is not closed at line 1, column 10"),
                e.getMessage());
    }

    @Test
    void completionsCarryTheConstraintIntoSamplingParams() {
        JsonObject body = json("{\"model\": \"m\", \"prompt\": [1, 2], \"max_tokens\": 4, \"guided_regex\": \"[ab]{3}\"}");
        GenerateRequest r = parser.parse(OpenAiCompletions.toGenerate(body));
        assertTrue(r.items().get(0).params().constraint().dfa().matches("aba".getBytes()));
    }
}
