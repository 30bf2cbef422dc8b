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
        if (maxBytes <= 0) throw new IllegalArgumentException("bucket size must be positive, not " + maxBytes);
        if (tensors.isEmpty()) throw new IllegalArgumentException("no tensors to push");
        List<Map<String, SafetensorsWriter.Tensor>> out = new ArrayList<>();
        Map<String, SafetensorsWriter.Tensor> current = new LinkedHashMap<>();
        long size = 0;
        for (var e : tensors.entrySet()) {
            long t = e.getValue().size();
            if (!current.isEmpty() && size + t > maxBytes) {
                out.add(current);
                current = new LinkedHashMap<>();
                size = 0;
            }
            current.put(e.getKey(), e.getValue());
            size += t;
        }
        out.add(current);
        return new WeightBuckets(out);
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
