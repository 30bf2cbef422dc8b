package dev.rollout.dist;

import java.util.ArrayList;
import java.util.List;

/**
 * What every tensor-parallel rank does with a weight-update group (SGLang's
 * {@code init_weights_update_group}, {@code update_weights_from_distributed},
 * {@code destroy_weights_update_group}). The trainer's group holds every server rank, at
 * {@code rank_offset + tp rank}, so each rank must join it, take part in each broadcast and leave
 * it. Rank 0, which got the HTTP call, sends the operation to the others as a GROUP message
 * between two steps ({@code StepBroadcast.sendGroupOp}); every rank then performs it and all
 * report how it went in one all-gather ({@code StepBroadcast.perform}).
 *
 * @param groupName the group, in every operation
 * @param spec      how to join it (JOIN only, else null)
 * @param timeout   the group's deadline, in milliseconds: for joining, and for each push on it
 * @param tensors   what the push announces, in the order the trainer broadcasts them (RECEIVE only, else empty)
 * @param flattened the push is one uint8 broadcast of all the announced tensors' bytes (SGLang's flattened bucket)
 */
public record WeightGroupOp(Op op, String groupName, Spec spec, long timeout, List<Announced> tensors, boolean flattened) {
    public enum Op { JOIN, RECEIVE, LEAVE }

    /** SGLang's {@code InitWeightsUpdateGroupReqInput}. */
    public record Spec(String masterAddress, int masterPort, int rankOffset, int worldSize, String groupName, String backend) {}

    /** One tensor a push announces: SGLang's {@code names[i]}, {@code dtypes[i]}, {@code shapes[i]}. */
    public record Announced(String name, String dtype, long[] shape) {}

    /**
     * How an operation went on every rank.
     *
     * @param value    what this rank's part gave (null if it failed)
     * @param problems each rank's problem, in rank order, null where it had none
     */
    public record Outcome<T>(T value, List<String> problems) {
        /** "tensor-parallel rank i: ..." for each rank that had a problem, or null when none had. */
        public String summary() {
            List<String> out = new ArrayList<>();
            for (int r = 0; r < problems.size(); r++)
                if (problems.get(r) != null) out.add("tensor-parallel rank " + r + ": " + problems.get(r));
            return out.isEmpty() ? null : String.join("; ", out);
        }
    }

    /**
     * What one rank's part of an operation gave: its value, or its problem. Every failure is a
     * problem, errors too (out of memory), since the other ranks wait for this rank's report.
     */
    public record Part<T>(T value, String problem) {
        public static <T> Part<T> of(java.util.concurrent.Callable<T> part) {
            try {
                return new Part<>(part.call(), null);
            } catch (Throwable e) {
                return new Part<>(null, e.getMessage() == null ? e.toString() : e.getMessage());
            }
        }
    }

    public WeightGroupOp {
        tensors = List.copyOf(tensors);
        if ((op == Op.JOIN) != (spec != null)) throw new IllegalArgumentException("a JOIN, and only a JOIN, names how to join");
    }

    public static WeightGroupOp join(Spec spec, long timeoutMillis) {
        return new WeightGroupOp(Op.JOIN, spec.groupName(), spec, timeoutMillis, List.of(), false);
    }

    public static WeightGroupOp receive(String groupName, List<Announced> tensors, boolean flattened, long timeoutMillis) {
        return new WeightGroupOp(Op.RECEIVE, groupName, null, timeoutMillis, tensors, flattened);
    }

    public static WeightGroupOp leave(String groupName, long timeoutMillis) {
        return new WeightGroupOp(Op.LEAVE, groupName, null, timeoutMillis, List.of(), false);
    }
}
