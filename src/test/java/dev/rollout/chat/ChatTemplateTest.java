package dev.rollout.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.rollout.client.agent.ChatFormat;
import dev.rollout.tokenizer.HfTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The chat template renderer against transformers' own renderings of the real Qwen3 template
 * (src/test/resources/chat/qwen3-fixtures.json, made by tools/gpu/chat_fixtures.py), and the
 * Jinja2 behaviour the fixtures do not reach.
 */
class ChatTemplateTest {
    /** The fixtures as the server sees JSON: plain Java objects (AssistantOutput.java, the chat package's reader). */
    @SuppressWarnings("unchecked")
    static Stream<Arguments> fixtures() throws IOException {
        JsonElement all = JsonParser.parseString(Files.readString(Path.of("src/test/resources/chat/qwen3-fixtures.json")));
        List<Object> fixtures = (List<Object>) ((Map<String, Object>) AssistantOutput.java(all)).get("fixtures");
        return fixtures.stream().map(f -> Arguments.of(((Map<String, Object>) f).get("name"), f));
    }

    static final Path QWEN3 = Path.of("target/classes/dev/rollout/tokenizer/qwen3");
    static ChatTemplates templates;
    static HfTokenizer tokenizer;

    @BeforeAll
    static void load() throws IOException {
        templates = ChatTemplates.load(QWEN3);
        tokenizer = HfTokenizer.load(QWEN3.resolve("tokenizer.json"));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    @SuppressWarnings("unchecked")
    void matchesTransformers(String name, Map<String, Object> fixture) {
        // the special tokens, then the request's kwargs, as the server adds them
        Map<String, Object> variables = new HashMap<>(templates.specialTokens());
        variables.putAll((Map<String, Object>) fixture.get("kwargs"));
        List<?> tools = (List<?>) fixture.get("tools");
        String out = templates.select(tools != null).render((List<?>) fixture.get("messages"), tools, variables);
        assertEquals(fixture.get("prompt"), out);
        // and the server's tokenizer reads it, special tokens and all, as transformers' does
        int[] expected = ((List<?>) fixture.get("input_ids")).stream().mapToInt(x -> ((Number) x).intValue()).toArray();
        assertArrayEquals(expected, tokenizer.encode(out, false));
    }

    @Test
    void theAgentLoopsAppendedTurnIsTheTemplates() {
        Map<String, Object> calculator = Map.of("type", "function", "function", Map.of("name", "calculator"));
        Map<String, Object> user = Map.of("role", "user", "content", "What is 2+2?");
        Map<String, Object> args = new LinkedHashMap<>(Map.of("expression", "2+2"));
        Map<String, Object> call = Map.of("type", "function", "function", Map.of("name", "calculator", "arguments", args));
        Map<String, Object> assistant = Map.of("role", "assistant", "content", "", "tool_calls", List.of(call));
        Map<String, Object> vars = new HashMap<>(Map.of("add_generation_prompt", true));
        ChatTemplate t = templates.select(true);
        String first = t.render(List.of(user), List.of(calculator), vars);
        String full = t.render(List.of(user, assistant, Map.of("role", "tool", "content", "4"), Map.of("role", "tool", "content", "5")),
                List.of(calculator), vars);
        // what the model writes, then what the loop appends after the model's own <|im_end|>
        String modelTurn = "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}\n</tool_call><|im_end|>";
        assertEquals(full, first + modelTurn + ChatFormat.toolResponses(List.of("4", "5")));
    }

    @Test
    void messagesAreDataNotTemplateCode() {
        String text = "{{ 7*7 }} {% for x in [1, 2] %}x{% endfor %} {{ raise_exception('no') }}";
        ChatTemplate t = new ChatTemplate("{% for m in messages %}{{ m.content }}|{{ m.content|trim }}{% endfor %}");
        assertEquals(text + "|" + text, t.render(List.of(Map.of("role", "user", "content", text)), null, Map.of()));
        String qwen = templates.select(false).render(List.of(Map.of("role", "user", "content", text)), null,
                Map.of("add_generation_prompt", true));
        assertEquals("<|im_start|>user\n" + text + "<|im_end|>\n<|im_start|>assistant\n", qwen);
    }

    @Test
    void raiseExceptionIsTheRequestsFault() {
        ChatTemplate t = new ChatTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}ok");
        assertEquals("ok", t.render(List.of(Map.of("role", "user")), null, Map.of()));
        ChatTemplate.ChatTemplateException e = assertThrows(ChatTemplate.ChatTemplateException.class,
                () -> t.render(List.of(Map.of("role", "system")), null, Map.of()));
        assertEquals("Conversations must start with a user turn", e.getMessage());
    }

    @Test
    void namedTemplatesAndSpecialTokens(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                 "chat_template": [{"name": "default", "template": "{{ bos_token }}D{{ messages|length }}"},
                                   {"name": "tool_use", "template": "T{{ tools|length }}{{ eos_token }}"}]}""");
        ChatTemplates named = ChatTemplates.load(dir);
        assertEquals("<s>D1", named.select(false).render(List.of(Map.of()), null, named.specialTokens()));
        assertEquals("T2</s>", named.select(true).render(List.of(), List.of(1, 2), named.specialTokens()));
        // a chat_template.jinja beside the config wins, as in transformers
        Files.writeString(dir.resolve("chat_template.jinja"), "J");
        assertEquals("J", ChatTemplates.load(dir).select(false).render(List.of(), null, Map.of()));
        assertNull(ChatTemplates.load(dir.resolve("missing")));
    }

    @Test
    void pythonStringMethods() {
        ChatTemplate t = new ChatTemplate("{{ s.split('|')|length }} {{ s.split('|')[-1] }} {{ s.strip('|x') }} {{ s.startswith(('a', 'x')) }}"
                + " {{ '  a b  '.split()|length }} {{ s.endswith('|') }} {{ s.rstrip('|') }} {{ '-'.join(['a', 'b']) }}");
        // one difference left: Jinjava prints booleans as true/false, Jinja2 as True/False (ADR 0012)
        assertEquals("5  a||b true 2 true x|a||b a-b", t.render(List.of(), null, Map.of("s", "x|a||b|")));
    }

    @Test
    void jinja2SyntaxJinjavaReadsOtherwise() {
        assertEquals("3,2,1,", new ChatTemplate("{% for x in xs[::-1] %}{{ x }},{% endfor %}").render(List.of(), null, Map.of("xs", List.of(1, 2, 3))));
        assertEquals("2", new ChatTemplate("{% set ns = namespace(n=xs|length - 1) %}{{ ns.n }}").render(List.of(), null, Map.of("xs", List.of(1, 2, 3))));
        assertEquals("{\n  \"a\": [\n    1,\n    2.5\n  ]\n}",
                new ChatTemplate("{{ x|tojson(indent=2) }}").render(List.of(), null, Map.of("x", Map.of("a", List.of(1, 2.5)))));
        // comments, text and string literals are left alone
        assertEquals("[::-1] a=b", new ChatTemplate("{# xs[::-1] #}[::-1] {{ 'a=b' }}").render(List.of(), null, Map.of()));
    }
}
