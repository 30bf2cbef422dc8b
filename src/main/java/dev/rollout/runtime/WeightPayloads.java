package dev.rollout.runtime;

import dev.rollout.engine.WeightUpdate;
import dev.rollout.model.Checkpoint;
import dev.rollout.model.ParameterTable;
import dev.rollout.model.TensorPayloads;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;

/** Turns the bytes of a weight push, or a checkpoint directory, into a {@link WeightUpdate}. */
public final class WeightPayloads {
    private WeightPayloads() {}

    /** How a push was encoded. */
    public enum Format { SAFETENSORS, FLATTENED_BUCKET }

    /**
     * @param raw      the payload: safetensors bytes, or the flat buffer of a bucket
     * @param manifest where each tensor sits in a flat buffer (FLATTENED_BUCKET only)
     * @throws IOException with a message fit for the caller when the bytes do not hold what they claim
     */
    public static WeightUpdate decode(byte[] raw, Format format, List<TensorPayloads.FlatEntry> manifest, String version,
                                      boolean abortAll, String transport) throws IOException {
        if (raw.length > 0 && (raw[0] & 0xff) == 0x80)
            throw new IOException("this payload is a Python pickle, which can run code on the server and is refused; "
                    + "send safetensors bytes (base64) or a flattened bucket with a JSON manifest (docs/api.md)");
        ByteBuffer direct = ByteBuffer.allocateDirect(raw.length).put(raw).flip();
        Map<String, Tensor> tensors = format == Format.SAFETENSORS
                ? TensorPayloads.fromSafetensors(direct) : TensorPayloads.fromFlatBuffer(direct, manifest);
        return new WeightUpdate(tensors, version, abortAll, transport, raw.length);
    }

    /** Every parameter of the checkpoint in {@code dir}, read onto the CPU in its stored dtype. */
    public static WeightUpdate fromDisk(Path dir, ParameterTable table, String version, boolean abortAll) throws IOException {
        Checkpoint ckpt = Checkpoint.open(dir);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        long bytes = 0;
        try {
            for (String name : table.names()) {
                if (!ckpt.contains(name)) throw new IOException(dir + " has no " + name);
                Tensor t = ckpt.load(name, ckpt.storedType(name), new Device("cpu"));
                tensors.put(name, t);
                bytes += t.nbytes();
            }
        } catch (IOException | RuntimeException e) {
            tensors.values().forEach(Tensor::close);
            throw e;
        }
        return new WeightUpdate(tensors, version, abortAll, "disk", bytes);
    }
}
