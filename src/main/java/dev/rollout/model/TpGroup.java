package dev.rollout.model;

import org.bytedeco.pytorch.Tensor;

/**
 * The ranks that hold one model in tensor-parallel shards ({@link TpLayout}), and the collectives
 * its forward pass needs. Every collective either completes within the group's deadline or throws
 * an {@link IllegalStateException} naming the operation and this rank; none waits forever (a rank
 * that died, or never reached the same step, is reported, not waited on). Every rank must call the
 * same collectives in the same order with tensors of the same shape.
 *
 * <p>{@link #SINGLE} is the model on one rank: every collective is the identity and no c10d object
 * exists. {@link C10dTpGroup} is a group of processes over libtorch's c10d.
 */
public interface TpGroup extends AutoCloseable {
    /** One rank: nothing to reduce or gather. */
    TpGroup SINGLE = new SingleRank();

    int rank();

    int size();

    /** Sums {@code t} over every rank, in place; every rank ends with the sum. */
    void allReduceSum(Tensor t);

    /**
     * Every rank's {@code t} (the same shape on all), concatenated in rank order along {@code dim};
     * a new tensor ({@code t} itself at one rank).
     */
    Tensor allGather(Tensor t, int dim);

    /**
     * {@link #allGather(Tensor, int)} with its own deadline instead of the group's: for the
     * outcomes of an operation whose parts have a deadline of their own (a weight group's).
     */
    default Tensor allGather(Tensor t, int dim, java.time.Duration deadline) {
        return allGather(t, dim);
    }

    /**
     * Rank {@code root}'s {@code t}, written into {@code t} on every other rank, in place (the
     * same shape and dtype on all, contiguous): how rank 0 hands each step to the others.
     */
    void broadcast(Tensor t, int root);

    /**
     * {@link #broadcast(Tensor, int)} with its own deadline instead of the group's: for the one
     * message that waits for the slowest rank to load its shard, which takes longer than a step.
     * A group that never waits (one rank) has no deadline to change.
     */
    default void broadcast(Tensor t, int root, java.time.Duration deadline) {
        broadcast(t, root);
    }

    /** Why the group can no longer be used (a collective failed or missed its deadline), or null while it can. */
    default String broken() {
        return null;
    }

    /**
     * Marks the group unusable: this rank failed between two collectives that the others are
     * already in or about to join, so the ranks are out of step for good. A group of one rank has
     * no others to be out of step with.
     */
    default void markBroken(String why) {}

    @Override
    void close();

    /** The group of a single rank. */
    final class SingleRank implements TpGroup {
        private SingleRank() {}

        @Override
        public int rank() {
            return 0;
        }

        @Override
        public int size() {
            return 1;
        }

        @Override
        public void allReduceSum(Tensor t) {}

        @Override
        public Tensor allGather(Tensor t, int dim) {
            return t;
        }

        @Override
        public void broadcast(Tensor t, int root) {
            if (root != 0) throw new IllegalArgumentException("root " + root + " of a single rank");
        }

        @Override
        public void close() {}

        @Override
        public String toString() {
            return "a single rank";
        }
    }
}
