package dev.rollout.model;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * The model's parameters under their Hugging Face names. The engine fuses q/k/v and gate/up into
 * single matrices; each HF name here is a view onto its slice of the fused tensor, so loading,
 * updating, reading back and checksumming by HF name all write or read the engine's own memory.
 *
 * <p>Under tensor parallelism a rank holds part of each parameter: {@link #get} is that part, and
 * {@link #shard} says where it lies in the full Hugging Face tensor, which is what checkpoints and
 * pushes hand over ({@link #copyFull} narrows one into place). At one rank every shard is the
 * whole tensor and the table is what it always was.
 */
public final class ParameterTable {
    private final Map<String, Tensor> views = new LinkedHashMap<>();
    private final Map<String, TensorShard> shards = new LinkedHashMap<>();

    /** A parameter held whole, on the only rank. */
    void put(String name, Tensor view) {
        put(name, view, TensorShard.whole(shapeOf(view), 0, 1));
    }

    /** A parameter of which this rank holds {@code view}, the part {@code shard} of the full tensor. */
    void put(String name, Tensor view, TensorShard shard) {
        if (!Arrays.equals(shapeOf(view), shard.localShape()))
            throw new IllegalArgumentException(name + ": a view of " + Arrays.toString(shapeOf(view)) + " for " + shard);
        views.put(name, view);
        shards.put(name, shard);
    }

    public Set<String> names() {
        return Collections.unmodifiableSet(views.keySet());
    }

    public boolean contains(String name) {
        return views.containsKey(name);
    }

    /** The engine's tensor for {@code name}: a view, writes go into the model. */
    public Tensor get(String name) {
        Tensor t = views.get(name);
        if (t == null) throw new IllegalArgumentException("unknown parameter " + name);
        return t;
    }

    /** The shape of this rank's tensor ({@link #get}); at one rank, the parameter's. */
    public long[] shape(String name) {
        return shapeOf(get(name));
    }

    private static long[] shapeOf(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int i = 0; i < s.length; i++) s[i] = t.size(i);
        return s;
    }

    /** Where this rank's tensor lies in the full parameter. */
    public TensorShard shard(String name) {
        TensorShard s = shards.get(name);
        if (s == null) throw new IllegalArgumentException("unknown parameter " + name);
        return s;
    }

    /** The parameter's Hugging Face shape, whatever part of it this rank holds. */
    public long[] fullShape(String name) {
        return shard(name).fullShape();
    }

    /** Why a full tensor of {@code shape} cannot be loaded into {@code name}, or null if it can. */
    public String mismatch(String name, long[] shape) {
        if (!contains(name)) return "unknown parameter " + name;
        long[] want = fullShape(name);
        return Arrays.equals(want, shape) ? null
                : name + " has shape " + Arrays.toString(want) + ", got " + Arrays.toString(shape);
    }

    /**
     * Copies this rank's part of {@code full} (the whole parameter, any dtype and device) into the
     * model. At one rank: {@code get(name).copy_(full)}.
     */
    public void copyFull(String name, Tensor full) {
        String m = mismatch(name, shapeOf(full));
        if (m != null) throw new IllegalArgumentException(m);
        TensorShard s = shard(name);
        Tensor target = get(name);
        if (s.replicated()) target.copy_(full);
        else try (Tensor part = s.narrow(full)) {
            target.copy_(part);
        }
    }

    /**
     * Drops the views. A view keeps its base tensor's memory alive until its handle is freed, so
     * releasing the weights must close the views too, not leave them to the garbage collector.
     */
    void close() {
        views.values().forEach(Tensor::close);
        views.clear();
        shards.clear();
    }

    /**
     * SHA-256 (hex) of every parameter's bytes in its own dtype (row-major, little-endian), by
     * name: of this rank's part of it ({@link #shard} says which).
     */
    public Map<String, String> checksums() {
        Map<String, String> out = new TreeMap<>();
        try (PointerScope scope = new PointerScope()) {
            for (Map.Entry<String, Tensor> e : views.entrySet()) out.put(e.getKey(), Torch.sha256(e.getValue()));
        }
        return out;
    }

    /** One digest over all parameters: SHA-256 of "name:digest\n" lines in name order. */
    public static String combinedChecksum(Map<String, String> checksums) {
        StringBuilder all = new StringBuilder();
        new TreeMap<>(checksums).forEach((k, v) -> all.append(k).append(':').append(v).append('\n'));
        return Torch.sha256(all.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** Names a checkpoint may carry that are not parameters (transformers drops them on load too). */
    public static boolean ignorable(String name) {
        return name.endsWith("rotary_emb.inv_freq") || name.endsWith("rotary_emb.cos_cached") || name.endsWith("rotary_emb.sin_cached");
    }
}
