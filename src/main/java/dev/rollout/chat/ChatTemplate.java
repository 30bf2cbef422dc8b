package dev.rollout.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jinjava.javax.el.CompositeELResolver;

/**
 * A Hugging Face chat template ({@code chat_template} of {@code tokenizer_config.json}) rendered
 * by Jinjava set up as transformers sets up Jinja2: blocks trimmed and left-stripped,
 * {@code tojson} as Python's {@code json.dumps}, {@code raise_exception}, and Python's string
 * methods ({@link PythonStrings}); {@link Jinja2Syntax} covers two parser differences. The
 * fixtures under {@code src/test/resources/chat/} are transformers' own renderings; ADR 0012.
 * Thread-safe: each render gets its own interpreter.
 */
public final class ChatTemplate {
    private static final Jinjava JINJAVA = jinjava();

    private final String original, source;

    public ChatTemplate(String source) {
        this.original = source;
        this.source = Jinja2Syntax.rewrite(source);
    }

    /** Whether the template writes {@code marker}: how a server learns it teaches {@code <think>} or {@code <tool_call>}. */
    public boolean mentions(String marker) {
        return original.contains(marker);
    }

    /**
     * Renders a conversation. {@code messages} and {@code tools} are JSON as Java objects (maps in
     * insertion order, lists, strings, numbers, booleans, null); {@code variables} holds
     * {@code add_generation_prompt}, the tokenizer's special tokens and the request's template
     * kwargs such as {@code enable_thinking}.
     *
     * @throws ChatTemplateException when the template raises or cannot render this input
     */
    public String render(List<?> messages, List<?> tools, Map<String, Object> variables) {
        Map<String, Object> bindings = new HashMap<>(variables);
        bindings.put("messages", messages);
        bindings.put("tools", tools);
        RenderResult result = JINJAVA.renderForResult(source, bindings);
        for (TemplateError e : result.getErrors())
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) throw new ChatTemplateException(message(e));
        return result.getOutput();
    }

    private static String message(TemplateError e) {
        Throwable cause = e.getException();
        while (cause != null) {
            if (cause instanceof RaisedByTemplate raised) return raised.getMessage().substring(RaisedByTemplate.PREFIX.length());
            cause = cause.getCause();
        }
        String m = e.getMessage();
        return m.startsWith(RaisedByTemplate.PREFIX) ? m.substring(RaisedByTemplate.PREFIX.length()) : "chat template failed: " + m;
    }

    /** Thrown by the template's {@code raise_exception(message)}: the request is at fault. */
    public static final class ChatTemplateException extends IllegalArgumentException {
        ChatTemplateException(String message) {
            super(message);
        }
    }

    private static final class RaisedByTemplate extends RuntimeException {
        static final String PREFIX = "raised: ";

        RaisedByTemplate(String message) {
            super(PREFIX + message);
        }
    }

    public static void raiseException(String message) {
        throw new RaisedByTemplate(message);
    }

    private static Jinjava jinjava() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonStrings());
        resolver.add(JinjavaConfig.newBuilder().build().getElResolver());
        Jinjava jinjava = new Jinjava(JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withElResolver(resolver)
                // Jinjava would otherwise render "{{ ... }}" found inside a value: a message's text
                // would run as template code (and come out unlike transformers' prompt)
                .withNestedInterpretationEnabled(false)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withParseWhitespaceControlStrictly(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withUseNaturalOperatorPrecedence(true)
                        .withKeepNullableLoopValues(true)
                        .build())
                .build());
        jinjava.getGlobalContext().registerFunction(new ELFunctionDefinition(
                "", "raise_exception", ChatTemplate.class, "raiseException", String.class));
        jinjava.getGlobalContext().registerFilter(new ToJson());
        return jinjava;
    }

    /** transformers' {@code tojson}: {@code json.dumps(x, ensure_ascii=False, indent=indent)}. */
    private static final class ToJson implements Filter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object value, JinjavaInterpreter interpreter, String... args) {
            return PyJson.dumps(value, args.length > 0 && args[0] != null ? Integer.parseInt(args[0]) : -1);
        }

        @Override
        public Object filter(Object value, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.getOrDefault("indent", args.length > 0 ? args[0] : null);
            return PyJson.dumps(value, indent instanceof Number n ? n.intValue() : -1);
        }
    }
}
