package dev.rollout.dist;

import java.time.Duration;
import org.bytedeco.pytorch.Tensor;

/**
 * A formed c10d group's collectives, whichever libtorch build runs them ({@link C10d#join}): each
 * call issues one collective and returns it pending, for the caller to await with its deadline.
 */
public interface Collectives extends AutoCloseable {

    /** Rank {@code root}'s {@code t} into every rank's {@code t} (contiguous, same shape everywhere). */
    Pending broadcast(Tensor t, int root, Duration timeout);

    /** The sum over the ranks into every rank's {@code t}. */
    Pending allReduceSum(Tensor t, Duration timeout);

    /** Every rank's {@code in} (one shape everywhere), concatenated along dim 0 into {@code out}. */
    Pending allGather(Tensor out, Tensor in, Duration timeout);

    /** Frees the group and its store; a second call does nothing. */
    @Override
    void close();

    /** A collective in flight. */
    interface Pending extends AutoCloseable {
        /** True once it completed; false, or libtorch's RuntimeException, when {@code timeout} passed first. */
        boolean await(Duration timeout);

        @Override
        void close();
    }
}
