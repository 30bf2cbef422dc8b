package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Constrained decoding over HTTP (issue #22): SGLang's {@code sampling_params.regex} and
 * {@code json_schema} on /generate, OpenAI's {@code response_format} on chat completions. The
 * default model's weights are random, so the checks are structural: the output matches the regex
 * or validates against the schema, and the constraint ends it with EOS. Bad and hostile
 * constraints are 400s naming the problem, and a request running meanwhile is not disturbed.
 */
class ConstrainedDecodingIT {
    static final Set<Integer> EOS = Set.of(151645, 151643);
    static final String SCHEMA = "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"maxLength\": 10}, "
            + "\"population\": {\"type\": \"integer\"}, \"capital\": {\"type\": \"boolean\"}}, "
            + "\"required\": [\"city\", \"population\", \"capital\"], \"additionalProperties\": false}";
    static String model;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        model = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
    }

    static JsonObject generate(String body) {
        Http.Reply r = Http.post("/generate", body);
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    static void endsByTheConstraint(JsonObject g) {
        JsonArray ids = g.getJsonArray("output_ids");
        JsonObject finish = g.getJsonObject("meta_info").getJsonObject("finish_reason");
        assertEquals("stop", finish.getString("type"), g.toString());
        assertTrue(EOS.contains(finish.getInt("matched")), g.toString());
        assertEquals(finish.getInt("matched"), ids.getInt(ids.size() - 1), g.toString());
    }

    static void validates(String text) {
        JsonObject o = Json.createReader(new StringReader(text)).readObject();
        assertEquals(List.of("city", "population", "capital"), List.copyOf(o.keySet()), text);
        assertTrue(o.getString("city").length() <= 10, "maxLength in UTF-16 units, as zod counts (then in code points too): " + text);
        assertTrue(o.getJsonNumber("population").isIntegral(), text);
        assertTrue(o.get("capital").getValueType() == jakarta.json.JsonValue.ValueType.TRUE
                || o.get("capital").getValueType() == jakarta.json.JsonValue.ValueType.FALSE, text);
    }

    @Test
    void generateWithARegexAndASchema() {
        String regex = "(red|green|blue) [0-9]{1,3}";
        JsonArray both = Http.post("/generate", "{\"text\": [\"Pick a colour:\", \"Pick a colour:\"], \"sampling_params\": "
                + "{\"regex\": " + Json.createValue(regex) + ", \"temperature\": 1.0, \"max_new_tokens\": 40, \"n\": 2}, "
                + "\"return_logprob\": true}").array();
        assertEquals(4, both.size(), both.toString());
        for (int i = 0; i < both.size(); i++) {
            JsonObject g = both.getJsonObject(i);
            assertTrue(Pattern.matches(regex, g.getString("text")), g.toString());
            endsByTheConstraint(g);
            assertTrue(g.getJsonObject("meta_info").getBoolean("constrained"), "the RL view says the distribution was masked");
        }
        JsonObject s = generate("{\"text\": \"Describe a city as JSON:\", \"sampling_params\": {\"json_schema\": "
                + Json.createValue(SCHEMA) + ", \"temperature\": 0.8, \"max_new_tokens\": 120}}");
        validates(s.getString("text"));
        endsByTheConstraint(s);
        JsonObject plain = generate("{\"input_ids\": [9707, 11], \"sampling_params\": {\"max_new_tokens\": 2}, \"return_logprob\": true}");
        assertTrue(!plain.getJsonObject("meta_info").getBoolean("constrained"), "with logprobs, an unconstrained request says false");
    }

    @Test
    void chatCompletionsWithResponseFormat() {
        String body = "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"A city, as JSON\"}], "
                + "\"max_tokens\": 120, \"temperature\": 0.7, \"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
                + "{\"name\": \"city\", \"strict\": true, \"schema\": " + SCHEMA + "}}}";
        Http.Reply r = Http.post("/v1/chat/completions", body);
        assertEquals(200, r.status(), r.body());
        JsonObject choice = r.object().getJsonArray("choices").getJsonObject(0);
        assertEquals("stop", choice.getString("finish_reason"), r.body());
        validates(choice.getJsonObject("message").getString("content"));
        // vLLM's guided_choice on completions: exactly one of the options
        Http.Reply c = Http.post("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": \"Yes or no?\", \"max_tokens\": 10, "
                + "\"guided_choice\": [\"yes\", \"no\", \"maybe (later)\"]}");
        assertEquals(200, c.status(), c.body());
        String text = c.object().getJsonArray("choices").getJsonObject(0).getString("text");
        assertTrue(Set.of("yes", "no", "maybe (later)").contains(text), text);
    }

    /**
     * tool_choice "auto" with a strict tool: the answer is held to text and whole calls. The random
     * model is leaned onto {@code <tool_call>} (id 151657) with logit_bias so that it calls; what
     * follows is the constraint's, parsed into tool_calls. Beside response_format, "auto" answers
     * the format's content or calls, and "required" is calls only (the format is for a later turn).
     */
    @Test
    void chatCompletionsWithToolChoiceAutoAndBesideResponseFormat() {
        String tools = "[{\"type\": \"function\", \"function\": {\"name\": \"get_city\", \"strict\": true, \"parameters\": " + SCHEMA + "}}]";
        String head = "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Look up a city\"}], "
                + "\"max_tokens\": 120, \"temperature\": 1.0, \"seed\": 4, \"tools\": " + tools + ", \"parallel_tool_calls\": false, "
                + "\"chat_template_kwargs\": {\"enable_thinking\": false}";
        for (String extra : List.of(", \"logit_bias\": {\"151657\": 30}", ", \"tool_choice\": \"required\", \"response_format\": {\"type\": \"json_object\"}")) {
            Http.Reply r = Http.post("/v1/chat/completions", head + extra + "}");
            assertEquals(200, r.status(), r.body());
            JsonObject choice = r.object().getJsonArray("choices").getJsonObject(0);
            assertEquals("tool_calls", choice.getString("finish_reason"), r.body());
            JsonArray calls = choice.getJsonObject("message").getJsonArray("tool_calls");
            assertEquals(1, calls.size(), r.body());
            assertEquals("get_city", calls.getJsonObject(0).getJsonObject("function").getString("name"), r.body());
            validates(calls.getJsonObject(0).getJsonObject("function").getString("arguments"));
        }
        // response_format beside "auto": leaned onto "{" (id 90), the answer is the format's content, and no call
        Http.Reply r = Http.post("/v1/chat/completions", head + ", \"logit_bias\": {\"90\": 30}, \"response_format\": "
                + "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"city\", \"schema\": " + SCHEMA + "}}}");
        assertEquals(200, r.status(), r.body());
        JsonObject choice = r.object().getJsonArray("choices").getJsonObject(0);
        assertEquals("stop", choice.getString("finish_reason"), r.body());
        validates(choice.getJsonObject("message").getString("content"));
        assertTrue(!choice.getJsonObject("message").containsKey("tool_calls") || choice.getJsonObject("message").isNull("tool_calls"), r.body());
    }

    /** An EBNF grammar on /generate (SGLang's ebnf) and vLLM's guided_grammar on completions; recursion within its bound. */
    @Test
    void grammars() {
        // at most 2^5 digits in lists nested 5 deep: the grammar, not max_new_tokens, ends it
        String grammar = "root ::= answer \" \" list\nanswer ::= \"yes\" | \"no\"\nlist ::= \"[\" item (\",\" item)? \"]\"\n"
                + "item ::= [0-9] | list";
        Pattern flat = Pattern.compile("(yes|no) \\[.*\\]");
        JsonObject g = generate("{\"text\": \"Answer:\", \"sampling_params\": {\"ebnf\": " + Json.createValue(grammar)
                + ", \"temperature\": 1.0, \"max_new_tokens\": 200}}");
        String text = g.getString("text");
        assertTrue(flat.matcher(text).matches(), text);
        int depth = 0, max = 0;
        for (char c : text.toCharArray()) max = Math.max(max, depth += c == '[' ? 1 : c == ']' ? -1 : 0);
        assertTrue(max <= 1 + 4 && depth == 0, "nested at most the bound: " + text);
        endsByTheConstraint(g);
        Http.Reply c = Http.post("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": \"Yes or no?\", \"max_tokens\": 10, "
                + "\"guided_grammar\": \"root ::= \\\"yes\\\" | \\\"no\\\"\"}");
        assertEquals(200, c.status(), c.body());
        String answer = c.object().getJsonArray("choices").getJsonObject(0).getString("text");
        assertTrue(Set.of("yes", "no").contains(answer), answer);
    }

    /**
     * Refusals are 400s naming the field and the problem, the hostile ones within the compile
     * limits; a long request that runs meanwhile finishes as it would have.
     */
    @Test
    void badAndHostileConstraintsAre400sAndDisturbNothing() throws Exception {
        CompletableFuture<Http.Reply> running = CompletableFuture.supplyAsync(() -> Http.post("/generate",
                "{\"input_ids\": [9707, 11, 1879], \"sampling_params\": {\"max_new_tokens\": 200, \"ignore_eos\": true, "
                        + "\"temperature\": 0}}"));
        String deep = "{\"$defs\": {" + "\"d0\": {\"$ref\": \"#/$defs/d1\"}, \"d1\": {\"$ref\": \"#/$defs/d2\"}, "
                + "\"d2\": {\"$ref\": \"#/$defs/d3\"}, \"d3\": {\"$ref\": \"#/$defs/d4\"}, \"d4\": {\"$ref\": \"#/$defs/d5\"}, "
                + "\"d5\": {\"$ref\": \"#/$defs/d6\"}, \"d6\": {\"$ref\": \"#/$defs/d7\"}, \"d7\": {\"$ref\": \"#/$defs/d8\"}, "
                + "\"d8\": {\"$ref\": \"#/$defs/d9\"}, \"d9\": {\"type\": \"integer\"}}, \"$ref\": \"#/$defs/d0\"}";
        record Case(String route, String body, String says) {}
        List<Case> cases = List.of(
                new Case("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"regex\": \"[a-z\"}}", "sampling_params.regex is refused"),
                new Case("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"regex\": \"(a|b)*a(a|b){25}\"}}", "sampling_params.regex is refused"),
                new Case("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"json_schema\": " + Json.createValue(deep) + "}}",
                        "deeper than the limit"),
                new Case("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"json_schema\": \"{\\\"type\\\": \\\"object\\\", "
                        + "\\\"properties\\\": {\\\"a\\\": {\\\"type\\\": \\\"string\\\", \\\"maxLength\\\": 10000}, \\\"b\\\": {\\\"type\\\": "
                        + "\\\"string\\\", \\\"maxLength\\\": 10000}, \\\"c\\\": {\\\"type\\\": \\\"string\\\", \\\"maxLength\\\": 10000}}}\"}}",
                        "sampling_params.json_schema is refused"),
                new Case("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"regex\": \"a\", \"json_schema\": \"{}\"}}", "one constraint"),
                new Case("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"ebnf\": \"root ::= \\\"a\\\" rest\"}}",
                        "sampling_params.ebnf is refused: ebnf: the rule 'rest' is not defined"),
                new Case("/v1/chat/completions", "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"guided_grammar\": \"root ::= t\\nt ::= \\\"(\\\" t t t t t t t t t t t t t t t t t t t t t t t t t t \\\")\\\" | \\\"x\\\"\"}",
                        "guided_grammar is refused: ebnf: the recursive rule 't'"),
                new Case("/v1/chat/completions", "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\": "
                        + "{\"type\": \"string\", \"format\": \"email\"}}}}", "response_format.json_schema.schema is refused"),
                new Case("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": \"x\", \"guided_regex\": \"(?<=a)b\"}",
                        "guided_regex is refused"));
        for (Case c : cases) {
            long t0 = System.nanoTime();
            Http.Reply r = Http.post(c.route(), c.body());
            double seconds = (System.nanoTime() - t0) / 1e9;
            assertEquals(400, r.status(), c.body() + " -> " + r.body());
            String message = r.object().getJsonObject("error").getString("message");
            assertTrue(message.contains(c.says()), c.says() + " in " + r.body());
            assertTrue(seconds < 15, "refused in " + seconds + " s: " + c.body());
        }
        Http.Reply done = running.get(300, TimeUnit.SECONDS);
        assertEquals(200, done.status(), done.body());
        JsonObject finish = done.object().getJsonObject("meta_info").getJsonObject("finish_reason");
        assertEquals("length", finish.getString("type"), done.body());
        assertEquals(200, done.object().getJsonArray("output_ids").size());
    }
}
