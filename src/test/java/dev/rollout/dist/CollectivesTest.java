package dev.rollout.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * Two ranks of a gloo group in one process, each on its own thread, through {@link C10d#join}:
 * the presets' c10d on the CPU build, our preset's (NativeC10d) where its library loaded (the GPU
 * build, ADR 0025), so that the same cases check whichever runs.
 */
class CollectivesTest {
    private static final Duration T = Duration.ofSeconds(30);

    /** Both ranks joined under {@code prefix}; rank 0's group first. */
    private static List<Collectives> pair(String prefix) throws Exception {
        int port = WeightSyncGroupTest.freePort();
        CompletableFuture<Collectives> zero = CompletableFuture.supplyAsync(() -> join(port, 0, prefix));
        Collectives one = join(port, 1, prefix);
        return List.of(zero.get(60, TimeUnit.SECONDS), one);
    }

    private static Collectives join(int port, int rank, String prefix) {
        try {
            return C10d.join(C10d.Backend.GLOO, "127.0.0.1", port, rank, 2, List.of(prefix, prefix + "/"), T);
        } catch (C10d.JoinException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Tensor floats(float... v) {
        return torch.tensor(v);
    }

    @Test
    void eachCollectiveGivesEveryRankTheSameAnswer() throws Exception {
        List<Collectives> g = pair("c");
        try (Collectives zero = g.get(0); Collectives one = g.get(1)) {
            // on the GPU the presets' c10d classes do not match the node's libtorch: ours must have loaded
            if (System.getProperty("rollout.test.device", "cpu").startsWith("cuda"))
                assertTrue(NativeC10d.available(), "on CUDA the gloo groups must be our preset's (ADR 0025)");
            Class<?> expected = NativeC10d.available() ? NativeCollectives.class : PresetCollectives.class;
            assertSame(expected, zero.getClass(), "the group was not made by the c10d that matches the libtorch that runs");
            Tensor[] bcast = {torch.zeros(new long[] {4}, new TensorOptions(ScalarType.Float)), floats(1, 2, 3, 4)};  // rank 1 is the root
            Tensor[] sum = {floats(1, 10), floats(2, 20)};
            Tensor[] in = {floats(5, 6), floats(7, 8)};
            Tensor[] out = {torch.zeros(new long[] {4}, new TensorOptions(ScalarType.Float)), torch.zeros(new long[] {4}, new TensorOptions(ScalarType.Float))};
            CompletableFuture<Void> rank0 = CompletableFuture.runAsync(() -> run(zero, bcast[0], sum[0], out[0], in[0]));
            run(one, bcast[1], sum[1], out[1], in[1]);
            rank0.get(60, TimeUnit.SECONDS);
            for (int r = 0; r < 2; r++) {
                assertTrue(torch.equal(bcast[r], floats(1, 2, 3, 4)), "broadcast on rank " + r);
                assertTrue(torch.equal(sum[r], floats(3, 30)), "all-reduce on rank " + r);
                assertTrue(torch.equal(out[r], floats(5, 6, 7, 8)), "all-gather on rank " + r);
            }
        }
    }

    private static void run(Collectives g, Tensor bcast, Tensor sum, Tensor out, Tensor in) {
        for (Collectives.Pending p : new Collectives.Pending[] {g.broadcast(bcast, 1, T), g.allReduceSum(sum, T), g.allGather(out, in, T)}) {
            try (p) {
                assertTrue(p.await(T), "a collective did not complete");
            }
        }
    }

    @Test
    void aCollectiveThePeerNeverJoinsEndsByItsDeadline() throws Exception {
        List<Collectives> g = pair("d");
        try (Collectives zero = g.get(0); Collectives quiet = g.get(1)) {
            long t0 = System.nanoTime();
            boolean done;
            try (Collectives.Pending p = zero.broadcast(floats(1), 0, Duration.ofSeconds(2))) {
                done = p.await(Duration.ofSeconds(2));
            } catch (RuntimeException e) {  // gloo's "timed out" comes as an exception
                done = false;
            }
            long s = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
            assertFalse(done, "a broadcast completed without its peer");
            assertTrue(s < 20, "gave up after " + s + " s");
        }
    }

    @Test
    void aClosedGroupRefusesCollectivesInsteadOfReachingFreedMemory() throws Exception {
        List<Collectives> g = pair("e");
        g.get(1).close();
        Collectives zero = g.get(0);
        zero.close();
        zero.close();  // a second close does nothing
        var e = assertThrows(IllegalStateException.class, () -> zero.broadcast(floats(1), 0, T));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> zero.allReduceSum(floats(1), T));
        assertThrows(IllegalStateException.class, () -> zero.allGather(floats(0, 0), floats(1), T));
    }
}
