package dev.rollout.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class AssistantOutputTest {
    /** Everything a parser reports for {@code text} fed in pieces of {@code piece} characters. */
    static AssistantOutput.Delta run(AssistantOutput p, String text, int piece) {
        StringBuilder reasoning = new StringBuilder(), content = new StringBuilder();
        List<AssistantOutput.ToolCall> calls = new ArrayList<>();
        for (int i = 0; i <= text.length(); i += piece) {
            AssistantOutput.Delta d = i >= text.length() ? p.finish() : p.feed(text.substring(i, Math.min(text.length(), i + piece)));
            reasoning.append(d.reasoning());
            content.append(d.content());
            calls.addAll(d.toolCalls());
            if (i >= text.length()) break;
            if (i + piece >= text.length()) {
                AssistantOutput.Delta last = p.finish();
                reasoning.append(last.reasoning());
                content.append(last.content());
                calls.addAll(last.toolCalls());
                break;
            }
        }
        return new AssistantOutput.Delta(reasoning.toString(), content.toString(), calls);
    }

    /** The same answer whether it comes whole or a character at a time. */
    static AssistantOutput.Delta both(boolean reasoning, boolean startsInReasoning, boolean tools, String text) {
        AssistantOutput.Delta whole = run(new AssistantOutput(reasoning, startsInReasoning, tools), text, Integer.MAX_VALUE);
        for (int piece : new int[] {1, 2, 3, 7}) {
            AssistantOutput.Delta streamed = run(new AssistantOutput(reasoning, startsInReasoning, tools), text, piece);
            assertEquals(whole, streamed, "fed " + piece + " at a time");
        }
        return whole;
    }

    @Test
    void reasoningThenContent() {
        AssistantOutput.Delta d = both(true, false, false, "<think>\nTwo and two.\n</think>\n\n4");
        assertEquals("Two and two.", d.reasoning());
        assertEquals("4", d.content());
    }

    @Test
    void noThinkBlockIsAllContent() {
        assertEquals(new AssistantOutput.Delta("", "\nHello </think> x", List.of()), both(true, false, false, "\nHello </think> x"));
        assertEquals(new AssistantOutput.Delta("", "<think>a</think>b", List.of()), both(false, false, false, "<think>a</think>b"));
    }

    @Test
    void aPromptThatOpenedTheThinkBlock() {
        assertEquals(new AssistantOutput.Delta("plan", "done", List.of()), both(true, true, false, "plan\n</think>\n\ndone"));
        // cut off while thinking: all of it is reasoning
        assertEquals(new AssistantOutput.Delta("still thinking", "", List.of()), both(true, true, false, "still thinking\n"));
    }

    @Test
    void toolCallsAfterContentAndReasoning() {
        String text = "<think>\nUse it.\n</think>\n\nLet me compute.\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"37*91\"}}\n"
                + "</tool_call>\n<tool_call>\n{\"name\": \"search\", \"arguments\": \"{\\\"q\\\": \\\"x\\\"}\"}\n</tool_call>";
        AssistantOutput.Delta d = both(true, false, true, text);
        assertEquals("Use it.", d.reasoning());
        assertEquals("Let me compute.", d.content());
        assertEquals(2, d.toolCalls().size());
        assertEquals("calculator", d.toolCalls().get(0).name());
        assertEquals("{\"expression\": \"37*91\"}", d.toolCalls().get(0).argumentsJson());
        // arguments the model wrote as a JSON string come back as the object they encode
        assertEquals(Map.of("q", "x"), d.toolCalls().get(1).arguments());
    }

    @Test
    void withoutToolsACallIsText() {
        String text = "<tool_call>\n{\"name\": \"f\"}\n</tool_call>";
        assertEquals(new AssistantOutput.Delta("", text, List.of()), both(false, false, false, text));
    }

    @Test
    void brokenCallsStayText() {
        assertEquals(new AssistantOutput.Delta("", "<tool_call>\n{\"name\": 3}\n</tool_call>", List.of()),
                both(false, false, true, "<tool_call>\n{\"name\": 3}\n</tool_call>"));
        assertEquals(new AssistantOutput.Delta("", "ok<tool_call>\n{\"name\": \"f\", \"argu", List.of()),
                both(false, false, true, "ok\n<tool_call>\n{\"name\": \"f\", \"argu"));
        assertNull(AssistantOutput.parse("not json"));
        assertEquals(Map.of(), AssistantOutput.parse("{\"name\": \"f\"}").arguments());
    }

    /**
     * The end tag written inside a string argument is the argument's text: a call ends at the first
     * end tag outside its JSON's strings (SGLang's and vLLM's Hermes parsers cut at the first end
     * tag, and the call then fails to parse).
     */
    @Test
    void anEndTagInsideAStringArgumentDoesNotEndTheCall() {
        String text = "Writing it.\n<tool_call>\n{\"name\": \"write\", \"arguments\": {\"text\": \"a </tool_call> b \\\" </tool_call>\\\\\", "
                + "\"n\": [1, {\"k\": \"<tool_call>\"}]}}\n</tool_call>\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
        AssistantOutput.Delta d = both(false, false, true, text);
        assertEquals("Writing it.", d.content());
        assertEquals(2, d.toolCalls().size(), d.toString());
        assertEquals("write", d.toolCalls().get(0).name());
        assertEquals("{\"text\": \"a </tool_call> b \\\" </tool_call>\\\\\", \"n\": [1, {\"k\": \"<tool_call>\"}]}",
                d.toolCalls().get(0).argumentsJson());
        assertEquals("f", d.toolCalls().get(1).name());
    }

    /** Calls that are not JSON end at the first end tag outside a string, as before; one whose string never closes, at the first end tag. */
    @Test
    void brokenCallsStillEndAtTheirEndTag() {
        assertEquals(new AssistantOutput.Delta("", "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}\n</tool_call>after", List.of()),
                both(false, false, true, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}\n</tool_call>\nafter"));
        assertEquals(new AssistantOutput.Delta("", "<tool_call>\nsay \"hi</tool_call>", List.of()),
                both(false, false, true, "<tool_call>\nsay \"hi</tool_call>"));
        AssistantOutput.Delta open = both(false, false, true,
                "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x}\n</tool_call>\nmore\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>");
        assertEquals("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x}\n</tool_call>more", open.content());
        assertEquals(List.of("g"), open.toolCalls().stream().map(AssistantOutput.ToolCall::name).toList());
    }

    @Test
    void textLikeAMarkerIsReleasedOnceItIsNot() {
        AssistantOutput p = new AssistantOutput(false, false, true);
        assertEquals("a", p.feed("a<tool").content());
        assertEquals("<tools> b", p.feed("s> b").content());
        assertEquals("\n\n", p.feed("\n\n").content() + p.finish().content());
    }
}
