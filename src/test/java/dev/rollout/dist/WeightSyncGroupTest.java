package dev.rollout.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * Two ranks of a weight-update group in one process, each on its own thread: the trainer's rank
 * 0 hosts the store and broadcasts; rank 1 receives. The multi-process case, with the server as
 * rank 1, is WeightGroupsIT.
 */
class WeightSyncGroupTest {
    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Test
    void rankOneReceivesWhatRankZeroBroadcastsInEveryDtype() throws Exception {
        int port = freePort();
        Duration t = Duration.ofSeconds(30);
        CompletableFuture<WeightSyncGroup> trainer = CompletableFuture.supplyAsync(() -> {
            try {
                return WeightSyncGroup.join("127.0.0.1", port, 0, 2, "weight_update_group", C10d.Backend.GLOO, t);
            } catch (WeightSyncGroup.GroupException e) {
                throw new IllegalStateException(e);
            }
        });
        try (WeightSyncGroup server = WeightSyncGroup.join("127.0.0.1", port, 1, 2, "weight_update_group", C10d.Backend.GLOO, t);
             WeightSyncGroup sender = trainer.get(30, TimeUnit.SECONDS)) {
            ScalarType[] types = {ScalarType.BFloat16, ScalarType.Float, ScalarType.Half};
            List<Tensor> sent = new java.util.ArrayList<>(), got = new java.util.ArrayList<>();
            for (int i = 0; i < types.length; i++) {
                sent.add(torch.arange(new org.bytedeco.pytorch.Scalar(12)).to(types[i]).reshape(3, 4).add(new org.bytedeco.pytorch.Scalar(i)));
                got.add(torch.zeros(new long[] {3, 4}, new org.bytedeco.pytorch.TensorOptions(types[i])));
            }
            CompletableFuture<Void> send = CompletableFuture.runAsync(() -> {
                try {
                    sender.broadcastFromRank0(sent);
                } catch (WeightSyncGroup.GroupException e) {
                    throw new IllegalStateException(e);
                }
            });
            server.broadcastFromRank0(got);
            send.get(30, TimeUnit.SECONDS);
            for (int i = 0; i < types.length; i++) assertTrue(torch.equal(sent.get(i), got.get(i)), types[i] + " arrived changed");
        }
    }

    @Test
    void anUnreachableMasterFailsWithinTheTimeout() throws Exception {
        int port = freePort();  // nobody listens there
        long t0 = System.nanoTime();
        var e = assertThrows(WeightSyncGroup.GroupException.class,
                () -> WeightSyncGroup.join("127.0.0.1", port, 1, 2, "g", C10d.Backend.GLOO, Duration.ofSeconds(3)));
        long s = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
        assertTrue(s < 20, "gave up after " + s + " s");
        assertTrue(e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
    }

    @Test
    void aWorldSizeTheOtherRanksDoNotShareFailsWithinTheTimeout() throws Exception {
        int port = freePort();
        Duration t = Duration.ofSeconds(3);
        // the trainer thinks the world is 3: the server's rank 1 of 2 waits for a rank that never comes
        CompletableFuture<Throwable> trainer = CompletableFuture.supplyAsync(() -> {
            try (WeightSyncGroup g = WeightSyncGroup.join("127.0.0.1", port, 0, 3, "g", C10d.Backend.GLOO, t)) {
                return null;
            } catch (Throwable e) {
                return e;
            }
        });
        long t0 = System.nanoTime();
        var e = assertThrows(WeightSyncGroup.GroupException.class,
                () -> WeightSyncGroup.join("127.0.0.1", port, 1, 2, "g", C10d.Backend.GLOO, t));
        assertTrue(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0) < 30);
        assertTrue(e.getMessage().contains("did not form"), e.getMessage());
        assertNotNull(trainer.get(60, TimeUnit.SECONDS), "the trainer's side formed a group with a missing rank");
    }

    @Test
    void aBroadcastThatNeverComesBreaksTheGroupAfterTheTimeout() throws Exception {
        int port = freePort();
        Duration t = Duration.ofSeconds(3);
        CompletableFuture<WeightSyncGroup> trainer = CompletableFuture.supplyAsync(() -> {
            try {
                return WeightSyncGroup.join("127.0.0.1", port, 0, 2, "g", C10d.Backend.GLOO, t);
            } catch (WeightSyncGroup.GroupException e) {
                throw new IllegalStateException(e);
            }
        });
        try (WeightSyncGroup server = WeightSyncGroup.join("127.0.0.1", port, 1, 2, "g", C10d.Backend.GLOO, t);
             WeightSyncGroup quiet = trainer.get(30, TimeUnit.SECONDS)) {
            var e = assertThrows(WeightSyncGroup.GroupException.class,
                    () -> server.broadcastFromRank0(List.of(torch.zeros(new long[] {4}, new org.bytedeco.pytorch.TensorOptions(ScalarType.Float)))));
            assertTrue(e.getMessage().contains("did not complete"), e.getMessage());
            assertNotNull(server.broken());
            assertEquals(1, server.rank());
        }
    }
}
