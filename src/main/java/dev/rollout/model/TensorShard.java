package dev.rollout.model;

import java.util.Arrays;
import org.bytedeco.pytorch.Tensor;

/**
 * Where one rank's tensor of a parameter lies in the full Hugging Face tensor: rows or columns
 * {@code [start, start + length)} along {@code dim}, or the whole tensor ({@code dim} -1, held
 * the same on every rank). Checkpoints and pushes hand over full tensors; {@link #narrow} cuts
 * the rank's part out of one, and the shards of every rank (distinct starts; replicated KV heads
 * repeat a start) put a full tensor, or its checksum, back together.
 *
 * @param fullShape the Hugging Face shape
 * @param dim       the split dimension, or -1 where every rank holds the whole tensor
 * @param start     the first index along {@code dim} that this rank holds
 * @param length    how many it holds
 * @param rank      this rank
 * @param size      the ranks of the group
 */
public record TensorShard(long[] fullShape, int dim, long start, long length, int rank, int size) {

    public TensorShard {
        fullShape = fullShape.clone();
        if (dim >= fullShape.length) throw new IllegalArgumentException("dim " + dim + " of a shape " + Arrays.toString(fullShape));
        if (dim >= 0 && (start < 0 || length < 0 || start + length > fullShape[dim]))
            throw new IllegalArgumentException("[" + start + ", " + (start + length) + ") is outside dim " + dim + " of " + Arrays.toString(fullShape));
    }

    /** The whole tensor, on each of {@code size} ranks. */
    public static TensorShard whole(long[] shape, int rank, int size) {
        return new TensorShard(shape, -1, 0, dim0(shape), rank, size);
    }

    /** {@code [start, start + length)} of dim {@code dim} of a tensor of {@code fullShape}. */
    public static TensorShard split(long[] fullShape, int dim, long start, long length, int rank, int size) {
        return new TensorShard(fullShape, dim, start, length, rank, size);
    }

    private static long dim0(long[] shape) {
        return shape.length == 0 ? 1 : shape[0];
    }

    public boolean replicated() {
        return dim < 0;
    }

    @Override
    public long[] fullShape() {
        return fullShape.clone();
    }

    /** The shape of the rank's tensor. */
    public long[] localShape() {
        long[] s = fullShape.clone();
        if (dim >= 0) s[dim] = length;
        return s;
    }

    /** The rank's part of {@code full} (a tensor of {@link #fullShape()}): a view, no copy. */
    public Tensor narrow(Tensor full) {
        return dim < 0 ? full : full.narrow(dim, start, length);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorShard s && Arrays.equals(fullShape, s.fullShape) && dim == s.dim && start == s.start
                && length == s.length && rank == s.rank && size == s.size;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(fullShape) * 31 + Long.hashCode(start) * 7 + dim;
    }

    @Override
    public String toString() {
        return replicated() ? "whole " + Arrays.toString(fullShape) + " on rank " + rank + " of " + size
                : "[" + start + ", " + (start + length) + ") of dim " + dim + " of " + Arrays.toString(fullShape) + " on rank " + rank + " of " + size;
    }
}
