package dev.rollout.bench;

import dev.rollout.client.RolloutClient;
import dev.rollout.client.agent.ChatFormat;
import dev.rollout.client.agent.HttpEnvironment;
import dev.rollout.client.agent.ToolCall;
import jakarta.json.Json;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import java.io.BufferedWriter;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Writes the training transcripts of the tool-calling test model (tools/agent/train_tool_model.py)
 * as token ids: each an ideal episode of the example environment (a calculator call, its answer,
 * the final answer) in exactly the chat format and tokenization the agent loop uses, through a
 * running server's tokenizer and environment. One JSON line per episode: {"ids": [...], "mask":
 * [...]}, the mask 1 on the tokens the model is to write.
 *
 * <p>{@code --direct F} makes a fraction F of the episodes answer at once with a guess (a wrong
 * number near the result) instead of calling the tool: a policy that GRPO can improve.
 *
 *   AgentTranscripts SERVER_URL COUNT SEED OUT.jsonl [--direct F]
 */
public final class AgentTranscripts {
    private AgentTranscripts() {}

    public static void main(String[] args) throws IOException, InterruptedException {
        URI server = URI.create(args[0]);
        int count = Integer.parseInt(args[1]);
        long seed = Long.parseLong(args[2]);
        Path out = Path.of(args[3]);
        double direct = args.length > 5 && args[4].equals("--direct") ? Double.parseDouble(args[5]) : 0;
        RolloutClient client = RolloutClient.connect(server);
        HttpEnvironment env = new HttpEnvironment(URI.create(server + "/env"), "", Duration.ofSeconds(30), 2, null);
        List<String> questions = AgentBench.questions(server, count, seed);
        SplittableRandom rng = new SplittableRandom(seed);
        try (BufferedWriter w = Files.newBufferedWriter(out)) {
            for (String q : questions) {
                String expr = q.substring("What is ".length(), q.length() - 1);
                Line line = new Line(client.tokenizeChat(List.of(ChatFormat.user(q)), env.tools()));
                if (rng.nextDouble() < direct) {
                    long result = Long.parseLong(env.call(ToolCall.of("calculator", expression(expr))).join().content());
                    long guess = result + (rng.nextBoolean() ? 1 : -1) * rng.nextLong(1, 1 + Math.max(2, Math.abs(result) / 5));
                    line.model(client.tokenize("The answer is " + guess + ".<|im_end|>"));
                } else {
                    String call = "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"" + expr + "\"}}\n</tool_call>";
                    line.model(client.tokenize(call + "<|im_end|>"));
                    String result = env.call(ToolCall.of("calculator", expression(expr))).join().content();
                    line.env(client.tokenize(ChatFormat.toolResponses(List.of(result))));
                    line.model(client.tokenize("The answer is " + result + ".<|im_end|>"));
                }
                w.write(line.json());
                w.newLine();
            }
        }
        System.out.println("wrote " + questions.size() + " transcripts to " + out);
    }

    private static JsonObject expression(String expr) {
        return Json.createObjectBuilder().add("expression", expr).build();
    }

    /** One transcript's ids and loss mask. */
    private static final class Line {
        final JsonArrayBuilder ids = Json.createArrayBuilder(), mask = Json.createArrayBuilder();

        Line(int[] prompt) {
            add(prompt, 0);
        }

        void model(int[] t) {
            add(t, 1);
        }

        void env(int[] t) {
            add(t, 0);
        }

        private void add(int[] t, int m) {
            for (int id : t) {
                ids.add(id);
                mask.add(m);
            }
        }

        String json() {
            return Json.createObjectBuilder().add("ids", ids).add("mask", mask).build().toString();
        }
    }
}
