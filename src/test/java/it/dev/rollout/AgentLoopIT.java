package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.bench.ToolModel;
import dev.rollout.client.Generation;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.Sampling;
import dev.rollout.client.agent.AgentLoop;
import dev.rollout.client.agent.ChatFormat;
import dev.rollout.client.agent.Episode;
import dev.rollout.client.agent.HttpEnvironment;
import dev.rollout.env.Arithmetic;
import dev.rollout.env.ArithmeticTasks;
import jakarta.json.JsonObject;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The agent loop (dev.rollout.client.agent) against the real server and the example environment
 * it serves under /env, with the tool-calling test model loaded: multi-turn episodes over HTTP
 * with slow and failing tool calls, token ids kept end to end, and the lock-step baseline on the
 * same episodes.
 */
@ExtendWith(RestoresServedWeights.class)
class AgentLoopIT {
    static final String VERSION = "tool-model";
    static RolloutClient client;

    @BeforeAll
    static void loadToolModel() throws Exception {
        Path model = ToolModel.materialize();
        client = RolloutClient.connect(URI.create(Http.BASE), RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY));
        client.updateWeightsFromDisk(model.toString(), VERSION);
    }

    static List<String> questions(int count, long seed) {
        JsonObject o = Http.post("/env/tasks", "{\"count\": " + count + ", \"seed\": " + seed + "}").object();
        return o.getJsonArray("tasks").getValuesAs(JsonObject.class).stream().map(t -> t.getString("question")).toList();
    }

    static AgentLoop loop(String envQuery, int retries, int concurrency) {
        HttpEnvironment env = new HttpEnvironment(URI.create(Http.BASE + "/env"), envQuery, Duration.ofSeconds(10), retries, null);
        return new AgentLoop(client, env, new AgentLoop.Options(4, Sampling.greedy(48), 1024, concurrency, Duration.ofMinutes(3)));
    }

    @Test
    void episodesCallTheCalculatorOverSlowFlakyHttpAndAnswer() throws Exception {
        List<String> questions = questions(24, 3);
        List<Episode> episodes = loop("latency_ms=20-200&failure_rate=0.2", 6, 8).run(questions);
        assertEquals(questions.size(), episodes.size());
        int right = 0;
        for (int i = 0; i < episodes.size(); i++) {
            Episode e = episodes.get(i);
            String q = questions.get(i);
            assertEquals(q, e.question());
            assertEquals(Episode.ANSWERED, e.finish(), () -> q + ": " + e.finish() + " " + e.error() + " " + e.finalText());
            assertEquals(2, e.turns(), q);
            assertEquals(1, e.toolCalls(), q);
            assertEquals(0, e.toolFailures(), q);
            assertEquals(List.of(VERSION, VERSION), e.weightVersions(), q);
            int n = e.responseIds().length;
            assertEquals(n, e.responseMask().length);
            assertEquals(n, e.responseLogprobs().length);
            for (int t = 0; t < n; t++) {
                if (e.responseMask()[t] == 1) assertTrue(e.responseLogprobs()[t] <= 0 && Float.isFinite(e.responseLogprobs()[t]), q);
                else assertEquals(0f, e.responseLogprobs()[t], q);
            }
            // the segments, as the trainer will see them: model (the call), environment (its answer), model (the answer)
            int[][] seg = segments(e);
            assertEquals(3, seg.length, q);
            String expression = ArithmeticTasks.expressionOf(q);
            String call = client.detokenize(seg[0], false);
            assertTrue(call.contains("<tool_call>") && call.contains("\"expression\": \"" + expression + "\""), call);
            String result = Long.toString(Arithmetic.eval(expression));
            assertArrayEquals(client.tokenize(ChatFormat.toolResponses(List.of(result))), seg[1], q);
            // the environment's reward is the episode's, and it is right about the answer
            Long answer = ArithmeticTasks.answerOf(e.finalText());
            assertEquals(answer != null && answer == Arithmetic.eval(expression) ? 1.0 : 0.0, e.reward(), e.finalText());
            right += (int) e.reward();
        }
        // the trained model gets most of them right; a random one would call no tool at all
        assertTrue(right >= episodes.size() * 3 / 4, right + " of " + episodes.size() + " right");
    }

    @Test
    void tokenIdsAreKeptEndToEndSoTheServerContinuesExactlyWhereTheEpisodeWas() {
        Episode e = loop("", 0, 1).run(questions(1, 8)).get(0);
        assertEquals(Episode.ANSWERED, e.finish(), e.error());
        // generating again from the prompt and everything up to the last model turn gives that turn:
        // the context the loop built is the one the model saw, with no re-tokenization drift
        int lastTurn = segmentStarts(e)[2];
        int[] context = concat(e.promptIds(), Arrays.copyOf(e.responseIds(), lastTurn));
        Generation again = client.generate(context, Sampling.greedy(48));
        assertArrayEquals(Arrays.copyOfRange(e.responseIds(), lastTurn, e.responseIds().length), again.outputIds());
    }

    @Test
    void lockStepRunsTheSameEpisodesTurnByTurn() {
        List<String> questions = questions(8, 21);
        List<Episode> continuous = loop("latency_ms=0-50", 0, 4).run(questions);
        List<Episode> lockStep = loop("latency_ms=0-50", 0, 4).runLockStep(questions);
        for (int i = 0; i < questions.size(); i++) {
            assertEquals(continuous.get(i).question(), lockStep.get(i).question());
            assertArrayEquals(continuous.get(i).responseIds(), lockStep.get(i).responseIds(), questions.get(i));
            assertArrayEquals(continuous.get(i).responseMask(), lockStep.get(i).responseMask(), questions.get(i));
            assertEquals(continuous.get(i).reward(), lockStep.get(i).reward(), questions.get(i));
        }
    }

    @Test
    void aToolThatNeverAnswersIsAnObservationNotACrash() {
        List<Episode> episodes = loop("failure_rate=1", 1, 4).run(questions(4, 5));
        for (Episode e : episodes) {
            assertTrue(e.toolCalls() >= 1, e.question());
            assertEquals(e.toolCalls(), e.toolFailures(), e.question());
            assertTrue(List.of(Episode.ANSWERED, Episode.TURN_LIMIT).contains(e.finish()), e.finish() + " " + e.error());
            String env = client.detokenize(segments(e)[1], false);
            assertTrue(env.contains("<tool_response>\nerror: the tool did not answer"), env);
        }
    }

    @Test
    void theEnvironmentRefusesBadCallsByName() {
        Http.Reply r = Http.post("/env/tools/calculator", "{}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("expression is required"), r.body());
        r = Http.post("/env/tools/calculator?latency_ms=soon", "{\"expression\": \"1+1\"}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("latency_ms"), r.body());
        r = Http.post("/env/tools/calculator?failure_rate=2", "{\"expression\": \"1+1\"}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("failure_rate"), r.body());
        r = Http.post("/env/reward", "{\"question\": \"Why?\", \"response\": \"42\"}");
        assertEquals(400, r.status());
        assertTrue(r.body().contains("not one of this environment's tasks"), r.body());
        // the model's bad expression is the model's mistake: an observation, not a refusal
        r = Http.post("/env/tools/calculator", "{\"expression\": \"12*(3\"}");
        assertEquals(200, r.status());
        assertTrue(r.object().getString("content").startsWith("error: missing ')'"), r.body());
    }

    /** The response split where the mask changes: model, environment, model, ... */
    static int[][] segments(Episode e) {
        int[] starts = segmentStarts(e);
        int[][] out = new int[starts.length][];
        for (int s = 0; s < starts.length; s++)
            out[s] = Arrays.copyOfRange(e.responseIds(), starts[s], s + 1 < starts.length ? starts[s + 1] : e.responseIds().length);
        return out;
    }

    static int[] segmentStarts(Episode e) {
        int[] m = e.responseMask();
        return java.util.stream.IntStream.range(0, m.length).filter(i -> i == 0 || m[i] != m[i - 1]).toArray();
    }

    static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
