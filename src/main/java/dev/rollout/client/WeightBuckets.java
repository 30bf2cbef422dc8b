package dev.rollout.client;

import dev.rollout.safetensors.SafetensorsWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Named tensors cut into consecutive buckets of at most a given number of tensor bytes, each
 * pushed as one safetensors body (veRL's {@code update_weights_bucket_megabytes}): a whole model
 * in one body would exceed the server's body limit and hold a second copy of the model in memory.
 * A tensor larger than the limit goes alone. Each bucket is encoded only when it is sent.
 */
public final class WeightBuckets {
    private final List<Map<String, SafetensorsWriter.Tensor>> buckets;

    private WeightBuckets(List<Map<String, SafetensorsWriter.Tensor>> buckets) {
        this.buckets = buckets;
    }

    /** {@code tensors} in their order, cut before any tensor that would take a bucket past {@code maxBytes}. */
    public static WeightBuckets of(Map<String, SafetensorsWriter.Tensor> tensors, long maxBytes) {
        Map<String, Long> sizes = new LinkedHashMap<>();
        tensors.forEach((name, t) -> sizes.put(name, t.size()));
        List<Map<String, SafetensorsWriter.Tensor>> out = new ArrayList<>();
        for (List<String> names : plan(sizes, maxBytes)) {
            Map<String, SafetensorsWriter.Tensor> bucket = new LinkedHashMap<>();
            names.forEach(n -> bucket.put(n, tensors.get(n)));
            out.add(bucket);
        }
        return new WeightBuckets(out);
    }

    /**
     * The names, in order, cut into consecutive groups of at most {@code maxBytes} (by the sizes
     * given), a larger one alone: for pushers that know the sizes before they have the bytes.
     */
    public static List<List<String>> plan(Map<String, Long> sizes, long maxBytes) {
        if (maxBytes <= 0) throw new IllegalArgumentException("bucket size must be positive, not " + maxBytes);
        if (sizes.isEmpty()) throw new IllegalArgumentException("no tensors to push");
        List<List<String>> out = new ArrayList<>();
        List<String> current = new ArrayList<>();
        long size = 0;
        for (var e : sizes.entrySet()) {
            if (!current.isEmpty() && size + e.getValue() > maxBytes) {
                out.add(current);
                current = new ArrayList<>();
                size = 0;
            }
            current.add(e.getKey());
            size += e.getValue();
        }
        out.add(current);
        return out;
    }

    public int size() {
        return buckets.size();
    }

    /** The names in bucket {@code i}, in order. */
    public List<String> names(int i) {
        return List.copyOf(buckets.get(i).keySet());
    }

    /** Bucket {@code i} as a safetensors body. */
    public byte[] encode(int i) {
        return SafetensorsWriter.bytes(buckets.get(i));
    }
}
