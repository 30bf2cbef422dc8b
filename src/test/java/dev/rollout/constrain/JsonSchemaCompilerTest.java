package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JsonSchemaCompilerTest {
    static boolean accepts(String schema, String json) {
        return Constraint.jsonSchema(schema, ConstraintLimits.DEFAULT).dfa().matches(json.getBytes(StandardCharsets.UTF_8));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            // optional properties: any subset, in order, commas only between
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'},'c':{'type':'integer'}},'required':['b']}|{'b':1}|true",
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'},'c':{'type':'integer'}},'required':['b']}|{'a':1,'b':2,'c':3}|true",
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'},'c':{'type':'integer'}},'required':['b']}|{'b':2,'c':3}|true",
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'},'c':{'type':'integer'}},'required':['b']}|{'a':1}|false",
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'}}}|{}|true",
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'}}}|{,'b':1}|false",
            "{'properties':{'a':{'type':'integer'},'b':{'type':'integer'}}}|{'b':1,'a':1}|false",
            "{'type':'object','properties':{'a':{'type':'null'}},'additionalProperties':true}|{'a':null,'z':1}|false",
            "{'type':'integer'}|-0|true", "{'type':'integer'}|01|false", "{'type':'integer'}|1.0|false",
            "{'type':'integer'}|1234567890123456789|true", "{'type':'integer'}|12345678901234567890|false",
            "{'type':'number'}|-1.5e+10|true", "{'type':'number'}|.5|false", "{'type':'number'}|1.|false",
            "{'type':['string','null']}|null|true", "{'type':'string','maxLength':2}|'ab'|true", "{'type':'string','maxLength':2}|'abc'|false",
            "{'type':'string','maxLength':1}|'\\n'|true", "{'type':'string','maxLength':1}|'\\u000a'|false",
            "{'type':'string','pattern':'^a\\\"$'}|'a\\\"'|true", "{'type':'string','pattern':'^a\\\"$'}|'a\"'|false",
            "{'type':'array','items':{'type':'boolean'},'minItems':1,'maxItems':2}|[]|false",
            "{'type':'array','items':{'type':'boolean'},'minItems':1,'maxItems':2}|[true,false]|true",
            "{'type':'array','items':{'type':'boolean'},'maxItems':0}|[]|true",
            "{'$defs':{'p':{'type':'object','properties':{'x':{'type':'number'}},'required':['x']}},'type':'array','items':{'$ref':'#/$defs/p'}}|[{'x':1},{'x':2.5}]|true",
            "{'type':'object','additionalProperties':{'type':'integer'}}|{'k':1,'j':2}|true",
            "{'type':'object','additionalProperties':{'type':'integer'}}|{'k':'1'}|false",
            "{'type':'object'}|{'k':[1,{'j':null}]}|true", "{}|[1,'x',{}]|true", "{'enum':[1.50,'x']}|1.50|true", "{'enum':[1.50,'x']}|1.5|false",
            "{'const':{'a':[1,'<>']}}|{'a':[1,'<>']}|true", "{'type':'string','format_':1,'x-vendor':1}|''|true"})
    void acceptsTheCompactSpelling(String schema, String json, boolean expected) {
        String s = schema.replace('\'', '"').replace("format_", "x-format");
        assertEquals(expected, accepts(s, json.replace('\'', '"')), s + " on " + json);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "{'type':'integer','multipleOf':2}|'multipleOf' is not supported", "{'type':'string','format':'email'}|'format'",
            "{'type':'number','maximum':0.5}|bound 0.5 is not an integer", "{'type':'integer','minimum':3,'maximum':2}|no integer",
            "{'type':'number','exclusiveMinimum':true}|as a boolean (draft 4)", "{'type':'integer','minimum':'1'}|minimum must be a number",
            "{'oneOf':[{'type':'null'}]}|'oneOf'", "{'type':'strin'}|unknown type 'strin'",
            "{'$defs':{'n':{'type':'object','properties':{'next':{'$ref':'#/$defs/n'}}}},'$ref':'#/$defs/n'}|recursive $ref",
            "{'$ref':'#/$defs/missing'}|points to nothing", "{'$ref':'http://x/y'}|only local",
            "{'type':'object','properties':{'a':{}},'required':['b']}|required property 'b'",
            "{'type':'string','minLength':3,'maxLength':2}|minLength 3 is above maxLength 2", "{'type':'string','maxLength':1e9}|above the limit",
            "{'type':'string','pattern':'(a)\\\\1'}|backreferences", "{'enum':[]}|enum is empty", "false|allows no value", "[1]|must be an object",
            "{'type':'array','uniqueItems':true}|uniqueItems", "{'type':|not valid JSON"})
    void refusesWithTheProblemNamed(String schema, String problem) {
        ConstraintException e = assertThrows(ConstraintException.class, () -> Constraint.jsonSchema(schema.replace('\'', '"'), ConstraintLimits.DEFAULT));
        assertTrue(e.getMessage().contains(problem), e.getMessage());
    }

    /**
     * A length holds under JSON Schema's reading (code points) and zod's (JavaScript's
     * {@code string.length}, UTF-16 units) at once: a character outside the Basic Multilingual
     * Plane (an emoji) counts 2 toward maxLength and 1 toward minLength.
     */
    @Test
    void lengthsHoldAsCodePointsAndAsUtf16Units() {
        String max2 = "{\"type\":\"string\",\"maxLength\":2}";
        assertTrue(accepts(max2, "\"ab\""));
        assertTrue(accepts(max2, "\"😀\""), "one emoji: 1 code point, 2 units");
        assertFalse(accepts(max2, "\"a😀\""), "2 code points but 3 units: zod's .max(2) rejects it");
        assertFalse(accepts(max2, "\"😀😀\""));
        String min2 = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":4}";
        assertFalse(accepts(min2, "\"😀\""), "2 units but 1 code point: JSON Schema's minLength 2 rejects it");
        assertTrue(accepts(min2, "\"😀😀\""));
        assertTrue(accepts(min2, "\"a😀b\""));
        assertTrue(accepts(min2, "\"\\n\\u0001é€\""), "escapes and BMP characters count 1 each way");
        assertFalse(accepts(min2, "\"😀😀a\""), "5 units");
        assertTrue(accepts("{\"type\":\"string\",\"minLength\":1}", "\"😀😀😀😀😀\""), "no maxLength: no bound on units");
        assertFalse(accepts("{\"type\":\"string\",\"minLength\":3,\"maxLength\":3}", "\"ab😀\""), "an exact length is BMP only");

        // a long minimum: the astral characters before it is reached are capped (here at 1), not the automaton's states
        String longer = "{\"type\":\"string\",\"minLength\":1000,\"maxLength\":2000}";
        ByteDfa dfa = Constraint.jsonSchema(longer, ConstraintLimits.DEFAULT).dfa();
        assertTrue(dfa.matches(("\"a😀" + "a".repeat(998) + "\"").getBytes(StandardCharsets.UTF_8)));
        assertFalse(dfa.matches(("\"a😀😀" + "a".repeat(997) + "\"").getBytes(StandardCharsets.UTF_8)), "two before the minimum: past the cap");
        assertTrue(dfa.matches(("\"" + "a".repeat(1000) + "😀".repeat(500) + "\"").getBytes(StandardCharsets.UTF_8)), "2,000 units");
        assertFalse(dfa.matches(("\"" + "a".repeat(1000) + "😀".repeat(500) + "a\"").getBytes(StandardCharsets.UTF_8)), "2,001 units");
        assertFalse(dfa.matches(("\"" + "a".repeat(999) + "\"").getBytes(StandardCharsets.UTF_8)));
        int plain = Constraint.jsonSchema("{\"type\":\"string\",\"maxLength\":2000}", ConstraintLimits.DEFAULT).dfa().states();
        assertTrue(dfa.states() < 3 * plain, dfa.states() + " states against " + plain);
    }

    @Test
    void aDeepChainOfRefsIsRefusedAtTheLimit() {
        StringBuilder defs = new StringBuilder();
        for (int i = 0; i < 20; i++) defs.append(i > 0 ? "," : "").append("\"d").append(i).append("\":{\"$ref\":\"#/$defs/d").append(i + 1).append("\"}");
        String schema = "{\"$defs\":{" + defs + ",\"d20\":{\"type\":\"null\"}},\"$ref\":\"#/$defs/d0\"}";
        ConstraintException e = assertThrows(ConstraintException.class, () -> Constraint.jsonSchema(schema, ConstraintLimits.DEFAULT));
        assertTrue(e.getMessage().contains("nests deeper"), e.getMessage());
    }

    @Test
    void theCacheCompilesOnceAndRemembersRefusals() {
        Vocabulary v = Vocabulary.of(new byte[][] {"a".getBytes(StandardCharsets.UTF_8)}, 2, 1);
        ConstraintCache cache = new ConstraintCache(v, ConstraintLimits.DEFAULT, 2);
        TokenIndex first = cache.jsonSchema("{\"type\":\"null\"}");
        assertSame(first, cache.jsonSchema("{\"type\":\"null\"}"));
        assertThrows(ConstraintException.class, () -> cache.regex("(a"));
        assertThrows(ConstraintException.class, () -> cache.regex("(a"));
        assertEquals(2, cache.size());
        cache.regex("a");
        assertEquals(2, cache.size(), "least recently used evicted");
    }
}
