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
        Map<String, Safetensors.Entry> entries = Safetensors.readHeader(direct);  // checked: ranges tile the data
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (var e : entries.entrySet()) {
                Safetensors.Entry t = e.getValue();
                out.put(e.getKey(), copyOut(direct, t.begin(), t.end(), t.shape(), t.dtype()));
            }
        } catch (IOException | RuntimeException e) {
            out.values().forEach(Tensor::close);
            throw e;
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
        checkManifest(manifest, flat.size(0));
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (FlatEntry f : manifest) {
                String dtype = safetensorsDtype(f.dtype());
                try (Tensor bytes = flat.narrow(0, f.start(), f.end() - f.start()); Tensor typed = bytes.view(Checkpoint.scalarType(dtype))) {
                    out.put(f.name(), typed.view(f.shape()).clone());
                }
            }
        } catch (IOException | RuntimeException e) {
            out.values().forEach(Tensor::close);
            throw e;
        }
        return out;
    }

    /**
     * A flattened bucket's manifest, checked before any byte is touched: each name once, a known
     * dtype, a shape of non-negative dimensions whose byte count fits 64 bits and equals its
     * range, and the ranges tiling the bucket as SGLang's FlattenedTensorBucket lays them out
     * (the same rule as safetensors' data_offsets).
     */
    public static void checkManifest(List<FlatEntry> manifest, long bucketBytes) throws IOException {
        java.util.Set<String> names = new java.util.HashSet<>();
        List<TensorLayout.Range> ranges = new java.util.ArrayList<>();
        for (FlatEntry f : manifest) {
            if (!names.add(f.name())) throw new IOException(f.name() + " appears twice in the manifest");
            String dtype = safetensorsDtype(f.dtype());
            long nbytes = TensorLayout.nbytes(f.shape(), Safetensors.bytesPer(dtype), f.name());
            if (f.start() >= 0 && f.end() >= f.start() && f.end() - f.start() != nbytes)
                throw new IOException(f.name() + ": bytes [" + f.start() + ", " + f.end() + ") do not hold a " + f.dtype()
                        + " tensor of shape " + java.util.Arrays.toString(f.shape()) + " (" + nbytes + " bytes)");
            ranges.add(new TensorLayout.Range(f.name(), f.start(), f.end()));
        }
        TensorLayout.checkTiling(ranges, bucketBytes, "the flattened bucket");
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
