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
import org.bytedeco.javacpp.BytePointer;
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
        // native memory freed as soon as the tensors are copied out, not at some later collection
        try (BytePointer buffer = new BytePointer(raw.length)) {
            buffer.put(raw);
            return decode(buffer.asByteBuffer(), raw, format, manifest, version, abortAll, transport);
        }
    }

    private static WeightUpdate decode(ByteBuffer direct, byte[] raw, Format format, List<TensorPayloads.FlatEntry> manifest,
                                       String version, boolean abortAll, String transport) throws IOException {
        Map<String, Tensor> tensors;
        if (format == Format.FLATTENED_BUCKET) {
            tensors = TensorPayloads.fromFlatBuffer(direct, manifest);  // raw tensor bytes, described by JSON
        } else {
            try {
                tensors = TensorPayloads.fromSafetensors(direct);
            } catch (IOException notSafetensors) {
                // Never unpickled: only named, so that an SGLang client learns why it was refused.
                if (looksLikePickle(raw))
                    throw new IOException("this payload is a Python pickle, which can run code on the server and is refused; "
                            + "send safetensors bytes (base64) or a flattened bucket with a JSON manifest (docs/api.md)");
                throw notSafetensors;
            }
        }
        return new WeightUpdate(tensors, version, abortAll, transport, raw.length);
    }

    /** Pickle protocol 2+ opens with PROTO (0x80, version) and every pickle ends with STOP ('.'). */
    static boolean looksLikePickle(byte[] raw) {
        return raw.length > 2 && (raw[0] & 0xff) == 0x80 && raw[1] >= 2 && raw[1] <= 5 && raw[raw.length - 1] == '.';
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
