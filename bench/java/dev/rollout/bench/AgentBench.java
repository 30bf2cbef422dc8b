package dev.rollout.bench;

import dev.rollout.client.RolloutClient;
import dev.rollout.client.Sampling;
import dev.rollout.client.agent.AgentLoop;
import dev.rollout.client.agent.Episode;
import dev.rollout.client.agent.HttpEnvironment;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.IOException;
import java.io.StringReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Issue #5's claim, measured: episodes per second of the agent loop over HTTP with continuous
 * batching, against lock-step batching (a batch per turn, then every environment awaited) on the
 * same episodes, for several environment latencies. Also the engine's busy fraction: the time its
 * steps took (rollout:step_model and rollout:step_host from /metrics) over the wall time.
 *
 * <p>Needs a server with the example environment on (rollout.example-env.enabled=true); loads the
 * tool-calling test model into it first (update_weights_from_disk, so server and benchmark share a
 * file system), so that episodes really call the tool.
 *
 *   AgentBench URL [--episodes 1024] [--concurrency 256] [--latencies 50,50-500,50-2000] [--admin-key K]
 */
public final class AgentBench {
    private AgentBench() {}

    public static void main(String[] args) throws Exception {
        URI server = URI.create(args[0]);
        int episodes = 1024, concurrency = 256;
        String latencies = "50,50-500,50-2000", adminKey = null;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--episodes" -> episodes = Integer.parseInt(args[++i]);
                case "--concurrency" -> concurrency = Integer.parseInt(args[++i]);
                case "--latencies" -> latencies = args[++i];
                case "--admin-key" -> adminKey = args[++i];
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        RolloutClient client = RolloutClient.connect(server, RolloutClient.Options.defaults().withAdminApiKey(adminKey));
        client.awaitReady(Duration.ofMinutes(5));
        client.updateWeightsFromDisk(ToolModel.materialize().toString(), "tool-model");
        List<String> questions = questions(server, episodes, 2026);
        // warm-up, not measured: the engine captures a CUDA graph for each batch size it meets first
        new AgentLoop(client, new HttpEnvironment(URI.create(server + "/env"), "", Duration.ofSeconds(30), 3, null),
                new AgentLoop.Options(4, Sampling.greedy(48), 2048, concurrency, Duration.ofMinutes(30)))
                .run(questions.subList(0, Math.min(questions.size(), 2 * concurrency)));
        for (String latency : latencies.split(",")) {
            for (String mode : List.of("continuous", "lockstep")) {
                HttpEnvironment env = new HttpEnvironment(URI.create(server + "/env"), "latency_ms=" + latency,
                        Duration.ofSeconds(30), 3, null);
                AgentLoop loop = new AgentLoop(client, env,
                        new AgentLoop.Options(4, Sampling.greedy(48), 2048, concurrency, Duration.ofMinutes(30)));
                client.flushCache();
                double[] before = steps(server);
                long t0 = System.nanoTime();
                List<Episode> out = mode.equals("continuous") ? loop.run(questions) : loop.runLockStep(questions);
                double wall = (System.nanoTime() - t0) / 1e9;
                double[] after = steps(server);
                double busy = (after[0] - before[0]) / wall, stepCount = after[1] - before[1];
                long answered = out.stream().filter(e -> e.finish().equals(Episode.ANSWERED)).count();
                double reward = out.stream().mapToDouble(Episode::reward).average().orElse(0);
                long calls = out.stream().mapToLong(Episode::toolCalls).sum(), tokens = out.stream().mapToLong(Episode::modelTokens).sum();
                System.out.printf(Locale.ROOT, "RESULT {\"what\": \"agent\", \"mode\": \"%s\", \"latency_ms\": \"%s\", \"episodes\": %d, "
                                + "\"concurrency\": %d, \"answered\": %d, \"reward_mean\": %.3f, \"tool_calls\": %d, \"model_tokens\": %d, "
                                + "\"wall_s\": %.2f, \"episodes_per_s\": %.2f, \"engine_steps\": %.0f, \"tokens_per_step\": %.1f, "
                                + "\"busy_fraction\": %.3f}%n",
                        mode, latency, out.size(), concurrency, answered, reward, calls, tokens, wall, out.size() / wall,
                        stepCount, tokens / Math.max(1, stepCount), busy);
            }
        }
    }

    /** {@code count} questions of the example environment's task stream {@code seed} (POST /env/tasks). */
    static List<String> questions(URI server, int count, long seed) throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(URI.create(server + "/env/tasks")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"count\": " + count + ", \"seed\": " + seed + "}")).build();
        String body = HttpClient.newHttpClient().send(req, HttpResponse.BodyHandlers.ofString()).body();
        try (var r = Json.createReader(new StringReader(body))) {
            List<String> out = new ArrayList<>();
            for (JsonObject t : r.readObject().getJsonArray("tasks").getValuesAs(JsonObject.class)) out.add(t.getString("question"));
            return out;
        }
    }

    private static final Pattern SUM = Pattern.compile("^rollout:step_(model|host)_seconds_(sum|count)\\{[^}]*\\} ([0-9.eE+-]+)", Pattern.MULTILINE);

    /** {busy seconds (model + host), steps} so far, from the server's Prometheus metrics. */
    private static double[] steps(URI server) throws Exception {
        String text = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(server + "/metrics")).build(),
                HttpResponse.BodyHandlers.ofString()).body();
        double busy = 0, count = 0;
        Matcher m = SUM.matcher(text);
        while (m.find()) {
            double v = Double.parseDouble(m.group(3));
            if (m.group(2).equals("sum")) busy += v;
            else if (m.group(1).equals("model")) count = v;
        }
        return new double[] {busy, count};
    }
}
