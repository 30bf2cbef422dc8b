package dev.rollout.model;

import dev.rollout.dist.C10d;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One rank of a tensor-parallel group, as its own JVM (TensorParallelTest starts several).
 *
 * <pre>
 *   TpWorker forward RANK SIZE PORT OUT_DIR NAME=DIR=DECODE...
 *       joins the group, runs {@link TpScenario} on each case's checkpoint and writes this rank's
 *       logits (float32, little-endian, every step after the other) and greedy tokens to OUT_DIR
 *   TpWorker steps RANK SIZE PORT OUT_DIR TIMEOUT_MS NAME=DIR=DECODE...
 *       as forward, but only rank 0 builds the steps: it sends each to the others over a
 *       {@link StepBroadcast} (an idle message first, a stop after each case), and the others run
 *       what they receive; every rank also writes its steps' greedy tokens
 *   TpWorker die|hang RANK SIZE PORT TIMEOUT_MS
 *       rank 0 sends an idle message, then exits without a word (die) or sends nothing for longer
 *       than the deadline (hang); the others receive it, then wait for the next message: print how
 *       that failed and how long it took
 *   TpWorker stall RANK SIZE PORT TIMEOUT_MS
 *       joins the group and issues an all-reduce that the test's own rank never joins: prints how
 *       it failed and how long that took, then what the next collective (an all-gather) said
 * </pre>
 */
public final class TpWorker {
    public static void main(String[] a) throws Exception {
        torch.set_num_threads(1);  // several ranks share the CI machine's two cores
        String mode = a[0];
        int rank = Integer.parseInt(a[1]), size = Integer.parseInt(a[2]), port = Integer.parseInt(a[3]);
        if (mode.equals("forward")) forward(rank, size, port, Path.of(a[4]), Arrays.copyOfRange(a, 5, a.length));
        else if (mode.equals("steps"))
            steps(rank, size, port, Path.of(a[4]), Duration.ofMillis(Long.parseLong(a[5])), Arrays.copyOfRange(a, 6, a.length));
        else if (mode.equals("die") || mode.equals("hang"))
            lose(mode.equals("hang"), rank, size, port, Duration.ofMillis(Long.parseLong(a[4])));
        else if (mode.equals("stall")) stall(rank, size, port, Duration.ofMillis(Long.parseLong(a[4])));
        else throw new IllegalArgumentException("mode " + mode);
    }

    private static void forward(int rank, int size, int port, Path out, String[] cases) throws IOException {
        Duration wait = Duration.ofSeconds(120);  // the ranks' JVMs start at their own pace on a busy machine
        try (TpGroup tp = C10dTpGroup.join("127.0.0.1", port, rank, size, C10d.Backend.GLOO, wait, wait)) {
            for (String spec : cases) {
                String[] p = spec.split("=");
                TpScenario.Case c = new TpScenario.Case(p[0], Path.of(p[1]), DecodeAttention.valueOf(p[2]));
                CausalLm lm = TpScenario.load(c, tp);
                TpScenario.Result r = TpScenario.run(lm, TensorParallelTest.DECODE_STEPS);
                write(out.resolve(c.name() + ".rank" + rank + ".logits"), r.logits());
                List<String> lines = new ArrayList<>();
                for (int[] t : r.tokens()) lines.add(Arrays.toString(t));
                Files.write(out.resolve(c.name() + ".rank" + rank + ".tokens"), lines);
                lm.releaseWeights();
                System.out.println("DONE " + c.name() + " rank " + rank + " of " + size + ": " + lm.layout().heads() + " heads, "
                        + lm.layout().kvHeads() + " KV heads from " + lm.layout().firstKvHead() + ", vocabulary rows "
                        + lm.layout().firstToken() + " + " + lm.layout().realTokens());
            }
        }
    }

    private static void steps(int rank, int size, int port, Path out, Duration timeout, String[] cases) throws IOException {
        Duration wait = Duration.ofSeconds(120);
        try (TpGroup tp = C10dTpGroup.join("127.0.0.1", port, rank, size, C10d.Backend.GLOO, wait, timeout)) {
            StepBroadcast channel = new StepBroadcast(tp, new org.bytedeco.pytorch.Device("cpu"));
            for (String spec : cases) {
                String[] p = spec.split("=");
                TpScenario.Case c = new TpScenario.Case(p[0], Path.of(p[1]), DecodeAttention.valueOf(p[2]));
                CausalLm lm = TpScenario.load(c, tp);
                TpScenario.Result r;
                if (rank == 0) {
                    channel.idle();   // loading took a while: the workers' deadline starts again
                    r = TpScenario.run(lm, TensorParallelTest.DECODE_STEPS, channel::send);
                    channel.stop();
                } else {
                    r = TpScenario.follow(lm, channel);
                    System.out.println("STOPPED " + c.name() + " rank " + rank + " after " + r.logits().size() + " steps");
                }
                write(out.resolve(c.name() + ".rank" + rank + ".logits"), r.logits());
                List<String> lines = new ArrayList<>();
                for (int[] t : r.stepTokens()) lines.add(Arrays.toString(t));
                Files.write(out.resolve(c.name() + ".rank" + rank + ".steps"), lines);
                lm.releaseWeights();
            }
        }
    }

    private static void lose(boolean hang, int rank, int size, int port, Duration timeout) throws InterruptedException {
        TpGroup g = C10dTpGroup.join("127.0.0.1", port, rank, size, C10d.Backend.GLOO, Duration.ofSeconds(120), timeout);
        StepBroadcast channel = new StepBroadcast(g, new org.bytedeco.pytorch.Device("cpu"));
        if (rank == 0) {
            channel.idle();
            // die: long enough for the message to leave the socket; hang: alive and connected, but silent
            Thread.sleep(hang ? timeout.toMillis() + 3000 : 500);
            Runtime.getRuntime().halt(0);   // no close, no stop: as a crash
        }
        System.out.println("RECEIVED " + channel.receive().kind());
        long t0 = System.nanoTime();
        try {
            StepBroadcast.Received m = channel.receive();
            System.out.println("COMPLETED " + m.kind());
        } catch (IllegalStateException e) {
            System.out.println("FAILED after=" + (System.nanoTime() - t0) / 1_000_000 + " message=" + e.getMessage());
        }
        System.out.flush();
        long t1 = System.nanoTime();
        g.close();
        System.out.println("CLOSED after=" + (System.nanoTime() - t1) / 1_000_000);
    }

    private static void stall(int rank, int size, int port, Duration timeout) {
        // joining may wait for the slowest JVM; the collectives get the short deadline
        try (TpGroup g = C10dTpGroup.join("127.0.0.1", port, rank, size, C10d.Backend.GLOO, Duration.ofSeconds(120), timeout)) {
            Tensor t = torch.ones(new long[] {4, 8}, Torch.options(ScalarType.Float));
            long t0 = System.nanoTime();
            try {
                g.allReduceSum(t);
                System.out.println("COMPLETED");
            } catch (IllegalStateException e) {
                System.out.println("FAILED after=" + (System.nanoTime() - t0) / 1_000_000 + " message=" + e.getMessage());
            }
            long t1 = System.nanoTime();
            try {
                g.allGather(t, 0);
                System.out.println("GATHERED");
            } catch (IllegalStateException e) {
                System.out.println("REFUSED after=" + (System.nanoTime() - t1) / 1_000_000 + " message=" + e.getMessage());
            }
            // stay connected for one more deadline: a peer still waiting then misses its own deadline
            // rather than seeing this process go
            try {
                Thread.sleep(timeout.toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void write(Path file, List<float[]> steps) throws IOException {
        int n = steps.stream().mapToInt(f -> f.length).sum();
        ByteBuffer b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (float[] f : steps) for (float x : f) b.putFloat(x);
        Files.write(file, b.array());
    }

    static float[] read(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = new float[b.remaining() / 4];
        b.asFloatBuffer().get(f);
        return f;
    }
}
