package dev.rollout.engine;

import dev.rollout.model.ParameterTable;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * SGLang's WeightChecker actions other than checksum, as slime's --check-weight-update-equal
 * uses them: {@code snapshot} (a host copy of every parameter), {@code reset_tensors} (noise in
 * every parameter, so that a push that misses one cannot pass), then the trainer's push, then
 * {@code compare} (every parameter against the snapshot, bit for bit).
 *
 * <p>Unlike SGLang, reset_tensors also marks every parameter as unpushed: the engine holds, and
 * /generate answers 503, until each one has been pushed or loaded again. SGLang keeps serving
 * the noise; here a missed push cannot go unnoticed even when no compare follows. Engine thread only.
 */
final class WeightChecker {
    private static final Logger LOG = Logger.getLogger(WeightChecker.class.getName());

    private final LlmEngine engine;
    private final WeightControl weights;
    /** Host copies by name, in the model's order; null until the first snapshot, then kept (as SGLang keeps its). */
    private Map<String, Tensor> snapshot;
    private long snapshotBytes;

    WeightChecker(LlmEngine engine, WeightControl weights) {
        this.engine = engine;
        this.weights = weights;
    }

    /**
     * Copies every parameter to host memory (pageable: it is read once, by compare), replacing an
     * earlier snapshot. While the weights are released the copy is taken from their host backup.
     */
    WeightCheck snapshot() {
        if (weights.numUnpushed() > 0)
            throw new IllegalStateException(weights.numUnpushed() + " parameters are not pushed yet (their values are zeros or noise); "
                    + "a snapshot of them could not verify anything: push or load the weights first");
        Map<String, Tensor> source = weights.readable();
        if (snapshot == null) {
            Map<String, Tensor> copies = new LinkedHashMap<>();
            try {
                for (String name : source.keySet())
                    try (PointerScope scope = new PointerScope()) {   // frees a gathered whole parameter at once
                        Tensor copy = pageableCopy(weights.whole(source, name));
                        copy.retainReference();                         // kept past the scope, as the snapshot
                        copies.put(name, copy);
                    }
            } catch (RuntimeException e) {  // host memory ran out: give back what was taken
                copies.values().forEach(Tensor::close);
                throw new IllegalStateException("could not copy the weights to host memory: " + e.getMessage(), e);
            }
            snapshot = copies;
        } else {
            for (String name : source.keySet())
                try (PointerScope scope = new PointerScope()) {  // copy_ hands back a handle per call
                    snapshot.get(name).copy_(weights.whole(source, name));
                }
        }
        long bytes = 0;
        for (Tensor t : snapshot.values()) bytes += t.nbytes();
        snapshotBytes = bytes;
        long total = bytes;
        LOG.info(() -> String.format("weights_checker: snapshot of %d parameters, %.1f MB of host memory", snapshot.size(), total / 1e6));
        return new WeightCheck(snapshot.size(), snapshotBytes, List.of());
    }

    /**
     * Fills every parameter with uniform noise in [0, 1), as SGLang does, and marks all of them
     * unpushed; those whose name contains one of {@code skip} are left alone, as compare leaves
     * them (SGLang's skip_tensor_list: a trainer that never pushes them must not find them noise).
     * Refused while requests run (they would generate from noise) and while the weights are
     * released (there is nothing on the device to fill).
     */
    WeightCheck resetTensors(List<String> skip) {
        if (engine.model().weightsReleased())
            throw new IllegalStateException("the weights are released; resume them (resume_memory_occupation) before reset_tensors");
        if (!engine.idleForMemoryWork())
            throw new IllegalStateException("cannot reset the weights while " + engine.numRunning() + " requests run and "
                    + engine.stats().numWaiting() + " wait; pause or abort them first");
        ParameterTable table = engine.model().parameters();
        List<String> reset = new ArrayList<>();
        for (String name : table.names()) if (!skipped(name, skip)) reset.add(name);
        for (String name : reset)
            try (PointerScope scope = new PointerScope()) {
                if (engine.tpSize() == 1) {
                    table.get(name).uniform_();
                } else {   // the whole parameter's noise, drawn here; every rank takes its part
                    Tensor noise = Torch.empty(Torch.options(engine.model().dtype(), engine.model().device()), table.fullShape(name)).uniform_();
                    engine.parameterChannel().sendParameters(List.of(name), List.of(noise), engine.model().dtype(), table::copyFull);
                }
            }
        weights.distrust(reset);
        engine.resetPrefixCache();  // KV computed under the old weights must not meet the new ones
        LOG.info(() -> "weights_checker: reset_tensors filled " + reset.size()
                + " parameters with noise; the engine holds until every one is pushed again");
        return new WeightCheck(reset.size(), snapshotBytes, List.of());
    }

    /** SGLang's skip_tensor_list: a name is skipped when it contains any of the patterns. */
    private static boolean skipped(String name, List<String> skip) {
        for (String pattern : skip) if (name.contains(pattern)) return true;
        return false;
    }

    /** Every parameter but those {@code skip} names against the snapshot, bit for bit; the answer lists those that differ. */
    WeightCheck compare(List<String> skip) {
        if (snapshot == null)
            throw new IllegalArgumentException("there is no snapshot to compare with: call weights_checker with action 'snapshot' first");
        Map<String, Tensor> live = weights.readable();
        List<WeightCheck.Difference> differences = new ArrayList<>();
        Device cpu = new Device("cpu");
        int compared = 0;
        for (Map.Entry<String, Tensor> e : snapshot.entrySet()) {
            if (skipped(e.getKey(), skip)) continue;
            compared++;
            try (PointerScope scope = new PointerScope()) {
                Tensor expected = e.getValue();
                Tensor actual = weights.whole(live, e.getKey()).to(cpu, expected.scalar_type()).contiguous();
                if (expected.numel() == 0) continue;
                // bytes per element from the sizes: the enum a tensor hands back does not match in a switch
                ScalarType bits = expected.nbytes() / expected.numel() == 4 ? ScalarType.Int : ScalarType.Short;
                Tensor a = actual.view(bits), b = expected.view(bits);
                if (torch.equal(a, b)) continue;
                Tensor err = actual.to(cpu, ScalarType.Float).sub(expected.to(cpu, ScalarType.Float)).abs();
                differences.add(new WeightCheck.Difference(e.getKey(), a.ne(b).count_nonzero().item_long(), expected.numel(),
                        err.max().item_double(), err.mean().item_double()));
            }
        }
        return new WeightCheck(compared, snapshotBytes, differences);
    }

    /** Bytes the snapshot holds in host memory, 0 before the first. */
    long snapshotBytes() {
        return snapshotBytes;
    }

    private static Tensor pageableCopy(Tensor t) {
        long[] shape = new long[(int) t.dim()];
        for (int i = 0; i < shape.length; i++) shape[i] = t.size(i);
        Tensor copy = Torch.empty(Torch.options(t.scalar_type()), shape);
        copy.copy_(t);
        return copy;
    }
}
