package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.ExpertNames;
import dev.rollout.model.ParameterTable;
import dev.rollout.model.TensorShard;
import dev.rollout.model.Torch;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.logging.Logger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

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
    /**
     * Parameters whose values are not to be served: not pushed since the weights were resumed
     * without a host copy, or since weights_checker's reset_tensors filled them with noise. The
     * engine holds until none is left.
     */
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
    /**
     * Updates applied while the weights are released and no host copy is held (AReaL's colocated
     * order: offload, train, update from disk, onload): host copies in the model's dtype, by name,
     * copied into the weights at resume. Empty unless released.
     */
    private final Map<String, Tensor> pending = new LinkedHashMap<>();
    /** Every parameter's shape and dtype, in the model's order: updates are checked against them while the weights are released too. */
    private final Map<String, long[]> shapes = new LinkedHashMap<>();
    private final Map<String, ScalarType> dtypes = new LinkedHashMap<>();
    /** Where this rank's part of each parameter lies: a host copy holds that part, and the table is gone while released. */
    private final Map<String, TensorShard> shards = new LinkedHashMap<>();

    WeightControl(LlmEngine engine, boolean hostBackup) {
        this.engine = engine;
        this.model = engine.model();
        this.hostBackup = hostBackup;
        ParameterTable table = model.parameters();
        for (String name : table.names()) {
            shapes.put(name, table.fullShape(name));  // what pushes carry, whatever part of it this rank holds
            shards.put(name, table.shard(name));
            dtypes.put(name, table.get(name).scalar_type());
        }
    }

    /** Why {@code update} cannot be applied (no tensors, unknown names, wrong shapes), or null. */
    String check(WeightUpdate update) {
        if (update.tensors().isEmpty()) return "the update holds no tensors";
        return update.mismatches((name, shape) -> skipped(name) ? null : mismatch(name, shape));
    }

    /** As {@link ParameterTable#mismatch}, from the recorded shapes, which stay known while the weights are released. */
    private String mismatch(String name, long[] shape) {
        long[] want = shapes.get(name);
        if (want == null) return "unknown parameter " + name;
        return Arrays.equals(want, shape) ? null : name + " has shape " + Arrays.toString(want) + ", got " + Arrays.toString(shape);
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
     * re-keyed: KV computed under the old weights is never matched again. While the weights are
     * released the update lands in host memory instead (the host backup, or copies of its own)
     * and reaches the device at resume; its version is the one served from then on.
     */
    UpdateRecord apply(WeightUpdate update) {
        String problem = check(update);
        if (problem != null) throw new IllegalArgumentException(problem);
        long t0 = System.nanoTime();
        List<String> names = new ArrayList<>();
        List<Tensor> values = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : update.tensors().entrySet())
            if (!skipped(e.getKey())) {
                names.add(e.getKey());
                values.add(e.getValue());
            }
        if (model.weightsReleased()) {
            // the other ranks keep their parts in host memory as this one does (at one rank, nothing is sent)
            if (engine.tpSize() > 1)
                try (PointerScope scope = new PointerScope()) {
                    engine.parameterChannel().sendParameters(names, values, model.dtype(), (name, full) -> {});
                }
            applyWhileReleased(update);
        } else {
            try (PointerScope scope = new PointerScope()) {  // copy_ hands back a handle per call
                // every rank copies its shard of each full value (at one rank, the whole of it)
                engine.parameterChannel().sendParameters(names, values, model.dtype(), model.parameters()::copyFull);
            }
        }
        if (update.version() != null) engine.setWeightVersion(update.version());
        else engine.resetPrefixCache();
        unpushed.removeAll(update.tensors().keySet());
        UpdateRecord r = new UpdateRecord(engine.weightVersion(), update.transport(), update.tensors().size(), update.bytes(),
                (System.nanoTime() - t0) / 1e9, System.currentTimeMillis());
        if (history.size() == HISTORY) history.removeFirst();
        history.addLast(r);
        historySnapshot = List.copyOf(history);
        String where = model.weightsReleased() ? " (to host memory: the weights are released; the resume brings them to the device)" : "";
        LOG.info(() -> String.format("weights %s applied: %d tensors, %.1f MB over %s in %.1f ms%s", r.version(), r.numTensors(),
                r.bytes() / 1e6, r.transport(), r.seconds() * 1e3, where));
        return r;
    }

    /**
     * An update while the weights are released: into the host backup when one is held (the
     * resume restores it), else into host copies of its own that the resume copies in after
     * allocating. Copies of its own are all made before any replaces an earlier one, so a
     * failure leaves what was pending. A copy into the backup that fails part way leaves the
     * update's parameters marked unpushed: the engine holds until they are pushed again, rather
     * than serve a half-written backup.
     */
    private void applyWhileReleased(WeightUpdate update) {
        if (backupHeld) {
            try (PointerScope scope = new PointerScope()) {
                for (Map.Entry<String, Tensor> e : update.tensors().entrySet())
                    if (!skipped(e.getKey())) backup.get(e.getKey()).copy_(shards.get(e.getKey()).narrow(e.getValue()));  // this rank's part
            } catch (RuntimeException e) {
                for (String name : update.tensors().keySet()) if (shapes.containsKey(name)) unpushed.add(name);
                throw new IllegalStateException("could not copy the update into the host backup; its parameters must be pushed "
                        + "again: " + e.getMessage(), e);
            }
            return;
        }
        Map<String, Tensor> copies = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : update.tensors().entrySet()) {
                String name = e.getKey();
                if (skipped(name)) continue;
                Tensor copy = Torch.empty(Torch.options(dtypes.get(name)), shapes.get(name));
                copy.copy_(e.getValue());
                Tensor earlier = copies.put(name, copy);
                if (earlier != null) earlier.close();
            }
        } catch (RuntimeException e) {  // host memory ran out: free what was made, keep what was pending
            copies.values().forEach(Tensor::close);
            throw new IllegalStateException("could not hold the update in host memory while the weights are released: " + e.getMessage(), e);
        }
        copies.forEach((name, copy) -> {
            Tensor earlier = pending.put(name, copy);
            if (earlier != null) earlier.close();
        });
    }

    /** The most recent applied updates, oldest first. */
    List<UpdateRecord> history() {
        return historySnapshot;
    }

    int numUnpushed() {
        return unpushed.size();
    }

    /** Marks parameters as not servable until they are pushed again (their values are noise now). */
    void distrust(Collection<String> names) {
        unpushed.addAll(names);
    }

    /** Bytes of weights held in host memory for a resume (the backup, and updates applied while released), 0 when none. */
    long heldBackupBytes() {
        long bytes = backupHeld ? backupBytes : 0;
        for (Tensor t : pending.values()) bytes += t.nbytes();
        return bytes;
    }

    /** Whether a release keeps a host copy of the weights (rollout.weights-host-backup). */
    boolean hostBackup() {
        return hostBackup;
    }

    /** Whether a host copy of all the weights is held for the resume to restore. */
    boolean backupHeld() {
        return backupHeld;
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
     * every parameter must be pushed before the engine steps again. Then the updates applied
     * while released are copied in. Returns the bytes copied from host memory.
     */
    long reallocateAndRestore() {
        model.reallocateWeights();
        long restored = 0;
        ParameterTable table = model.parameters();
        if (backupHeld) {
            try (PointerScope scope = new PointerScope()) {
                for (String name : table.names()) {
                    Tensor host = backup.get(name);
                    table.get(name).copy_(host);
                    restored += host.nbytes();
                }
            }
            backupHeld = false;
            // the copy brings back what was there, trust included: parameters that reset_tensors filled
            // with noise before the release are noise in the copy too, and still wait for their push
        } else {
            unpushed.addAll(table.names());
        }
        try (PointerScope scope = new PointerScope()) {
            for (Map.Entry<String, Tensor> e : pending.entrySet()) {
                table.copyFull(e.getKey(), e.getValue());   // the pending copies are whole: this rank takes its part
                restored += e.getValue().nbytes();
                unpushed.remove(e.getKey());
            }
        }
        pending.values().forEach(Tensor::close);
        pending.clear();
        return restored;
    }

    /**
     * The tensors behind the parameter names now: the model's own, or while released, the host
     * copy that a resume will restore. Throws when the weights are released without one.
     */
    Map<String, Tensor> readable() {
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
        Map<String, Tensor> source = readable();
        name = ExpertNames.parameterName(name, source.keySet());   // Mixtral's router by transformers 5's name
        try (PointerScope scope = new PointerScope()) {
            // a parameter, or a mixture of experts' stacked tensor by transformers 5's name
            Tensor t = source.containsKey(name) ? whole(source, name) : ExpertNames.gather(name, source.keySet(), n -> whole(source, n));
            if (t == null) throw new IllegalArgumentException("unknown parameter " + name);
            List<Long> shape = new ArrayList<>();
            for (int i = 0; i < t.dim(); i++) shape.add(t.size(i));
            Tensor head = t.dim() == 0 ? t.reshape(-1) : t.narrow(0, 0, Math.min(rows, t.size(0)));
            return new ParameterValues(name, shape, Torch.toFloats(head));
        }
    }

    /**
     * The whole parameter {@code name} from {@code readable} (the weights, or while released their
     * host copy): with the model in several shards, put back together from every rank's part of
     * it, each read from what that rank holds now. The weights checker works on these (SGLang's
     * compares each rank's shards; whole parameters show the same differences, and its snapshot
     * stays on rank 0).
     */
    Tensor whole(Map<String, Tensor> readable, String name) {
        Tensor mine = readable.get(name);
        return engine.tpSize() == 1 ? mine : engine.parameterChannel().gatherParameter(name, shards.get(name), mine);
    }

    /**
     * SHA-256 of every parameter, from the model or, while released, from the host copy (the same
     * bytes); of every rank's shards when the model is in several.
     */
    WeightChecksums checksums() {
        Map<String, Tensor> source = readable();   // throws before any rank is asked, if there is nothing to hash
        return new WeightChecksums(engine.weightVersion(), model.dtype().name(), engine.parameterChannel().gatherChecksums(() -> {
            TreeMap<String, String> sums = new TreeMap<>();
            try (PointerScope scope = new PointerScope()) {
                source.forEach((name, t) -> sums.put(name, Torch.sha256(t)));
            }
            return sums;
        }));
    }
}
