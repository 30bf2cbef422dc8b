package dev.rollout.bench;

import dev.rollout.chat.ChatTemplate;
import dev.rollout.chat.ChatTemplates;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What rendering a chat template costs a request: the Qwen3 template the war carries, a
 * conversation of eight user/assistant exchanges with reasoning plus a question, and one tool;
 * rounds of 2,000 renders, each round's mean printed (the first ones warm the JIT).
 *
 *   ChatTemplateBench [TOKENIZER_DIR] [ROUNDS]    (default target/classes/dev/rollout/tokenizer/qwen3, 5)
 */
public final class ChatTemplateBench {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "target/classes/dev/rollout/tokenizer/qwen3");
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        ChatTemplates templates = ChatTemplates.load(dir);
        Map<String, Object> tool = Map.of("type", "function", "function", Map.of("name", "calculator",
                "description", "Evaluate an integer arithmetic expression.", "parameters", Map.of("type", "object")));
        List<Object> messages = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            messages.add(Map.of("role", "user", "content", "What is 37*91? (" + i + ")"));
            messages.add(Map.of("role", "assistant", "content", "<think>\nMultiply.\n</think>\n\nIt is 3367."));
        }
        messages.add(Map.of("role", "user", "content", "And 12*12?"));
        Map<String, Object> variables = new HashMap<>(templates.specialTokens());
        variables.put("add_generation_prompt", true);
        ChatTemplate template = templates.select(true);
        int n = 2000;
        for (int r = 0; r < rounds; r++) {
            long t0 = System.nanoTime();
            long chars = 0;
            for (int i = 0; i < n; i++) chars += template.render(messages, List.of(tool), variables).length();
            System.out.printf("RESULT {\"what\": \"chat-template\", \"round\": %d, \"messages\": %d, \"ms_per_render\": %.3f, \"chars\": %d}%n",
                    r, messages.size(), (System.nanoTime() - t0) / 1e6 / n, chars / n);
        }
    }
}
