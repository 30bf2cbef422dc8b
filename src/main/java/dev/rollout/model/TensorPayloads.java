package dev.rollout.model;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Tensor;

/**
 * Tensors that arrive in a request body (weight pushes): a safetensors blob, or one flat buffer
 * described by a manifest. The buffer must be direct; each tensor is copied out of it once, into
 * memory of its own, so the buffer can go as soon as this returns.
 */
public final class TensorPayloads {
    private TensorPayloads() {}

    /** One tensor's place in a flat buffer (SGLang's FlattenedTensorMetadata). */
    public record FlatEntry(String name, String dtype, long[] shape, long start, long end) {}

    public static Map<String, Tensor> fromSafetensors(ByteBuffer direct) throws IOException {
        Map<String, Safetensors.Entry> entries = Safetensors.readHeader(direct);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (var e : entries.entrySet()) {
            Safetensors.Entry t = e.getValue();
            out.put(e.getKey(), copyOut(direct, t.begin(), t.end(), t.shape(), t.dtype()));
        }
        return out;
    }

    public static Map<String, Tensor> fromFlatBuffer(ByteBuffer direct, List<FlatEntry> manifest) throws IOException {
        if (!direct.isDirect()) throw new IllegalArgumentException("payload buffer must be direct");
        try (Tensor flat = org.bytedeco.pytorch.global.torch.from_blob(new BytePointer(direct), new long[] {direct.remaining()},
                Torch.options(org.bytedeco.pytorch.global.torch.ScalarType.Byte))) {
            return sliceFlat(flat, manifest);
        }
    }

    /** Cuts a flat uint8 tensor (any device) into the tensors its manifest describes, each copied out. */
    public static Map<String, Tensor> sliceFlat(Tensor flat, List<FlatEntry> manifest) throws IOException {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (FlatEntry f : manifest) {
            String dtype = safetensorsDtype(f.dtype());
            long numel = 1;
            for (long d : f.shape()) numel *= d;
            if (f.start() < 0 || f.end() > flat.size(0) || f.end() - f.start() != numel * Safetensors.bytesPer(dtype))
                throw new IOException(f.name() + ": bytes [" + f.start() + ", " + f.end() + ") do not hold a " + f.dtype()
                        + " tensor of " + numel + " elements inside the " + flat.size(0) + "-byte bucket");
            if (out.containsKey(f.name())) throw new IOException(f.name() + " appears twice in the manifest");
            try (Tensor bytes = flat.narrow(0, f.start(), f.end() - f.start()); Tensor typed = bytes.view(Checkpoint.scalarType(dtype))) {
                out.put(f.name(), typed.view(f.shape()).clone());
            }
        }
        return out;
    }

    /** Accepts torch's names ("bfloat16", "torch.float32", "half") and safetensors' ("BF16"). */
    public static String safetensorsDtype(String name) throws IOException {
        return switch (name.replace("torch.", "").toLowerCase()) {
            case "float32", "float", "f32" -> "F32";
            case "bfloat16", "bf16" -> "BF16";
            case "float16", "half", "f16" -> "F16";
            case "float64", "double", "f64" -> "F64";
            default -> throw new IOException("unsupported dtype " + name + " (float32, bfloat16, float16, float64)");
        };
    }

    private static Tensor copyOut(ByteBuffer direct, long begin, long end, long[] shape, String dtype) throws IOException {
        if (!direct.isDirect()) throw new IllegalArgumentException("payload buffer must be direct");
        if (!dtype.startsWith("F") && !dtype.equals("BF16")) throw new IOException("weights must be floating point, got " + dtype);
        BytePointer at = new BytePointer(direct).position(direct.position() + begin).limit(direct.position() + end);
        try (Tensor view = org.bytedeco.pytorch.global.torch.from_blob(at, shape, Torch.options(Checkpoint.scalarType(dtype)))) {
            return view.clone();
        }
    }
}
