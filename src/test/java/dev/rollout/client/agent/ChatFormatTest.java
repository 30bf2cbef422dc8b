package dev.rollout.client.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import java.util.List;
import org.junit.jupiter.api.Test;

class ChatFormatTest {
    @Test
    void parsesHermesToolCallsInOrder() {
        List<ToolCall> calls = ChatFormat.toolCalls("""
                <tool_call>
                {"name": "calculator", "arguments": {"expression": "37*91"}}
                </tool_call>
                <tool_call>
                {"name": "search", "arguments": {}}
                </tool_call>""");
        assertEquals(2, calls.size());
        assertEquals("calculator", calls.get(0).name());
        assertEquals("37*91", calls.get(0).arguments().getString("expression"));
        assertEquals("search", calls.get(1).name());
        assertFalse(calls.get(1).isMalformed());
    }

    /** A string argument holding the end tag: the call ends where its JSON does, not at the first end tag. */
    @Test
    void anEndTagInsideAStringArgumentDoesNotEndTheCall() {
        List<ToolCall> calls = ChatFormat.toolCalls("""
                <tool_call>
                {"name": "write", "arguments": {"text": "a </tool_call> b"}}
                </tool_call>
                <tool_call>
                {"name": "f", "arguments": {}}
                </tool_call>""");
        assertEquals(2, calls.size(), calls.toString());
        assertFalse(calls.get(0).isMalformed(), calls.get(0).malformed());
        assertEquals("a </tool_call> b", calls.get(0).arguments().getString("text"));
        assertEquals("f", calls.get(1).name());
    }

    @Test
    void aFinalAnswerHasNoCalls() {
        assertTrue(ChatFormat.toolCalls("The answer is 3367.").isEmpty());
    }

    @Test
    void malformedCallsAreReportedNotDropped() {
        assertEquals("the tool call is not valid JSON", ChatFormat.toolCalls("<tool_call>{\"name\": </tool_call>").get(0).malformed());
        assertEquals("a tool call needs a \"name\"", ChatFormat.toolCalls("<tool_call>[1]</tool_call>").get(0).malformed());
        assertEquals("a tool call's \"arguments\" must be an object",
                ChatFormat.toolCalls("<tool_call>{\"name\": \"x\", \"arguments\": 3}</tool_call>").get(0).malformed());
        // cut off before the closing tag: still a (malformed) call, so the episode does not end as answered
        assertTrue(ChatFormat.toolCalls("<tool_call>\n{\"name\": \"calc").get(0).isMalformed());
    }

    @Test
    void rendersTheToolTurn() {
        // ChatTemplateTest checks this against the Qwen3 template itself
        assertEquals("{\"role\":\"user\",\"content\":\"hi\"}", ChatFormat.user("hi").toString());
        assertEquals("\n<|im_start|>user\n<tool_response>\n4\n</tool_response>\n<tool_response>\n5\n</tool_response><|im_end|>\n"
                + "<|im_start|>assistant\n", ChatFormat.toolResponses(List.of("4", "5")));
    }
}
