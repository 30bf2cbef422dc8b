package dev.rollout.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import org.bytedeco.pytorch.Tensor;

/**
 * New values for some or all parameters, by Hugging Face name, to be copied into the model
 * between two steps. The tensors may have any dtype and live on any device; the copy converts.
 *
 * @param version   the weight version to serve afterwards, or null to keep the current one
 * @param abortAll  abort running requests first instead of waiting for them to finish
 * @param transport how the tensors arrived, for the record ("safetensors", "flattened_bucket", "disk", ...)
 * @param bytes     payload size, for the record
 */
public record WeightUpdate(Map<String, Tensor> tensors, String version, boolean abortAll, String transport, long bytes) {

    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    /**
     * What {@code mismatch} finds wrong with each tensor's name and shape (null for a tensor that
     * fits), the first five joined, or null when every tensor fits.
     */
    public String mismatches(BiFunction<String, long[], String> mismatch) {
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            long[] shape = new long[(int) e.getValue().dim()];
            for (int i = 0; i < shape.length; i++) shape[i] = e.getValue().size(i);
            String m = mismatch.apply(e.getKey(), shape);
            if (m != null) problems.add(m);
        }
        if (problems.isEmpty()) return null;
        return String.join("; ", problems.subList(0, Math.min(5, problems.size())))
                + (problems.size() > 5 ? " (and " + (problems.size() - 5) + " more)" : "");
    }

    /** Frees the payload tensors once they are copied (or refused). */
    public void release() {
        tensors.values().forEach(Tensor::close);
    }
}
