package dev.rollout.weights;

import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * The tensors of one push as the request framed them, before decoding: the weight path decides
 * what the bytes are (safetensors, a flat bucket, a pickle) and whether it may read them.
 */
public sealed interface TensorPayload {

    /**
     * {@code serialized_named_tensors[0]}, decoded from base64 into native memory (valid while the
     * call runs), with SGLang's {@code load_format} and, for a flat bucket, its manifest.
     */
    record Encoded(ByteBuffer bytes, String loadFormat, List<FlatTensor> manifest) implements TensorPayload {}

    /** One tensor's place in a flat bucket (SGLang's FlattenedTensorMetadata): bytes [start, end). */
    record FlatTensor(String name, String dtype, long[] shape, long start, long end) {}

    /** A safetensors file as the request body itself, read from the socket straight into native memory. */
    record SafetensorsBody(InputStream body, long contentLength, long limit) implements TensorPayload {}

    /** Our JSON descriptors of CUDA IPC tensors (no pickle at all). */
    record CudaIpcTensors(List<WeightPayloads.IpcDescriptor> tensors) implements TensorPayload {
        public CudaIpcTensors {
            tensors = List.copyOf(tensors);
        }
    }

    /**
     * SGLang's update_weights_from_distributed: the tensors the trainer's rank 0 broadcasts on a
     * weight-update group, announced by name, dtype and shape, in broadcast order; with {@code
     * flattened} (load_format "flattened_bucket") all of them as one uint8 broadcast.
     */
    record Broadcast(String groupName, List<dev.rollout.dist.WeightGroupOp.Announced> tensors, boolean flattened) implements TensorPayload {
        public Broadcast {
            tensors = List.copyOf(tensors);
        }
    }
}
