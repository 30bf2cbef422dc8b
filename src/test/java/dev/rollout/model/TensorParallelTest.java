package dev.rollout.model;

import dev.rollout.dist.C10d;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The sharded model against the whole one: TP=2 and TP=4 groups of real processes (gloo on the
 * CPU, one JVM per rank, as TpPushIT's trainer ranks) give every rank the logits that one rank
 * computes, within 1e-4 in float32, on every row of a chunked, batched prefill and of decode steps
 * through the KV cache, and the same greedy tokens. Qwen2 (q/k/v bias, tied embeddings), Qwen3
 * (q/k norm, four checkpoint files) and Llama 3 (its RoPE scaling) are transformers' fixtures, with
 * 2 KV heads: at TP=4 each is replicated over two ranks; so are the mixtures of experts (Qwen3-MoE
 * with a dense layer among its sparse ones, Qwen2-MoE's shared expert, Mixtral), each rank holding
 * a slice of every expert. A further model has one KV head
 * (replicated at every TP) and a prime vocabulary, 509, so that the last ranks hold padding rows.
 * Also: a rank that never joins a collective makes the others fail within the deadline. And as
 * the server runs them: only rank 0 builds the steps and broadcasts each ({@link StepBroadcast}),
 * the other ranks run what they receive until rank 0 says stop, with the same logits and tokens;
 * a rank 0 that dies ends the others within the deadline.
 */
class TensorParallelTest {
    static final int DECODE_STEPS = 4;
    private static final double TOL = 1e-4;

    @TempDir
    static Path tmp;
    static List<TpScenario.Case> cases;

    @BeforeAll
    static void checkpoints() throws IOException {
        Path odd = tmp.resolve("mqa-509");
        RandomCheckpoint.write(odd, new RandomCheckpoint.Spec(509, 64, 128, 2, 4, 1, 16, 256, List.of(1), 0.15), 7);
        Path fixtures = Path.of("src/test/resources/fixtures").toAbsolutePath();
        cases = List.of(
                new TpScenario.Case("qwen2", fixtures.resolve("qwen2"), DecodeAttention.GATHER),
                new TpScenario.Case("qwen3", fixtures.resolve("qwen3"), DecodeAttention.GATHER),
                new TpScenario.Case("llama", fixtures.resolve("llama"), DecodeAttention.PAGED_TORCH),
                new TpScenario.Case("mqa-509", odd, DecodeAttention.PAGED_TORCH),
                new TpScenario.Case("qwen3_moe", fixtures.resolve("qwen3_moe"), DecodeAttention.GATHER),
                new TpScenario.Case("qwen2_moe", fixtures.resolve("qwen2_moe"), DecodeAttention.PAGED_TORCH),
                new TpScenario.Case("mixtral", fixtures.resolve("mixtral"), DecodeAttention.GATHER));
    }

    @ParameterizedTest(name = "TP={0}")
    @ValueSource(ints = {2, 4})
    void everyRankHasTheLogitsAndTokensOfOneRank(int size) throws Exception {
        Path out = Files.createDirectories(tmp.resolve("tp" + size));
        List<String> args = new ArrayList<>(List.of("forward", "RANK", String.valueOf(size), String.valueOf(freePort()), out.toString()));
        for (TpScenario.Case c : cases) args.add(c.name() + "=" + c.dir() + "=" + c.decode());
        List<Path> logs = runRanks("tp" + size, size, args, Duration.ofSeconds(150));
        for (TpScenario.Case c : cases) {
            TpScenario.Result one = TpScenario.run(TpScenario.load(c, TpGroup.SINGLE), DECODE_STEPS);
            float[] expected = concat(one.logits());
            for (int r = 0; r < size; r++) {
                String where = c.name() + " at TP=" + size + ", rank " + r;
                float[] got = TpWorker.read(out.resolve(c.name() + ".rank" + r + ".logits"));
                assertEquals(expected.length, got.length, where + ": every step's (rows, vocab) logits\n" + Files.readString(logs.get(r)));
                double worst = 0;
                for (int i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
                assertTrue(worst <= TOL, where + ": logits differ from one rank's by up to " + worst);
                List<String> tokens = Files.readAllLines(out.resolve(c.name() + ".rank" + r + ".tokens"));
                for (int s = 0; s < one.tokens().length; s++) {
                    assertEquals(DECODE_STEPS + (s == 2 ? 2 : 1), one.tokens()[s].length, "the scenario samples every step once prefilled");
                    assertEquals(Arrays.toString(one.tokens()[s]), tokens.get(s), where + ": greedy tokens of sequence " + s);
                }
            }
        }
        // the layouts the ranks report: replicated KV heads at TP=4, and the padded vocabulary's last rows
        String last = Files.readString(logs.get(size - 1));
        assertTrue(last.contains("DONE mqa-509 rank " + (size - 1) + " of " + size + ": " + 4 / size + " heads, 1 KV heads from 0, vocabulary rows "
                + (size - 1) * ((509 + size - 1) / size) + " + " + (509 - (size - 1) * ((509 + size - 1) / size))), last);
        if (size == 4) assertTrue(last.contains("DONE llama rank 3 of 4: 1 heads, 1 KV heads from 1,"), last);
    }

    /**
     * The workers never see the scheduler: they run what rank 0 broadcasts (prefill groups, a
     * mixed step, embeddings, paged and gathered decode), the logits calls included, and stop
     * when told. Two of the cases, at TP=2: the broadcast is the same at every size.
     */
    @Test
    void onlyRankZeroBuildsTheStepsAndEveryRankStillComputesWhatOneRankDoes() throws Exception {
        int size = 2;
        Path out = Files.createDirectories(tmp.resolve("steps"));
        List<TpScenario.Case> sent = List.of(cases.get(0), cases.get(3));   // gathered decode; paged decode with a padded vocabulary
        List<String> args = new ArrayList<>(List.of("steps", "RANK", String.valueOf(size), String.valueOf(freePort()), out.toString(), "60000"));
        for (TpScenario.Case c : sent) args.add(c.name() + "=" + c.dir() + "=" + c.decode());
        List<Path> logs = runRanks("steps", size, args, Duration.ofSeconds(150));
        for (TpScenario.Case c : sent) {
            TpScenario.Result one = TpScenario.run(TpScenario.load(c, TpGroup.SINGLE), DECODE_STEPS);
            float[] expected = concat(one.logits());
            for (int r = 0; r < size; r++) {
                String where = c.name() + " over the step broadcast, rank " + r;
                float[] got = TpWorker.read(out.resolve(c.name() + ".rank" + r + ".logits"));
                assertEquals(expected.length, got.length, where + ": every step's (rows, vocab) logits\n" + Files.readString(logs.get(r)));
                double worst = 0;
                for (int i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
                assertTrue(worst <= TOL, where + ": logits differ from one rank's by up to " + worst);
                List<String> steps = Files.readAllLines(out.resolve(c.name() + ".rank" + r + ".steps"));
                assertEquals(2 + DECODE_STEPS, steps.size(), where);
                for (int s = 0; s < steps.size(); s++)
                    assertEquals(Arrays.toString(one.stepTokens().get(s)), steps.get(s), where + ": greedy tokens of step " + s);
            }
            assertTrue(Files.readString(logs.get(1)).contains("STOPPED " + c.name() + " rank 1 after " + (2 + DECODE_STEPS) + " steps"),
                    "the stop message ends the worker's loop, after every step:\n" + Files.readString(logs.get(1)));
        }
    }

    /** A rank 0 that exits, or stays connected but sends nothing, ends its worker within the deadline, naming the broadcast. */
    @ParameterizedTest(name = "rank 0 {0}s")
    @ValueSource(strings = {"die", "hang"})
    void aLostRankZeroEndsTheWorkersWithinTheDeadline(String how) throws Exception {
        long deadlineMs = 3000;
        List<Path> logs = runRanks(how, 2, List.of(how, "RANK", "2", String.valueOf(freePort()), String.valueOf(deadlineMs)),
                Duration.ofSeconds(60));
        String log = Files.readString(logs.get(1));
        assertTrue(log.contains("RECEIVED IDLE"), log);
        Matcher m = Pattern.compile("FAILED after=(\\d+) message=(.*)").matcher(log);
        assertTrue(m.find(), "the worker must fail, not wait:\n" + log);
        long after = Long.parseLong(m.group(1));
        // a dead rank 0: gloo sees the closed connection at once; a silent one: the deadline passes
        if (how.equals("hang")) assertTrue(after >= deadlineMs - 500, "the worker failed after " + after + " ms:\n" + log);
        assertTrue(after < deadlineMs + 2000, "the worker failed after " + after + " ms:\n" + log);
        String message = m.group(2);
        assertTrue(message.contains("broadcast") && message.contains("rank 1 of 2") && message.contains("step message #2 from rank 0"), message);
        assertTrue(log.contains("CLOSED"), "the worker leaves the group and ends:\n" + log);
    }

    @Test
    void aRankThatNeverJoinsTheCollectiveFailsTheOthersWithinTheDeadline() throws Exception {
        int port = freePort();
        long deadlineMs = 3000;
        List<Process> ranks = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        // ranks 0 and 1 are workers; this JVM is rank 2, joins the group and then never takes part
        for (int r = 0; r < 2; r++) {
            Path log = tmp.resolve("stall-rank" + r + ".log");
            logs.add(log);
            ranks.add(start(List.of("stall", String.valueOf(r), "3", String.valueOf(port), String.valueOf(deadlineMs)), log));
        }
        try (TpGroup silent = C10dTpGroup.join("127.0.0.1", port, 2, 3, C10d.Backend.GLOO, Duration.ofSeconds(120),
                Duration.ofMillis(deadlineMs))) {
            for (int r = 0; r < 2; r++) {
                await(ranks, logs, r, Duration.ofSeconds(60));
                String log = Files.readString(logs.get(r));
                Matcher m = Pattern.compile("FAILED after=(\\d+) message=(.*)").matcher(log);
                assertTrue(m.find(), "rank " + r + " did not fail:\n" + log);
                long after = Long.parseLong(m.group(1));
                assertTrue(after >= deadlineMs - 500 && after < deadlineMs + 10_000, "rank " + r + " failed after " + after + " ms:\n" + log);
                assertTrue(m.group(2).contains("all-reduce") && m.group(2).contains("rank " + r + " of 3") && m.group(2).contains("3000 ms"),
                        m.group(2));
                Matcher refused = Pattern.compile("REFUSED after=(\\d+) message=(.*)").matcher(log);
                assertTrue(refused.find(), "a collective after the failure must be refused:\n" + log);
                assertTrue(Long.parseLong(refused.group(1)) < 1000, "refused at once, not after another deadline:\n" + log);
                assertTrue(refused.group(2).contains("all-gather") && refused.group(2).contains("unusable"), refused.group(2));
            }
        }
    }

    private static List<Path> runRanks(String name, int size, List<String> args, Duration limit) throws Exception {
        List<Process> ranks = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (int r = 0; r < size; r++) {
            Path log = tmp.resolve(name + "-rank" + r + ".log");
            logs.add(log);
            List<String> a = new ArrayList<>(args);
            a.set(1, String.valueOf(r));
            ranks.add(start(a, log));
        }
        for (int r = 0; r < size; r++) await(ranks, logs, r, limit);
        return logs;
    }

    private static Process start(List<String> args, Path log) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx512m",
                "-XX:TieredStopAtLevel=1",   // short-lived ranks: C1 only, as the ITs' second servers (ServerProcessIT)
                "-cp", System.getProperty("java.class.path"), TpWorker.class.getName()));
        cmd.addAll(args);
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private static void await(List<Process> ranks, List<Path> logs, int r, Duration limit) throws Exception {
        Process p = ranks.get(r);
        if (!p.waitFor(limit.toSeconds(), TimeUnit.SECONDS)) {
            ranks.forEach(Process::destroyForcibly);
            fail("rank " + r + " did not finish in " + limit.toSeconds() + " s:\n" + Files.readString(logs.get(r)));
        }
        if (p.exitValue() != 0) {
            ranks.forEach(Process::destroyForcibly);
            fail("rank " + r + " failed:\n" + Files.readString(logs.get(r)));
        }
    }

    private static float[] concat(List<float[]> steps) {
        float[] all = new float[steps.stream().mapToInt(f -> f.length).sum()];
        int at = 0;
        for (float[] f : steps) {
            System.arraycopy(f, 0, all, at, f.length);
            at += f.length;
        }
        return all;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
