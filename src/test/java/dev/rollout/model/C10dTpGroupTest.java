package dev.rollout.model;

import dev.rollout.dist.C10d;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * The collectives of a tensor-parallel group, two ranks in one process on threads of their own
 * (as WeightSyncGroupTest forms its groups); the model over groups of processes is
 * TensorParallelTest's.
 */
class C10dTpGroupTest {
    private static final Duration T = Duration.ofSeconds(30);
    private static final org.bytedeco.pytorch.Device CPU = new org.bytedeco.pytorch.Device("cpu");

    /** Runs {@code body} on ranks 0 and 1 of a fresh gloo group; returns each rank's result. */
    private static <R> List<R> onTwoRanks(Function<TpGroup, R> body) throws Exception {
        int port = TensorParallelTest.freePort();
        List<CompletableFuture<R>> ranks = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            int rank = r;
            ranks.add(CompletableFuture.supplyAsync(() -> {
                try (TpGroup g = C10dTpGroup.join("127.0.0.1", port, rank, 2, C10d.Backend.GLOO, T, T)) {
                    return body.apply(g);
                }
            }));
        }
        List<R> out = new ArrayList<>();
        for (CompletableFuture<R> f : ranks) out.add(f.get(60, TimeUnit.SECONDS));
        return out;
    }

    private static float[] floats(Tensor t) {
        return Torch.toFloats(t);
    }

    @Test
    void allReduceSumsInPlaceOnEveryRank() throws Exception {
        List<float[]> got = onTwoRanks(g -> {
            Tensor t = torch.arange(new Scalar(6)).to(ScalarType.Float).view(2, 3).mul(new Scalar(g.rank() + 1));
            g.allReduceSum(t);
            return floats(t);
        });
        float[] want = {0, 3, 6, 9, 12, 15};  // x * 1 + x * 2
        for (float[] f : got) assertArrayEquals(want, f);
    }

    @Test
    void allGatherConcatenatesInRankOrderAlongTheGivenDim() throws Exception {
        // rank r holds (2, 3) filled with 10 r + column: dim 0 stacks the blocks, dim 1 (logits' vocabulary) puts them side by side
        List<float[][]> got = onTwoRanks(g -> {
            Tensor t = torch.arange(new Scalar(3)).to(ScalarType.Float).view(1, 3).expand(2, 3).add(new Scalar(10 * g.rank()));
            Tensor rows = g.allGather(t, 0), cols = g.allGather(t, -1);
            assertArrayEquals(new long[] {4, 3}, rows.sizes().vec().get());
            assertArrayEquals(new long[] {2, 6}, cols.sizes().vec().get());
            return new float[][] {floats(rows), floats(cols)};
        });
        for (float[][] f : got) {
            assertArrayEquals(new float[] {0, 1, 2, 0, 1, 2, 10, 11, 12, 10, 11, 12}, f[0]);
            assertArrayEquals(new float[] {0, 1, 2, 10, 11, 12, 0, 1, 2, 10, 11, 12}, f[1]);
        }
    }

    @Test
    void broadcastWritesTheRootsTensorIntoEveryRanksAndStepsFollowInOrder() throws Exception {
        List<float[]> got = onTwoRanks(g -> {
            // rank 1 holds other values: they are overwritten, in place
            Tensor t = torch.arange(new Scalar(4)).to(ScalarType.Float).add(new Scalar(100 * g.rank()));
            g.broadcast(t, 0);
            // and the messages of the step channel: an idle, a step whose rows are embeddings, a stop
            StepBroadcast channel = new StepBroadcast(g, CPU);
            ForwardBatch step = new ForwardBatch(Torch.longs(new long[] {5, 6}, CPU),
                    Torch.longs(new long[] {0, 1}, CPU),
                    Torch.longs(new long[] {8, 9}, CPU), null, List.of(),
                    new ForwardBatch.Embeds(Torch.longs(new long[] {1}, CPU),
                            Torch.floats(new float[] {0.25f, -1.5f}, CPU).view(1, 2)));
            if (g.rank() == 0) {
                channel.idle();
                channel.send(step, List.of());
                channel.stop();
                return floats(t);
            }
            StepBroadcast.Received idle = channel.receive(), sent = channel.receive(), stop = channel.receive();
            assertSame(ForwardBatchWire.Kind.IDLE, idle.kind());
            assertSame(ForwardBatchWire.Kind.STEP, sent.kind());
            assertSame(ForwardBatchWire.Kind.STOP, stop.kind());
            assertArrayEquals(new long[] {1, 2, 3}, new long[] {idle.number(), sent.number(), stop.number()});
            ForwardBatch b = sent.step().batch();
            assertArrayEquals(new long[] {5, 6, 0, 1, 8, 9}, concat(Torch.toLongs(b.inputIds()), Torch.toLongs(b.positions()),
                    Torch.toLongs(b.slotMapping())));
            assertArrayEquals(new float[] {0.25f, -1.5f}, floats(b.embeds().values()));
            return floats(t);
        });
        for (float[] f : got) assertArrayEquals(new float[] {0, 1, 2, 3}, f);
    }

    private static long[] concat(long[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToLong(java.util.Arrays::stream).toArray();
    }

    @Test
    void oneRankIsNoGroupAtAll() {
        TpGroup g = C10dTpGroup.join("127.0.0.1", 1, 0, 1, C10d.Backend.NCCL, T, T);
        assertSame(TpGroup.SINGLE, g, "no store, no process group, no NCCL (absent from the CPU build)");
        Tensor t = torch.ones(new long[] {2}, Torch.options(ScalarType.Float));
        g.allReduceSum(t);
        assertArrayEquals(new float[] {1, 1}, floats(t));
        assertSame(t, g.allGather(t, 0));
    }

    @Test
    void aGroupWhoseOtherRanksNeverComeFailsWithinTheJoinTimeout() throws Exception {
        int port = TensorParallelTest.freePort();
        long t0 = System.nanoTime();
        // rank 0 hosts the store and waits for a rank 1 that never starts
        var e = assertThrows(IllegalStateException.class,
                () -> C10dTpGroup.join("127.0.0.1", port, 0, 2, C10d.Backend.GLOO, Duration.ofSeconds(2), T));
        long s = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
        assertTrue(s < 20, "gave up after " + s + " s");
        assertTrue(e.getMessage().contains("rank 0 of 2"), e.getMessage());
    }
}
