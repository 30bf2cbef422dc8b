package dev.rollout.model;

import org.bytedeco.pytorch.Tensor;

/**
 * Rank {@code rank} of {@code size}, to build that rank's shard of a model in one JVM (its layout,
 * its parameters, their checksums); it joins no collective, so it runs no forward.
 */
public record ShardOnly(int rank, int size) implements TpGroup {
    @Override
    public void allReduceSum(Tensor t) {
        throw new UnsupportedOperationException("a shard built alone runs no collective");
    }

    @Override
    public Tensor allGather(Tensor t, int dim) {
        throw new UnsupportedOperationException("a shard built alone runs no collective");
    }

    @Override
    public void broadcast(Tensor t, int root) {
        throw new UnsupportedOperationException("a shard built alone runs no collective");
    }

    @Override
    public void close() {}
}
