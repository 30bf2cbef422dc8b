package dev.rollout.engine;

import java.util.List;

/**
 * What one of weights_checker's snapshot, reset_tensors and compare did.
 *
 * @param numParameters the parameters it covered (all of the model's, less those skipped)
 * @param snapshotBytes host memory the snapshot holds after the action (0 when none is held)
 * @param differences   for compare: the parameters whose bits differ from the snapshot, in the
 *                      model's order; empty when every one is equal, and for the other actions
 */
public record WeightCheck(int numParameters, long snapshotBytes, List<Difference> differences) {
    public WeightCheck {
        differences = List.copyOf(differences);
    }

    /**
     * One parameter that differs from its snapshot.
     *
     * @param numDiffering elements whose bits differ
     * @param maxAbsErr    the largest absolute difference, in float32 (NaN where either side is NaN)
     * @param meanAbsErr   the mean absolute difference over all elements, in float32
     */
    public record Difference(String name, long numDiffering, long numel, double maxAbsErr, double meanAbsErr) {}

    public boolean equal() {
        return differences.isEmpty();
    }
}
