package dev.rollout.chat;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Splits an assistant's answer, as it streams in, into reasoning ({@code <think>…</think>}),
 * content, and tool calls in the Hermes style Qwen's templates teach
 * ({@code <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>}). It inverts the template:
 * the newlines the template puts around reasoning, between content and a call, and between calls
 * are not part of either. A marker cut across two feeds is held back until it can be told apart
 * from text; a call is reported once whole, and one whose JSON does not parse stays text. A call
 * ends at the first end tag outside its JSON's strings ({@link #callEnd}).
 */
public final class AssistantOutput {
    public static final String THINK_START = "<think>", THINK_END = "</think>";
    public static final String CALL_START = "<tool_call>", CALL_END = "</tool_call>";

    /** A parsed call: its function name and arguments (JSON as Java objects). */
    public record ToolCall(String name, Object arguments) {
        public String argumentsJson() {
            return PyJson.dumps(arguments);
        }
    }

    /** What one feed added: reasoning text, content text, and calls completed. */
    public record Delta(String reasoning, String content, List<ToolCall> toolCalls) {
        public boolean isEmpty() {
            return reasoning.isEmpty() && content.isEmpty() && toolCalls.isEmpty();
        }
    }

    private enum Mode { START, REASONING, CONTENT, TOOL_CALL }

    private final boolean reasoning, tools;
    private final StringBuilder buffer = new StringBuilder();
    private Mode mode;
    private boolean lineStart;   // at the start of reasoning, or of content after reasoning or a call: leading newlines are the template's
    private StringBuilder outReasoning, outContent;
    private List<ToolCall> outCalls;

    /**
     * @param reasoning whether {@code <think>} blocks are split off (the template knows them)
     * @param startsInReasoning whether the prompt already opened {@code <think>}
     * @param tools whether tool calls are parsed (the request has tools and allows calls)
     */
    public AssistantOutput(boolean reasoning, boolean startsInReasoning, boolean tools) {
        this.reasoning = reasoning;
        this.tools = tools;
        this.mode = reasoning ? (startsInReasoning ? Mode.REASONING : Mode.START) : Mode.CONTENT;
        this.lineStart = mode == Mode.REASONING;
    }

    /** Adds the next piece of generated text and returns what it completed. */
    public Delta feed(String text) {
        buffer.append(text);
        return drain(false);
    }

    /** The generation ended: everything held back is released as what it is so far. */
    public Delta finish() {
        return drain(true);
    }

    private Delta drain(boolean last) {
        outReasoning = new StringBuilder();
        outContent = new StringBuilder();
        outCalls = new ArrayList<>();
        while (step(last)) { /* each step consumes from the buffer or waits */ }
        return new Delta(outReasoning.toString(), outContent.toString(), outCalls);
    }

    /** One move of the state machine; false when it must wait for more text (or is done). */
    private boolean step(boolean last) {
        String b = buffer.toString();
        switch (mode) {
            case START -> {
                String head = PythonStrings.lstrip(b, null);
                if (head.startsWith(THINK_START)) {
                    consume(b.length() - head.length() + THINK_START.length());
                    enter(Mode.REASONING, true);
                    return true;
                }
                if (!last && THINK_START.startsWith(head)) return false;
                enter(Mode.CONTENT, false);   // no reasoning: the text is content as it came
                return true;
            }
            case REASONING -> {
                int at = b.indexOf(THINK_END);
                if (at >= 0) {
                    emit(outReasoning, PythonStrings.rstrip(b.substring(0, at), "\n"));
                    consume(at + THINK_END.length());
                    enter(Mode.CONTENT, true);
                    return true;
                }
                int safe = last ? b.length() : safePrefix(b, THINK_END);
                emit(outReasoning, last ? PythonStrings.rstrip(b, "\n") : b.substring(0, safe));
                consume(last ? b.length() : safe);
                return false;
            }
            case CONTENT -> {
                int at = tools ? b.indexOf(CALL_START) : -1;
                if (at >= 0) {
                    emit(outContent, PythonStrings.rstrip(b.substring(0, at), "\n"));
                    consume(at + CALL_START.length());
                    mode = Mode.TOOL_CALL;
                    return true;
                }
                int safe = last || !tools ? b.length() : safePrefix(b, CALL_START);
                emit(outContent, b.substring(0, safe));
                consume(safe);
                return false;
            }
            case TOOL_CALL -> {
                int at = callEnd(b);
                // a string that never closed hid every end tag: the first one, as read without strings, once nothing more can come
                if (at < 0 && last) at = b.indexOf(CALL_END);
                if (at < 0) {
                    if (!last) return false;
                    emit(outContent, CALL_START + b);   // cut off mid-call: it stays text
                    consume(b.length());
                    return false;
                }
                String body = b.substring(0, at);
                ToolCall call = parse(body);
                if (call != null) outCalls.add(call);
                else emit(outContent, CALL_START + body + CALL_END);
                consume(at + CALL_END.length());
                enter(Mode.CONTENT, true);
                return true;
            }
        }
        return false;
    }

    private void enter(Mode next, boolean dropLeadingNewlines) {
        mode = next;
        lineStart = dropLeadingNewlines;
    }

    /** Appends text to reasoning or content, dropping the template's newlines at its start. */
    private void emit(StringBuilder to, String text) {
        if (lineStart) {
            text = PythonStrings.lstrip(text, "\n");
            if (text.isEmpty()) return;
            lineStart = false;
        }
        to.append(text);
    }

    private void consume(int n) {
        buffer.delete(0, n);
    }

    /**
     * How much of {@code b} can go out now: all but a tail that may still become
     * {@code "\n"* + marker} (newlines before a marker belong to the template, not the text).
     */
    static int safePrefix(String b, String marker) {
        for (int from = Math.max(0, b.length() - marker.length() + 1); from < b.length(); from++) {
            if (marker.startsWith(b.substring(from))) {
                int start = from;
                while (start > 0 && b.charAt(start - 1) == '\n') start--;
                return start;
            }
        }
        int end = b.length();
        while (end > 0 && b.charAt(end - 1) == '\n') end--;
        return end;
    }

    /**
     * Where a call's body ends: the first end tag outside the strings of its JSON, or −1 while
     * there is none yet. An argument may hold the text {@code </tool_call>} (a constrained call's
     * strings may: the automaton keeps them inside the call), so the first end tag written is not
     * always the call's; SGLang's and vLLM's Hermes parsers cut there and lose the call. Quotes
     * count only inside a {@code {} or {@code [} of the body, so that a body that is not JSON
     * ({@code say "hi</tool_call>}) still ends at its tag.
     */
    static int callEnd(String body) {
        int depth = 0;
        boolean inString = false;
        for (int i = 0; i < body.length(); i++) {
            char c = body.charAt(i);
            if (inString) {
                if (c == '\\') i++;   // an escaped character, a quote among them
                else if (c == '"') inString = false;
            } else if (c == '"') {
                inString = depth > 0;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                depth = Math.max(0, depth - 1);
            } else if (c == '<' && body.startsWith(CALL_END, i)) {
                return i;
            }
        }
        return -1;
    }

    /** {"name": ..., "arguments": {...}} (or "parameters"), else null. */
    static ToolCall parse(String body) {
        try {
            JsonElement e = JsonParser.parseString(body.strip());
            if (!e.isJsonObject()) return null;
            JsonObject o = e.getAsJsonObject();
            if (!(o.get("name") instanceof JsonPrimitive name) || !name.isString()) return null;
            JsonElement args = o.has("arguments") ? o.get("arguments") : o.get("parameters");
            Object arguments = args == null ? new LinkedHashMap<>() : java(args);
            if (arguments instanceof String s) arguments = stringArguments(s);
            return new ToolCall(name.getAsString(), arguments);
        } catch (RuntimeException notJson) {
            return null;
        }
    }

    /** Arguments written as a JSON string of an object: the object, if it parses. */
    private static Object stringArguments(String s) {
        try {
            JsonElement e = JsonParser.parseString(s);
            return e.isJsonObject() ? java(e) : s;
        } catch (RuntimeException notJson) {
            return s;
        }
    }

    /** Gson's tree as plain Java: maps in order, lists, strings, BigInteger or Double, booleans, null. */
    public static Object java(JsonElement e) {
        if (e == null || e.isJsonNull()) return null;
        if (e.isJsonObject()) {
            Map<String, Object> m = new LinkedHashMap<>();
            for (Map.Entry<String, JsonElement> x : e.getAsJsonObject().entrySet()) m.put(x.getKey(), java(x.getValue()));
            return m;
        }
        if (e.isJsonArray()) {
            List<Object> l = new ArrayList<>();
            for (JsonElement x : e.getAsJsonArray()) l.add(java(x));
            return l;
        }
        JsonPrimitive p = e.getAsJsonPrimitive();
        if (p.isBoolean()) return p.getAsBoolean();
        if (p.isString()) return p.getAsString();
        String n = p.getAsString();
        return n.contains(".") || n.contains("e") || n.contains("E") ? (Object) p.getAsDouble() : (Object) p.getAsBigInteger();
    }
}
