package dev.rollout.dist;

import dev.rollout.dist.C10d.Backend;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.bytedeco.pytorch.Tensor;

/**
 * A weight-update group: the torch.distributed group that an RL trainer's rank 0 and the
 * server's ranks form so that the trainer can broadcast weights to them. It is formed exactly as
 * SGLang's {@code init_custom_process_group} forms it, so that a Python trainer (torch) and this
 * process (libtorch, through {@link C10d#join}) meet in the same store under the same keys:
 * <ul>
 *   <li>a {@code TCPStore} at {@code host:port}, hosted by rank 0 (the trainer), every other rank a
 *       client;</li>
 *   <li>under {@code PrefixStore(groupName)} (SGLang's own prefix), then torch's
 *       {@code PrefixStore(groupName + "/")} and {@code PrefixStore(device + "/")} of
 *       {@code _new_process_group_helper}: {@code cpu/} for gloo, whose first device is the CPU,
 *       and {@code cuda/} for NCCL;</li>
 *   <li>gloo on the interfaces that {@code GLOO_SOCKET_IFNAME} names, else the host's default
 *       device, as torch's Python binding chooses them (the loopback device for a loopback
 *       master: {@link C10d#glooInterfaces}).</li>
 * </ul>
 * Every wait has the group's timeout: forming the group (a master that does not answer, a world
 * size that the other ranks do not share) and every broadcast. A group whose broadcast timed out
 * is out of step with its peers for good: {@link #broken()} says so, and it must be closed and
 * formed again.
 */
public final class WeightSyncGroup implements AutoCloseable {
    private final String name;
    private final int rank, world;
    private final Backend backend;
    private final Duration timeout;
    private final Collectives group;
    private volatile String broken;
    private boolean closed;

    private WeightSyncGroup(String name, int rank, int world, Backend backend, Duration timeout, Collectives group) {
        this.name = name;
        this.rank = rank;
        this.world = world;
        this.backend = backend;
        this.timeout = timeout;
        this.group = group;
    }

    /**
     * Joins (rank &gt; 0) or hosts (rank 0) the group; returns once all {@code world} ranks have
     * met. Throws {@link GroupException} if that does not happen within {@code timeout}, or the
     * master cannot be reached, naming what was waited for.
     */
    public static WeightSyncGroup join(String host, int port, int rank, int world, String groupName, Backend backend, Duration timeout)
            throws GroupException {
        if (world < 2 || rank < 0 || rank >= world)
            throw new IllegalArgumentException("rank " + rank + " of a world of " + world + ": a weight group has at least 2 ranks");
        try {
            Collectives group = C10d.join(backend, host, port, rank, world, List.of(groupName, groupName + "/", backend.device() + "/"), timeout);
            return new WeightSyncGroup(groupName, rank, world, backend, timeout, group);
        } catch (C10d.JoinException e) {
            if (!e.storeReached())
                throw new GroupException("could not reach the group's store at " + host + ":" + port + " within " + timeout.toSeconds()
                        + " s: " + e.getMessage(), e.getCause());
            throw new GroupException("the group '" + groupName + "' (rank " + rank + " of " + world + ", " + backend.name().toLowerCase(Locale.ROOT)
                    + ") did not form within " + timeout.toSeconds() + " s: " + e.getMessage()
                    + "; every rank must join with the same master, group name and world size", e.getCause());
        }
    }

    public String name() {
        return name;
    }

    public int rank() {
        return rank;
    }

    public int world() {
        return world;
    }

    public Backend backend() {
        return backend;
    }

    public Duration timeout() {
        return timeout;
    }

    /** Why the group can no longer be used, or null while it can. */
    public String broken() {
        return broken;
    }

    /** Marks the group unusable, when a rank could not take part in a collective its peers began. */
    public void markBroken(String why) {
        broken = why;
    }

    /**
     * Rank 0's tensors into every rank's, in order: on rank 0 they are sent, elsewhere they are
     * overwritten. Every broadcast is issued before any is waited for (SGLang's receiver does the
     * same), and all must complete within the group's timeout, counted from the first.
     */
    public void broadcastFromRank0(List<Tensor> tensors) throws GroupException {
        if (broken != null) throw new GroupException("the group '" + name + "' is unusable: " + broken, null);
        long deadline = System.nanoTime() + timeout.toNanos();
        List<Collectives.Pending> works = new ArrayList<>(tensors.size());
        try {
            for (Tensor t : tensors) works.add(group.broadcast(t, 0, timeout));
            for (int i = 0; i < works.size(); i++) {
                long left = Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                if (!works.get(i).await(Duration.ofMillis(left)))
                    throw new IllegalStateException("broadcast " + (i + 1) + " of " + works.size() + " did not complete");
            }
        } catch (RuntimeException e) {
            broken = "broadcast " + works.size() + " of " + tensors.size() + " failed or timed out (" + firstLine(e)
                    + "); the group is out of step with the trainer: destroy it and form it again";
            throw new GroupException("the broadcast on group '" + name + "' did not complete within " + timeout.toSeconds() + " s: "
                    + firstLine(e) + "; rank 0 must broadcast exactly these tensors, in this order", e);
        } finally {
            works.forEach(Collectives.Pending::close);
        }
    }

    /** Frees the group; a second call does nothing. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        if (broken == null) broken = "closed";
        group.close();
    }

    private static String firstLine(Throwable e) {
        return C10d.firstLine(e);
    }

    /** What went wrong while forming or using a group, for the caller to read. */
    public static final class GroupException extends Exception {
        public GroupException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
