package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.chat.AssistantOutput;
import dev.rollout.engine.FinishReason;
import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** /v1/responses both ways: a Responses request as the chat request it means, and an answer in the Responses shape. */
class OpenAiResponsesTest {
    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s.replace('\'', '"'))).readObject();
    }

    static JsonObject chat(String responses) {
        return OpenAiResponses.toChat(json(responses)).chat();
    }

    static String refusal(String responses) {
        ApiException e = assertThrows(ApiException.class, () -> OpenAiResponses.toChat(json(responses)));
        assertEquals(400, e.status());
        return e.getMessage();
    }

    @Test
    void aStringInputIsOneUserMessageAndInstructionsTheSystemMessage() {
        assertEquals(json("{'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}]}"), chat("{'model': 'm', 'input': 'hi'}"));
        JsonObject c = chat("{'input': 'hi', 'instructions': 'be brief', 'max_output_tokens': 7, 'temperature': 0.5, 'top_p': 0.9, "
                + "'stream': true, 'store': true, 'metadata': {'k': 'v'}, 'user': 'u'}");
        assertEquals(json("{'messages': [{'role': 'system', 'content': 'be brief'}, {'role': 'user', 'content': 'hi'}], "
                + "'max_completion_tokens': 7, 'temperature': 0.5, 'top_p': 0.9, 'stream': true}"), c);
    }

    @Test
    void inputItemsBecomeMessagesToolCallsAndToolResults() {
        JsonObject c = chat("{'input': ["
                + "{'role': 'developer', 'content': [{'type': 'input_text', 'text': 'a'}, {'type': 'input_text', 'text': 'b'}]},"
                + "{'type': 'message', 'role': 'user', 'content': 'weather?'},"
                + "{'type': 'message', 'role': 'assistant', 'content': [{'type': 'output_text', 'text': 'let me look'}]},"
                + "{'type': 'function_call', 'call_id': 'c1', 'name': 'get', 'arguments': '{\\'city\\': \\'Paris\\'}'},"
                + "{'type': 'function_call', 'call_id': 'c2', 'name': 'get', 'arguments': '{}'},"
                + "{'type': 'reasoning', 'id': 'rs_1', 'summary': []},"
                + "{'type': 'function_call_output', 'call_id': 'c1', 'output': 'sunny'},"
                + "{'type': 'function_call_output', 'call_id': 'c2', 'output': [{'type': 'input_text', 'text': 'rain'}]}]}");
        JsonArray m = c.getJsonArray("messages");
        assertEquals(5, m.size(), m.toString());
        assertEquals(json("{'role': 'developer', 'content': 'a\\nb'}"), m.getJsonObject(0));
        assertEquals(json("{'role': 'user', 'content': 'weather?'}"), m.getJsonObject(1));
        assertEquals(json("{'role': 'assistant', 'content': 'let me look', 'tool_calls': ["
                + "{'id': 'c1', 'type': 'function', 'function': {'name': 'get', 'arguments': '{\\'city\\': \\'Paris\\'}'}},"
                + "{'id': 'c2', 'type': 'function', 'function': {'name': 'get', 'arguments': '{}'}}]}"), m.getJsonObject(2));
        assertEquals(json("{'role': 'tool', 'tool_call_id': 'c1', 'content': 'sunny', 'name': 'get'}"), m.getJsonObject(3));
        assertEquals("rain", m.getJsonObject(4).getString("content"));
    }

    @Test
    void flatFunctionToolsToolChoiceAndTextFormatBecomeChatsFields() {
        OpenAiResponses.Translation t = OpenAiResponses.toChat(json("{'input': 'x', 'tools': [{'type': 'function', 'name': 'get', "
                + "'description': 'd', 'parameters': {'type': 'object'}, 'strict': true}], 'tool_choice': {'type': 'function', 'name': 'get'}, "
                + "'text': {'format': {'type': 'json_schema', 'name': 'out', 'schema': {'type': 'string', 'maxLength': 3}, 'strict': true}}}"));
        assertEquals(json("{'tools': [{'type': 'function', 'function': {'name': 'get', 'description': 'd', 'parameters': {'type': 'object'}, "
                + "'strict': true}}]}").getJsonArray("tools"), t.chat().getJsonArray("tools"));
        assertEquals(json("{'type': 'function', 'function': {'name': 'get'}}"), t.chat().getJsonObject("tool_choice"));
        assertEquals(json("{'type': 'json_schema', 'json_schema': {'schema': {'type': 'string', 'maxLength': 3}, 'name': 'out', 'strict': true}}"),
                t.chat().getJsonObject("response_format"));
        assertEquals("text.format.schema", t.constraintField("response_format.json_schema.schema"));
        assertEquals("text.format.schema or tools (tool_choice \"auto\")",
                t.constraintField("response_format.json_schema.schema or tools (tool_choice \"auto\")"), "chat's names, as this request spells them");
        assertEquals("tools[0].parameters", t.constraintField("tools[0].function.parameters"));
        assertEquals(new OpenAi.Constraint("json_schema", "{\"type\":\"string\",\"maxLength\":3}", "response_format.json_schema.schema"),
                OpenAi.constraint(t.chat()), "the same constraint response_format gives");
        assertEquals("json_object", chat("{'input': 'x', 'text': {'format': {'type': 'json_object'}}}").getJsonObject("response_format").getString("type"));
        assertFalse(chat("{'input': 'x', 'text': {'format': {'type': 'text'}, 'verbosity': 'low'}}").containsKey("response_format"));
        assertEquals("required", chat("{'input': 'x', 'tools': [], 'tool_choice': 'required'}").getString("tool_choice"));
        // parallel_tool_calls goes to the chat request, which holds the calls to it (ToolChoiceConstraintTest)
        assertFalse(chat("{'input': 'x', 'parallel_tool_calls': false}").getBoolean("parallel_tool_calls"));
        assertFalse(chat("{'input': 'x'}").containsKey("parallel_tool_calls"), "absent: chat's default, true");
    }

    /**
     * A function tool that does not say is strict on the Responses API (unlike chat completions),
     * where the constraint compiler takes its parameters; loose where it does not, as OpenAI falls
     * back to best effort. The answer echoes what was settled.
     */
    @Test
    void functionToolsAreStrictUnlessTheySayOtherwise() {
        OpenAiResponses.Translation t = OpenAiResponses.toChat(json("{'input': 'x', 'tools': ["
                + "{'type': 'function', 'name': 'a', 'parameters': {'type': 'object', 'properties': {'q': {'type': 'string'}}}},"
                + "{'type': 'function', 'name': 'b'},"
                + "{'type': 'function', 'name': 'c', 'parameters': {'type': 'object'}, 'strict': false},"
                + "{'type': 'function', 'name': 'd', 'parameters': {'type': 'object', 'properties': {'to': {'type': 'string', 'format': 'email'}}}},"
                + "{'type': 'function', 'name': 'e', 'parameters': {'type': 'object', 'properties': {'to': {'type': 'string', 'format': 'email'}}}, "
                + "'strict': true}]}"));
        List<Boolean> strict = t.tools().getValuesAs(JsonObject.class).stream().map(tool -> tool.getJsonObject("function").getBoolean("strict")).toList();
        assertEquals(List.of(true, true, false, false, true), strict, "absent: strict where the schema can be held; said: as said");
        assertEquals(strict, t.echo().tools().getValuesAs(JsonObject.class).stream().map(tool -> tool.getBoolean("strict")).toList());
        assertEquals("a", t.echo().tools().getJsonObject(0).getString("name"), "echoed in the flat form");
        // the prompt shows the tools as sent: the same conversation renders alike on chat completions
        assertEquals(List.of(false, false, true, false, true), t.chat().getJsonArray("tools").getValuesAs(JsonObject.class).stream()
                .map(tool -> tool.getJsonObject("function").containsKey("strict")).toList());
    }

    @Test
    void stateIsRefusedSayingToSendTheWholeConversation() {
        String m = refusal("{'input': 'x', 'previous_response_id': 'resp_123'}");
        assertTrue(m.startsWith("previous_response_id: stateless: this server does not store responses; send the whole conversation in `input`"), m);
        assertTrue(refusal("{'input': 'x', 'conversation': 'conv_1'}").contains("stateless"));
        assertTrue(refusal("{'input': [{'type': 'item_reference', 'id': 'msg_1'}]}").contains("input[0] is an item_reference"));
        // the SDKs' defaults are accepted
        chat("{'input': 'x', 'previous_response_id': null, 'store': false, 'background': false, 'truncation': 'disabled'}");
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "{'input': []}|input must be a string or a non-empty list",
        "{'instructions': 'x'}|input must be",
        "{'input': [{'role': 'tool', 'content': 'x'}]}|input[0].role must be one of",
        "{'input': [{'role': 'user', 'content': [{'type': 'input_image', 'image_url': 'u'}]}]}|input[0].content[0] is an \"input_image\" part",
        "{'input': [{'type': 'function_call', 'call_id': 'c', 'name': 'f', 'arguments': '{oops'}]}|input[0].arguments is not valid JSON",
        "{'input': [{'type': 'function_call_output', 'output': 'x'}]}|input[0].call_id must be a string",
        "{'input': [{'type': 'computer_call'}]}|input[0].type \"computer_call\" is not supported",
        "{'input': 'x', 'tools': [{'type': 'web_search'}]}|tools[0].type \"web_search\" is not supported",
        "{'input': 'x', 'tools': [{'type': 'function'}]}|tools[0].name must be a string",
        "{'input': 'x', 'tool_choice': 'sometimes'}|tool_choice must be",
        "{'input': 'x', 'text': {'format': {'type': 'json_schema', 'name': 'n'}}}|text.format.schema must be a JSON schema",
        "{'input': 'x', 'text': {'format': {'type': 'grammar'}}}|text.format.type must be",
        "{'input': 'x', 'max_output_tokens': 'many'}|max_output_tokens",
        "{'input': 'x', 'parallel_tool_calls': 'no'}|parallel_tool_calls must be",
        "{'input': 'x', 'include': ['message.output_text.logprobs']}|include: message.output_text.logprobs is not supported",
        "{'input': 'x', 'prompt': {'id': 'pmpt_1'}}|prompt: stored prompts are not supported"})
    void badInputIsA400NamingTheField(String c) {
        String[] s = c.split("\\|");
        String m = refusal(s[0]);
        assertTrue(m.contains(s[1]), m);
    }

    static final OpenAiResponses.Echo ECHO = OpenAiResponses.toChat(json("{'input': 'x', 'metadata': {'k': 'v'}}")).echo();

    static AssistantOutput.Delta delta(String reasoning, String content, AssistantOutput.ToolCall... calls) {
        return new AssistantOutput.Delta(reasoning, content, List.of(calls));
    }

    @Test
    void anAnswerIsAResponseWithReasoningAMessageAndFunctionCalls() {
        ResponsesOutput out = new ResponsesOutput("m", ECHO, false);
        assertEquals("", out.feed(delta("hmm", "")));
        out.feed(delta("", "Paris", new AssistantOutput.ToolCall("get", Map.of("city", "Paris"))));
        out.finish(FinishReason.stopToken(1), new ResponsesOutput.Usage(5, 2, 9));
        JsonObject r = out.response(FinishReason.stopToken(1), new ResponsesOutput.Usage(5, 2, 9)).json();
        assertTrue(r.getString("id").startsWith("resp_"), r.toString());
        assertEquals("response", r.getString("object"));
        assertEquals("completed", r.getString("status"));
        assertEquals("m", r.getString("model"));
        assertFalse(r.getBoolean("store"), "nothing is stored");
        assertEquals(json("{'k': 'v'}"), r.getJsonObject("metadata"));
        JsonArray o = r.getJsonArray("output");
        assertEquals(List.of("reasoning", "message", "function_call"), o.stream().map(i -> i.asJsonObject().getString("type")).toList());
        assertEquals("hmm", o.getJsonObject(0).getJsonArray("content").getJsonObject(0).getString("text"));
        JsonObject msg = o.getJsonObject(1);
        assertEquals("assistant", msg.getString("role"));
        assertEquals("completed", msg.getString("status"));
        assertEquals(json("{'type': 'output_text', 'text': 'Paris', 'annotations': [], 'logprobs': []}"), msg.getJsonArray("content").getJsonObject(0));
        JsonObject call = o.getJsonObject(2);
        assertTrue(call.getString("call_id").startsWith("call_") && call.getString("id").startsWith("fc_"), call.toString());
        assertEquals("get", call.getString("name"));
        assertEquals("{\"city\": \"Paris\"}", call.getString("arguments"));
        assertEquals(json("{'input_tokens': 5, 'input_tokens_details': {'cached_tokens': 2}, 'output_tokens': 9, "
                + "'output_tokens_details': {'reasoning_tokens': 0}, 'total_tokens': 14}"), r.getJsonObject("usage"));
    }

    @Test
    void anEmptyAnswerIsAnEmptyMessageAndTheLengthLimitIsIncomplete() {
        ResponsesOutput out = new ResponsesOutput("m", ECHO, false);
        out.finish(FinishReason.length(3), new ResponsesOutput.Usage(1, 0, 3));
        JsonObject r = out.response(FinishReason.length(3), null).json();
        assertEquals("incomplete", r.getString("status"));
        assertEquals("max_output_tokens", r.getJsonObject("incomplete_details").getString("reason"));
        assertEquals("", r.getJsonArray("output").getJsonObject(0).getJsonArray("content").getJsonObject(0).getString("text"));
        assertEquals("abort", out.response(FinishReason.abort("x"), null).json().getJsonObject("incomplete_details").getString("reason"));
    }

    /** The (event, data) pairs of a stream, each data's type the event's name and its sequence numbers 0, 1, 2, ... */
    static List<JsonObject> events(String sse) {
        List<JsonObject> out = new ArrayList<>();
        for (String block : sse.split("\n\n")) {
            if (block.isEmpty()) continue;
            String[] lines = block.split("\n");
            assertEquals(2, lines.length, block);
            JsonObject data = Json.createReader(new StringReader(lines[1].substring("data: ".length()))).readObject();
            assertEquals(lines[0].substring("event: ".length()), data.getString("type"));
            assertEquals(out.size(), data.getInt("sequence_number"));
            out.add(data);
        }
        return out;
    }

    @Test
    void aStreamAnnouncesEachItemPartAndDeltaInOrder() {
        ResponsesOutput out = new ResponsesOutput("m", ECHO, true);
        String sse = out.feed(delta("", "Hel")) + out.feed(delta("", "")) + out.feed(delta("", "lo"))
                + out.feed(delta("", "", new AssistantOutput.ToolCall("f", Map.of())))
                + out.finish(FinishReason.stopToken(1), new ResponsesOutput.Usage(2, 0, 3));
        List<JsonObject> ev = events(sse);
        assertEquals(List.of("response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                "response.output_item.done", "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed"),
                ev.stream().map(e -> e.getString("type")).toList());
        assertEquals("in_progress", ev.get(0).getJsonObject("response").getString("status"));
        JsonObject added = ev.get(2).getJsonObject("item");
        assertEquals("in_progress", added.getString("status"));
        assertEquals(0, added.getJsonArray("content").size());
        assertEquals(added.getString("id"), ev.get(4).getString("item_id"));
        assertEquals("Hel", ev.get(4).getString("delta"));
        assertEquals("Hello", ev.get(6).getString("text"));
        assertEquals(1, ev.get(9).getInt("output_index"));
        JsonObject done = ev.get(13).getJsonObject("response");
        assertEquals("completed", done.getString("status"));
        assertEquals(2, done.getJsonArray("output").size());
        assertEquals(5, done.getJsonObject("usage").getInt("total_tokens"));
    }
}
