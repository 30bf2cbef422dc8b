package dev.rollout.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.dist.C10d;
import dev.rollout.dist.WeightGroupOp;
import dev.rollout.dist.WeightSyncGroup;
import dev.rollout.model.C10dTpGroup;
import dev.rollout.model.ForwardBatchWire;
import dev.rollout.model.StepBroadcast;
import dev.rollout.model.TpGroup;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * A weight-update group's operations across two tensor-parallel ranks, each on its own thread
 * over gloo, with a trainer on a third: rank 0 sends each operation on the step wire and runs its
 * part (as the engine thread does), rank 1 follows as a worker does, and both settle each
 * operation from the same reports. The servers' end to end is TensorParallelServerIT; this
 * checks what it cannot make happen, a part that fails on one rank only.
 */
class WeightGroupsAcrossRanksTest {
    private static final Duration T = Duration.ofSeconds(30);
    private static final Device CPU = new Device("cpu");
    private static final List<WeightGroupOp.Announced> BUCKET = List.of(
            new WeightGroupOp.Announced("a", "float32", new long[] {4, 8}), new WeightGroupOp.Announced("b", "bfloat16", new long[] {16}));

    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** Rank 0's operations go out on the step wire, as EngineLoop sends them, and its part runs here. */
    /** A trainer and every rank form the group {@code name} on a fresh port, then leave it. */
    private static void formsAndLeaves(WeightGroups groups, String name) throws Exception {
        int port = freePort();
        CompletableFuture<WeightSyncGroup> trainer = trainer(port, name, T);
        assertInstanceOf(WeightOutcome.GroupJoined.class, groups.init(new WeightGroupOp.Spec("127.0.0.1", port, 1, 3, name, "gloo"), T));
        trainer.get(30, TimeUnit.SECONDS).close();
        assertInstanceOf(WeightOutcome.GroupLeft.class, groups.destroy(name));
    }

    private static WeightGroups.Ranks sending(StepBroadcast channel) {
        return new WeightGroups.Ranks() {
            @Override
            public <T> WeightGroupOp.Outcome<T> run(WeightGroupOp op, Duration bound, Callable<T> here) {
                channel.sendGroupOp(op);
                return channel.perform(here, bound);
            }
        };
    }

    /** Rank 1: follows rank 0's messages, as a worker does, until STOP. */
    private static void follow(StepBroadcast channel, WeightGroups groups) {
        while (true) {
            StepBroadcast.Received m = channel.receive();
            if (m.kind() == ForwardBatchWire.Kind.STOP) return;
            if (m.kind() == ForwardBatchWire.Kind.GROUP) groups.follow(m.group());
        }
    }

    private static WeightGroups.Ranks followingOn(StepBroadcast channel) {
        return new WeightGroups.Ranks() {
            @Override
            public <T> WeightGroupOp.Outcome<T> run(WeightGroupOp op, Duration bound, Callable<T> here) {
                return channel.perform(here, bound);
            }
        };
    }

    /** The two ranks: runs {@code rank0} on rank 0 while rank 1 follows with at most {@code maxBytes1} per push. */
    private static void onTwoRanks(long maxBytes1, java.util.function.Consumer<WeightGroups> rank0) throws Exception {
        int port = freePort();
        CompletableFuture<Void> worker = CompletableFuture.runAsync(() -> {
            try (TpGroup g = C10dTpGroup.join("127.0.0.1", port, 1, 2, C10d.Backend.GLOO, T, T)) {
                StepBroadcast channel = new StepBroadcast(g, CPU);
                try (WeightGroups groups = new WeightGroups(new WeightGroups.Settings(T, "cpu", 2, 1, maxBytes1), followingOn(channel))) {
                    follow(channel, groups);
                }
            }
        });
        try (TpGroup g = C10dTpGroup.join("127.0.0.1", port, 0, 2, C10d.Backend.GLOO, T, T)) {
            StepBroadcast channel = new StepBroadcast(g, CPU);
            try (WeightGroups groups = new WeightGroups(new WeightGroups.Settings(T, "cpu", 2, 0, 1 << 20), sending(channel))) {
                rank0.accept(groups);
            } finally {
                channel.stop();
            }
        }
        worker.get(60, TimeUnit.SECONDS);
    }

    /** The trainer's side: rank 0 of a world of 3, hosting the store. */
    private static CompletableFuture<WeightSyncGroup> trainer(int port, String name, Duration timeout) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return WeightSyncGroup.join("127.0.0.1", port, 0, 3, name, C10d.Backend.GLOO, timeout);
            } catch (WeightSyncGroup.GroupException e) {
                throw new IllegalStateException(e);
            }
        });
    }

    private static List<Tensor> values() {
        return List.of(torch.arange(new org.bytedeco.pytorch.Scalar(32)).to(torch.ScalarType.Float).reshape(4, 8),
                torch.ones(new long[] {16}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.BFloat16)));
    }

    @Test
    void everyRankJoinsReceivesAndLeavesAndRankZeroGetsThePush() throws Exception {
        onTwoRanks(1 << 20, groups -> {
            try {
                int port = freePort();
                CompletableFuture<WeightSyncGroup> trainer = trainer(port, "g", T);
                var joined = groups.init(new WeightGroupOp.Spec("127.0.0.1", port, 1, 3, "g", "gloo"), T);
                assertInstanceOf(WeightOutcome.GroupJoined.class, joined, joined.toString());
                try (WeightSyncGroup t = trainer.get(30, TimeUnit.SECONDS)) {
                    List<Tensor> sent = values();
                    CompletableFuture<Void> send = CompletableFuture.runAsync(() -> broadcast(t, sent));
                    Map<String, Tensor> got = groups.receive("g", BUCKET, false);
                    send.get(30, TimeUnit.SECONDS);
                    assertTrue(torch.equal(sent.get(0), got.get("a")));
                    assertTrue(torch.equal(sent.get(1), got.get("b")));
                    assertInstanceOf(WeightOutcome.GroupLeft.class, groups.destroy("g"));
                }
                // every rank left it: the name forms again, with every rank
                formsAndLeaves(groups, "g");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    @Test
    void aPushThatOneRankCannotReceiveIsRefusedByRankAndLeavesTheGroupOutOfStepOnEvery() throws Exception {
        onTwoRanks(64, groups -> {   // rank 1 takes at most 64 bytes a push; the bucket is 160
            try {
                int port = freePort();
                Duration short_ = Duration.ofSeconds(3);
                CompletableFuture<WeightSyncGroup> trainer = trainer(port, "g", short_);
                assertInstanceOf(WeightOutcome.GroupJoined.class,
                        groups.init(new WeightGroupOp.Spec("127.0.0.1", port, 1, 3, "g", "gloo"), short_));
                try (WeightSyncGroup t = trainer.get(30, TimeUnit.SECONDS)) {
                    CompletableFuture<Void> send = CompletableFuture.runAsync(() -> {
                        try {
                            t.broadcastFromRank0(values());
                        } catch (WeightSyncGroup.GroupException e) {
                            // rank 1 never takes its part: the trainer's broadcast runs out too
                        }
                    });
                    var refused = assertThrows(WeightGroups.Refusal.class, () -> groups.receive("g", BUCKET, false));
                    assertTrue(refused.getMessage().contains("tensor-parallel rank 1: the update announces more than 64 bytes"),
                            refused.getMessage());
                    send.get(30, TimeUnit.SECONDS);
                }
                var again = assertThrows(WeightGroups.Refusal.class, () -> groups.receive("g", BUCKET, false));
                assertEquals(WeightOutcome.Reason.CONFLICT, again.reason, again.getMessage());
                assertTrue(again.getMessage().contains("destroy it and form it again"), again.getMessage());
                assertInstanceOf(WeightOutcome.GroupLeft.class, groups.destroy("g"));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    @Test
    void aGroupThatCannotFormIsLeftByEveryRankWithinItsDeadline() throws Exception {
        onTwoRanks(1 << 20, groups -> {
            try {
                int nobody = freePort();
                long t0 = System.nanoTime();
                var refused = groups.init(new WeightGroupOp.Spec("127.0.0.1", nobody, 1, 3, "g", "gloo"), Duration.ofSeconds(2));
                assertInstanceOf(WeightOutcome.Refused.class, refused);
                String message = ((WeightOutcome.Refused) refused).message();
                assertTrue(message.contains("tensor-parallel rank 0: ") && message.contains("tensor-parallel rank 1: "), message);
                assertTrue(System.nanoTime() - t0 < 20_000_000_000L, "within the deadline");
                assertTrue(groups.joined().isEmpty());
                // the name is free on every rank: it forms now
                formsAndLeaves(groups, "g");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    private static void broadcast(WeightSyncGroup t, List<Tensor> values) {
        try {
            t.broadcastFromRank0(values);
        } catch (WeightSyncGroup.GroupException e) {
            throw new IllegalStateException(e);
        }
    }
}
