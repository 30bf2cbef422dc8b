package dev.rollout.trainer;

import dev.rollout.dist.C10d;
import java.time.Duration;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.Backend;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;

/**
 * The processes of one tensor-parallel trainer as a torch.distributed group: libtorch's own
 * {@code TCPStore} for the rendezvous (rank 0 hosts it) and its gloo process group for the
 * collectives, from the PyTorch presets, as {@code init_process_group("gloo")} would set up in
 * Python. Every collective has the group's timeout.
 */
public final class TrainerGroup implements AutoCloseable {
    private final int rank, world;
    private final TCPStore store;
    private final Backend group;
    private final Duration timeout;

    private TrainerGroup(int rank, int world, TCPStore store, Backend group, Duration timeout) {
        this.rank = rank;
        this.world = world;
        this.store = store;
        this.group = group;
        this.timeout = timeout;
    }

    /**
     * Joins the group: rank 0 listens on {@code host:port}, the others connect to it; returns
     * once all {@code world} processes have met, or fails after {@code timeout}.
     */
    public static TrainerGroup join(String host, int port, int rank, int world, Duration timeout) {
        if (world < 1 || rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " of " + world);
        TCPStore store = C10d.store(host, port, rank, world, timeout);
        return new TrainerGroup(rank, world, store, C10d.gloo(store, rank, world, host, timeout), timeout);
    }

    public int rank() {
        return rank;
    }

    public int world() {
        return world;
    }

    /** Every rank's {@code input} (same shape everywhere), concatenated along dim 0 into {@code output}. */
    void allGather(Tensor output, Tensor input) {
        await(group._allgather_base(output, input), "all-gather");
    }

    /** Rank 0's {@code t} in every rank's {@code t}. */
    void broadcastFromRank0(Tensor t) {
        await(group.broadcast(new TensorVector(t)), "broadcast");
    }

    private void await(org.bytedeco.pytorch.Work work, String what) {
        if (!work._wait(new Milliseconds(timeout.toMillis())))
            throw new IllegalStateException(what + " on rank " + rank + " of " + world + " did not complete in " + timeout);
    }

    @Override
    public void close() {
        group.close();
        store.close();
    }
}
