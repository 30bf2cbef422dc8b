package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.ParameterTable;
import dev.rollout.model.Torch;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.logging.Logger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * The weights of the served model between steps: checking and applying updates, the version
 * label, the record of recent updates, the host copy kept across a release, read-back and
 * checksums. Engine thread only, like the {@link LlmEngine} it serves.
 */
final class WeightControl {
    private static final Logger LOG = Logger.getLogger(WeightControl.class.getName());
    private static final int HISTORY = 32;

    private final LlmEngine engine;
    private final CausalLm model;
    private final boolean hostBackup;
    /** Parameters not pushed since the weights were resumed without a host copy; the engine holds until none is left. */
    private final Set<String> unpushed = new HashSet<>();
    private final ArrayDeque<UpdateRecord> history = new ArrayDeque<>();
    /** {@link #history} as published after every step: copied when it changes, not at every read. */
    private List<UpdateRecord> historySnapshot = List.of();
    /**
     * Host copies by name, kept from the first release on and reused (allocating gigabytes of
     * pinned memory at every release would cost more than the copy). Null until then.
     */
    private Map<String, Tensor> backup;
    private long backupBytes;
    private boolean backupHeld;

    WeightControl(LlmEngine engine, boolean hostBackup) {
        this.engine = engine;
        this.model = engine.model();
        this.hostBackup = hostBackup;
    }

    /** Why {@code update} cannot be applied (unknown names, wrong shapes, released weights), or null. */
    String check(WeightUpdate update) {
        if (model.weightsReleased()) return "the weights are released; resume them (resume_memory_occupation) before pushing";
        if (update.tensors().isEmpty()) return "the update holds no tensors";
        return update.mismatches((name, shape) -> skipped(name) ? null : model.parameters().mismatch(name, shape));
    }

    /**
     * Names a push may carry that are not parameters here, skipped as SGLang's loaders skip them:
     * the head of a tied model (a trainer's full {@code state_dict()} holds it; it is the
     * embedding) and rotary buffers. Anything else unknown is refused.
     */
    private boolean skipped(String name) {
        return (name.equals("lm_head.weight") && model.config().tieWordEmbeddings()) || ParameterTable.ignorable(name);
    }

    /**
     * Copies the update into the model, then serves its version. Every tensor is checked before
     * any is copied, so a refused update leaves the weights as they were. The prefix cache is
     * re-keyed: KV computed under the old weights is never matched again.
     */
    UpdateRecord apply(WeightUpdate update) {
        String problem = check(update);
        if (problem != null) throw new IllegalArgumentException(problem);
        long t0 = System.nanoTime();
        ParameterTable table = model.parameters();
        try (PointerScope scope = new PointerScope()) {  // copy_ hands back a handle per call
            for (Map.Entry<String, Tensor> e : update.tensors().entrySet())
                if (!skipped(e.getKey())) table.get(e.getKey()).copy_(e.getValue());
        }
        if (update.version() != null) engine.setWeightVersion(update.version());
        else engine.resetPrefixCache();
        unpushed.removeAll(update.tensors().keySet());
        UpdateRecord r = new UpdateRecord(engine.weightVersion(), update.transport(), update.tensors().size(), update.bytes(),
                (System.nanoTime() - t0) / 1e9, System.currentTimeMillis());
        if (history.size() == HISTORY) history.removeFirst();
        history.addLast(r);
        historySnapshot = List.copyOf(history);
        LOG.info(() -> String.format("weights %s applied: %d tensors, %.1f MB over %s in %.1f ms", r.version(), r.numTensors(),
                r.bytes() / 1e6, r.transport(), r.seconds() * 1e3));
        return r;
    }

    /** The most recent applied updates, oldest first. */
    List<UpdateRecord> history() {
        return historySnapshot;
    }

    int numUnpushed() {
        return unpushed.size();
    }

    /** Bytes of weights held in host memory for a resume, 0 when none is held. */
    long heldBackupBytes() {
        return backupHeld ? backupBytes : 0;
    }

    /**
     * Frees the weights' device memory; with the host backup on, copies them to host memory
     * first. Returns the bytes copied (0 without a backup).
     */
    long releaseAndBackUp() {
        long copied = 0;
        if (hostBackup) {
            ParameterTable table = model.parameters();
            if (backup == null) {  // first release: allocate, outside any scope, since the copies are kept
                Map<String, Tensor> copies = new LinkedHashMap<>();
                try {
                    for (String name : table.names()) copies.put(name, Torch.hostCopy(table.get(name)));
                } catch (RuntimeException e) {  // pinned host memory ran out: free what was made, keep the weights
                    copies.values().forEach(Tensor::close);
                    throw new IllegalStateException("could not copy the weights to host memory: " + e.getMessage(), e);
                }
                backup = copies;
            } else {
                try (PointerScope scope = new PointerScope()) {  // copy_ hands back a handle per call
                    for (String name : table.names()) backup.get(name).copy_(table.get(name));
                }
            }
            for (Tensor t : backup.values()) copied += t.nbytes();
            backupBytes = copied;
            backupHeld = true;
        }
        model.releaseWeights();
        return copied;
    }

    /**
     * Allocates the weights again and fills them from the host copy when one is held; otherwise
     * every parameter must be pushed before the engine steps again. Returns the bytes restored.
     */
    long reallocateAndRestore() {
        model.reallocateWeights();
        if (!backupHeld) {
            unpushed.addAll(model.parameters().names());
            return 0;
        }
        long restored = 0;
        ParameterTable table = model.parameters();
        try (PointerScope scope = new PointerScope()) {
            for (String name : table.names()) {
                Tensor host = backup.get(name);
                table.get(name).copy_(host);
                restored += host.nbytes();
            }
        }
        backupHeld = false;
        unpushed.clear();
        return restored;
    }

    /**
     * The tensors behind the parameter names now: the model's own, or while released, the host
     * copy that a resume will restore. Throws when the weights are released without one.
     */
    private Map<String, Tensor> readable() {
        if (!model.weightsReleased()) {
            Map<String, Tensor> live = new LinkedHashMap<>();
            ParameterTable table = model.parameters();
            for (String name : table.names()) live.put(name, table.get(name));
            return live;
        }
        if (backupHeld) return backup;
        throw new IllegalStateException("the weights are released and no host copy was kept (rollout.weights-host-backup); "
                + "resume and push them first");
    }

    /** The first {@code rows} rows of a parameter (slices along dimension 0), as float32. */
    ParameterValues read(String name, int rows) {
        Tensor t = readable().get(name);
        if (t == null) throw new IllegalArgumentException("unknown parameter " + name);
        try (PointerScope scope = new PointerScope()) {
            List<Long> shape = new ArrayList<>();
            for (int i = 0; i < t.dim(); i++) shape.add(t.size(i));
            Tensor head = t.dim() == 0 ? t.reshape(-1) : t.narrow(0, 0, Math.min(rows, t.size(0)));
            return new ParameterValues(name, shape, Torch.toFloats(head));
        }
    }

    /** SHA-256 of every parameter, from the model or, while released, from the host copy (the same bytes). */
    WeightChecksums checksums() {
        Map<String, String> sums = new TreeMap<>();
        try (PointerScope scope = new PointerScope()) {
            readable().forEach((name, t) -> sums.put(name, Torch.sha256(t)));
        }
        return new WeightChecksums(engine.weightVersion(), model.dtype().name(), sums, ParameterTable.combinedChecksum(sums));
    }
}
