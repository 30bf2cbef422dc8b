package dev.rollout.engine;

import java.util.List;
import java.util.Map;
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

    /** Frees the payload tensors once they are copied (or refused). */
    public void release() {
        tensors.values().forEach(Tensor::close);
    }
}
