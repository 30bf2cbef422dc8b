package dev.rollout.trainer;

import dev.rollout.dist.C10d;
import dev.rollout.dist.Collectives;
import java.time.Duration;
import java.util.List;
import org.bytedeco.pytorch.Tensor;

/**
 * The processes of one tensor-parallel trainer as a torch.distributed group: libtorch's own
 * {@code TCPStore} for the rendezvous (rank 0 hosts it) and its gloo process group for the
 * collectives ({@link C10d#join}), as {@code init_process_group("gloo")} would set up in Python.
 * Every collective has the group's timeout.
 */
public final class TrainerGroup implements AutoCloseable {
    private final int rank, world;
    private final Collectives group;
    private final Duration timeout;

    private TrainerGroup(int rank, int world, Collectives group, Duration timeout) {
        this.rank = rank;
        this.world = world;
        this.group = group;
        this.timeout = timeout;
    }

    /**
     * Joins the group: rank 0 listens on {@code host:port}, the others connect to it; returns
     * once all {@code world} processes have met, or fails after {@code timeout}.
     */
    public static TrainerGroup join(String host, int port, int rank, int world, Duration timeout) {
        if (world < 1 || rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " of " + world);
        try {
            return new TrainerGroup(rank, world, C10d.join(C10d.Backend.GLOO, host, port, rank, world, List.of(), timeout), timeout);
        } catch (C10d.JoinException e) {
            throw new IllegalStateException("trainer rank " + rank + " of " + world + " could not form its group at " + host + ":" + port
                    + (e.storeReached() ? "" : " (the store was not reached)") + " within " + timeout.toSeconds() + " s: " + e.getMessage(),
                    e.getCause());
        }
    }

    public int rank() {
        return rank;
    }

    public int world() {
        return world;
    }

    /** Every rank's {@code input} (same shape everywhere), concatenated along dim 0 into {@code output}. */
    void allGather(Tensor output, Tensor input) {
        await(group.allGather(output, input, timeout), "all-gather");
    }

    /** Rank 0's {@code t} in every rank's {@code t}. */
    void broadcastFromRank0(Tensor t) {
        await(group.broadcast(t, 0, timeout), "broadcast");
    }

    private void await(Collectives.Pending work, String what) {
        try (work) {
            if (!work.await(timeout))
                throw new IllegalStateException(what + " on rank " + rank + " of " + world + " did not complete in " + timeout);
        }
    }

    @Override
    public void close() {
        group.close();
    }
}
