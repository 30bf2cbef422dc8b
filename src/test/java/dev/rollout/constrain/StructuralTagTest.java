package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** Structural tags (xgrammar's format, our subset): the tool-call shape of slice 3, and refusals by name (free text: {@link FreeTextTest}). */
class StructuralTagTest {
    /** Qwen's tool-call format for two tools, Python's separators in the arguments, as OpenAiChat builds it. */
    static final String CALLS = """
            {"type": "structural_tag", "format": {"type": "tags_with_separator", "separator": "\\n", "at_least_one": true, "tags": [
              {"type": "tag", "begin": "<tool_call>\\n{\\"name\\": \\"get_city\\", \\"arguments\\": ", "end": "}\\n</tool_call>",
               "content": {"type": "json_schema", "separators": [", ", ": "], "json_schema": {"type": "object",
                 "properties": {"city": {"type": "string", "maxLength": 5}, "n": {"type": "integer", "minimum": 1, "maximum": 3}},
                 "required": ["city", "n"], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}}},
              {"type": "tag", "begin": "<tool_call>\\n{\\"name\\": \\"noop\\", \\"arguments\\": ", "end": "}\\n</tool_call>",
               "content": {"type": "json_schema", "separators": [", ", ": "], "json_schema": {"type": "object", "properties": {}}}}]}}""";

    static boolean accepts(String tag, String text) {
        return Constraint.structuralTag(tag, ConstraintLimits.DEFAULT).dfa().matches(text.getBytes(StandardCharsets.UTF_8));
    }

    static String call(String name, String args) {
        return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + args + "}\n</tool_call>";
    }

    @Test
    void toolCallsInTheTemplatesSpelling() {
        assertTrue(accepts(CALLS, call("get_city", "{\"city\": \"Oslo\", \"n\": 2}")));
        assertTrue(accepts(CALLS, call("noop", "{}")));
        assertTrue(accepts(CALLS, call("noop", "{}") + "\n" + call("get_city", "{\"city\": \"\", \"n\": 3}")), "parallel calls");
        assertTrue(!accepts(CALLS, ""), "at_least_one");
        assertTrue(!accepts(CALLS, call("get_city", "{\"city\":\"Oslo\",\"n\":2}")), "compact is not the template's spelling");
        assertTrue(!accepts(CALLS, call("get_city", "{\"city\": \"Oslo\", \"n\": 4}")), "maximum");
        assertTrue(!accepts(CALLS, call("get_town", "{}")), "only the offered names");
        assertTrue(!accepts(CALLS, call("noop", "{}") + call("noop", "{}")), "the separator");
        String one = CALLS.replace("\"at_least_one\": true", "\"at_least_one\": true, \"stop_after_first\": true");
        assertTrue(accepts(one, call("noop", "{}")));
        assertTrue(!accepts(one, call("noop", "{}") + "\n" + call("noop", "{}")), "stop_after_first");
        String none = CALLS.replace("\"at_least_one\": true", "\"at_least_one\": false");
        assertTrue(accepts(none, ""));
    }

    @Test
    void sequencesAlternativesRegexesAndEnds() {
        String tag = """
                {"type": "structural_tag", "format": {"type": "sequence", "elements": [
                  {"type": "const_string", "value": "A:"},
                  {"type": "or", "elements": [{"type": "regex", "pattern": "[0-9]{1,2}"}, {"type": "json_schema", "json_schema": {"type": "boolean"}}]},
                  {"type": "tag", "begin": "<x>", "content": {"type": "const_string", "value": "y"}, "end": ["</x>", "</X>"]}]}}""";
        assertTrue(accepts(tag, "A:42<x>y</x>"));
        assertTrue(accepts(tag, "A:true<x>y</X>"));
        assertTrue(!accepts(tag, "A:123<x>y</x>"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "{'structures':{},'triggers':[]}|the older form needs structures",
            "{'type':'structural_tag','format':{'type':'triggered_tags','triggers':['<'],'tags':[]}}|tags must be a non-empty list",
            "{'type':'structural_tag','format':{'type':'grammar','grammar':'root ::= x'}}|at format.grammar: ebnf",
            "{'type':'structural_tag','format':{'type':'token','token':'</s>'}}|token is not supported: it works on token ids",
            "{'type':'structural_tag','format':{'type':'sequence','elements':[{'type':'jsonschema'}]}}|at format.elements[0]: unknown format type 'jsonschema'",
            "{'type':'structural_tag','format':{'type':'json_schema','json_schema':{'type':'string','format':'email'}}}|at format: json_schema at #: the keyword 'format'",
            "{'type':'structural_tag','format':{'type':'regex','pattern':'(a'}}|at format.pattern",
            "{'type':'structural_tag','format':{'type':'tag','begin':'<a>','end':'</a>'}}|needs content",
            "{'type':'structural_tag','format':{'type':'json_schema','json_schema':{},'separators':[';',':']}}|separators must be a comma",
            "{'type':'structural_tag'}|must be {",
            "{'type':'structural_tag','format':|not valid JSON"})
    void refusesWithTheProblemNamed(String tag, String problem) {
        ConstraintException e = assertThrows(ConstraintException.class, () -> Constraint.structuralTag(tag.replace('\'', '"'), ConstraintLimits.DEFAULT));
        assertTrue(e.getMessage().contains(problem), e.getMessage());
    }

    @Test
    void nestingIsBounded() {
        String f = "{\"type\":\"const_string\",\"value\":\"x\"}";
        for (int i = 0; i < 40; i++) f = "{\"type\":\"sequence\",\"elements\":[" + f + "]}";
        String tag = "{\"type\":\"structural_tag\",\"format\":" + f + "}";
        ConstraintException e = assertThrows(ConstraintException.class, () -> Constraint.structuralTag(tag, ConstraintLimits.DEFAULT));
        assertTrue(e.getMessage().contains("deeper than the limit"), e.getMessage());
    }

    @Test
    void theCacheCompilesATagOnce() {
        ConstraintCache cache = new ConstraintCache(Vocabulary.of(new byte[][] {"x".getBytes(StandardCharsets.UTF_8)}, 2, 1),
                ConstraintLimits.DEFAULT, 4);
        String tag = "{\"type\":\"structural_tag\",\"format\":{\"type\":\"const_string\",\"value\":\"x\"}}";
        TokenIndex index = cache.structuralTag(tag);
        assertTrue(index == cache.structuralTag(tag), "the same text compiles once");
        assertTrue(index.dfa().matches("x".getBytes(StandardCharsets.UTF_8)));
    }
}
