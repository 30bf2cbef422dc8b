package dev.rollout.model;

import dev.rollout.dist.C10d.Backend;
import dev.rollout.dist.C10d;
import dev.rollout.dist.Collectives;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import org.bytedeco.pytorch.Tensor;

/**
 * A tensor-parallel group of processes over libtorch's c10d ({@link C10d#join}): a
 * {@code TCPStore} hosted by rank 0 for the rendezvous and a process group for the collectives,
 * gloo for tensors on the CPU and NCCL for CUDA. Each collective is waited for with the group's
 * deadline; one that misses it leaves the ranks out of step for good, so the group is then
 * {@link #broken()} and every later collective fails at once with the first failure's reason.
 *
 * <p>NCCL: formed as {@code WeightSyncGroup} forms its NCCL groups, but not run here (no
 * multi-GPU machine in CI). Waiting on its work with a deadline blocks the host until the kernel
 * completes, which a CUDA-graph capture cannot contain; the model therefore refuses CUDA graphs
 * above one rank until the decode step's collectives are captured without a host wait.
 */
public final class C10dTpGroup implements TpGroup {
    private final int rank, size;
    private final Backend backend;
    private final Duration timeout;   // every collective's deadline
    private final Collectives group;
    private long collectives;   // how many this rank has issued: the failing one's number is in the error
    private volatile String broken;

    private C10dTpGroup(int rank, int size, Backend backend, Duration timeout, Collectives group) {
        this.rank = rank;
        this.size = size;
        this.backend = backend;
        this.timeout = timeout;
        this.group = group;
    }

    /**
     * The group of {@code size} ranks, of which this process is {@code rank}: at one rank
     * {@link TpGroup#SINGLE}, with no c10d object; otherwise rank 0 hosts the store at
     * {@code host:port} and every rank joins it. Returns once all have met; throws an
     * IllegalStateException if they have not within {@code joinTimeout}. Two deadlines, because
     * meeting waits for the slowest process to start (seconds to minutes: loading a model),
     * while a step's collective that takes more than {@code collectiveTimeout} means a rank is lost.
     */
    public static TpGroup join(String host, int port, int rank, int size, Backend backend, Duration joinTimeout,
                               Duration collectiveTimeout) {
        if (size < 1 || rank < 0 || rank >= size) throw new IllegalArgumentException("rank " + rank + " of a tp_size of " + size);
        if (size == 1) return TpGroup.SINGLE;
        try {
            // a prefix of our own, so that the rank protocol may share the store without its keys meeting ours
            Collectives group = C10d.join(backend, host, port, rank, size, List.of("tp/"), joinTimeout);
            return new C10dTpGroup(rank, size, backend, collectiveTimeout, group);
        } catch (C10d.JoinException e) {
            if (!e.storeReached())
                throw new IllegalStateException("tensor-parallel rank " + rank + " of " + size + " could not meet the others at " + host + ":"
                        + port + " within " + joinTimeout.toSeconds() + " s: " + e.getMessage(), e.getCause());
            throw new IllegalStateException("the tensor-parallel group (rank " + rank + " of " + size + ", "
                    + backend.name().toLowerCase(Locale.ROOT) + ") did not form within " + joinTimeout.toSeconds() + " s: " + e.getMessage(),
                    e.getCause());
        }
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    public Backend backend() {
        return backend;
    }

    /** The deadline of every collective. */
    public Duration timeout() {
        return timeout;
    }

    @Override
    public void markBroken(String why) {
        if (broken == null) broken = why;
    }

    @Override
    public String broken() {
        return broken;
    }

    @Override
    public void allReduceSum(Tensor t) {
        run("all-reduce", () -> group.allReduceSum(t, timeout), timeout);
    }

    @Override
    public Tensor allGather(Tensor t, int dim) {
        return allGather(t, dim, timeout);
    }

    @Override
    public Tensor allGather(Tensor t, int dim, Duration deadline) {
        int nd = (int) t.dim();
        int d = dim < 0 ? dim + nd : dim;
        if (d < 0 || d >= nd) throw new IllegalArgumentException("dim " + dim + " of a tensor of " + nd + " dims");
        Tensor in = t.contiguous();
        long[] shape = new long[nd + 1];
        shape[0] = size;
        for (int i = 0; i < nd; i++) shape[i + 1] = in.size(i);
        long[] flat = concat(shape, 0);
        Tensor out = Torch.empty(Torch.options(in.scalar_type(), in.device()), flat);    // (size * t.size(0), ...): rank r's block r
        // c10d concatenates along dim 0; the rank's block then moves next to dim `d`
        run("all-gather", () -> group.allGather(out, in, deadline), deadline);
        if (d == 0) return out;
        return out.view(shape).movedim(0, d).reshape(concat(shape, d));
    }

    @Override
    public void broadcast(Tensor t, int root) {
        broadcast(t, root, timeout);
    }

    @Override
    public void broadcast(Tensor t, int root, Duration deadline) {
        if (root < 0 || root >= size) throw new IllegalArgumentException("root " + root + " of a group of " + size);
        // c10d sends and receives the tensor's memory as it lies: a view with gaps would be corrupted
        if (!t.is_contiguous()) throw new IllegalArgumentException("a broadcast tensor must be contiguous");
        run("broadcast", () -> group.broadcast(t, root, deadline), deadline);
    }

    /** (size, s0, s1, ...) -> the shape with dim {@code d} of t multiplied by size. */
    private static long[] concat(long[] gathered, int d) {
        long[] s = new long[gathered.length - 1];
        for (int i = 0; i < s.length; i++) s[i] = gathered[i + 1];
        s[d] *= gathered[0];
        return s;
    }

    private void run(String op, java.util.function.Supplier<Collectives.Pending> issue, Duration deadline) {
        long n = ++collectives;
        if (broken != null)
            throw new IllegalStateException(op + " #" + n + " on tensor-parallel rank " + rank + " of " + size + " refused: the group is unusable, " + broken);
        Collectives.Pending work = null;
        try {
            work = issue.get();
            // c10d's wait with a deadline throws ("Operation timed out!") or returns false when it passes
            if (!work.await(deadline)) throw new IllegalStateException("it did not complete");
        } catch (RuntimeException e) {
            String why = op + " #" + n + " on tensor-parallel rank " + rank + " of " + size + " failed or missed its deadline of "
                    + deadline.toMillis() + " ms: " + firstLine(e)
                    + " (a rank is gone, did not reach the same step, or gave a tensor of another shape)";
            broken = why;
            throw new IllegalStateException(why, e);
        } finally {
            if (work != null) work.close();
        }
    }

    /**
     * Frees the group. After a collective timed out, gloo finishes its own wait for the missing
     * peer first (the same deadline, passed with the collective), so this returns within it.
     */
    @Override
    public void close() {
        if (broken == null) broken = "closed";
        group.close();
    }

    private static String firstLine(Throwable e) {
        return C10d.firstLine(e);
    }

    @Override
    public String toString() {
        return "tensor-parallel rank " + rank + " of " + size + " (" + backend.name().toLowerCase(Locale.ROOT) + ")";
    }

    /** NCCL lives in the presets' GPU build only: on the CPU build its JNI library is absent and this class fails to load. */
}
