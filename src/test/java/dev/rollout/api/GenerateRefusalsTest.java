package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code /generate}'s top-level fields that would change the output and that the server does not
 * honour: a 400 naming the field when it carries a value, accepted when it carries the default a
 * client sends (issue #17: never a silent 200). No tokenizer is needed: the prompts are ids.
 */
class GenerateRefusalsTest {
    final GenerateRequestParser parser = new GenerateRequestParser(new GenerateRequestParser.Limits(1000, 64, 10_000, 4, 8), null);

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        custom_logit_processor | "{\\"callable\\": \\"gASV...\\"}" | serialized code
        lora_path              | "my-adapter"                      | LoRA
        lora_path              | ["a", null]                       | LoRA
        lora_id                | "id-1"                            | LoRA
        return_hidden_states   | true                              | return_hidden_states
        return_hidden_states   | "last"                            | return_hidden_states
        """)
    void refusedWithAValue(String field, String value, String says) {
        ApiException e = assertThrows(ApiException.class,
                () -> parser.parse(json("{\"input_ids\": [1, 2], \"" + field + "\": " + value + "}")));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().startsWith(field), e.getMessage());
        assertTrue(e.getMessage().contains(says), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"\"custom_logit_processor\": null", "\"custom_logit_processor\": \"\"", "\"lora_path\": null",
            "\"lora_path\": [null, null]", "\"lora_path\": []", "\"return_hidden_states\": false", "\"lora_id\": null"})
    void acceptedWithTheDefault(String field) {
        assertEquals(2, parser.parse(json("{\"input_ids\": [[1, 2], [3]], " + field + "}")).items().size());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
        ["a", "a"]           | ['a']
        ["a", "b", "a", "b"] | ['a', 'b']
        """)
    void aBatchNamingOneRidTwiceIsRefusedInSglangsWords(String rids, String listed) {
        String prompts = rids.split(",").length == 2 ? "[[1], [2]]" : "[[1], [2], [3], [4]]";
        ApiException e = assertThrows(ApiException.class, () -> parser.parse(json("{\"input_ids\": " + prompts + ", \"rid\": " + rids + "}")));
        assertEquals("Duplicate request IDs detected within the request: " + listed, e.getMessage());
    }
}
