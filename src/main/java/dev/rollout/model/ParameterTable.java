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
 */
public final class ParameterTable {
    private final Map<String, Tensor> views = new LinkedHashMap<>();

    void put(String name, Tensor view) {
        views.put(name, view);
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

    public long[] shape(String name) {
        Tensor t = get(name);
        long[] s = new long[(int) t.dim()];
        for (int i = 0; i < s.length; i++) s[i] = t.size(i);
        return s;
    }

    /** Why {@code shape} cannot be loaded into {@code name}, or null if it can. */
    public String mismatch(String name, long[] shape) {
        if (!contains(name)) return "unknown parameter " + name;
        long[] want = shape(name);
        return Arrays.equals(want, shape) ? null
                : name + " has shape " + Arrays.toString(want) + ", got " + Arrays.toString(shape);
    }

    /**
     * Drops the views. A view keeps its base tensor's memory alive until its handle is freed, so
     * releasing the weights must close the views too, not leave them to the garbage collector.
     */
    void close() {
        views.values().forEach(Tensor::close);
        views.clear();
    }

    /** SHA-256 (hex) of every parameter's bytes in its own dtype (row-major, little-endian), by name. */
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
