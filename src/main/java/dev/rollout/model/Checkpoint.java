package dev.rollout.model;

import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A Hugging Face checkpoint directory: {@code model.safetensors}, or shards listed in
 * {@code model.safetensors.index.json}. Tensors are read by name, straight from the mapped file
 * into a tensor of the wanted dtype on the wanted device.
 */
public final class Checkpoint {
    private final Path dir;
    private final Map<String, Safetensors.Entry> entries;

    private Checkpoint(Path dir, Map<String, Safetensors.Entry> entries) {
        this.dir = dir;
        this.entries = entries;
    }

    public static Checkpoint open(Path dir) throws IOException {
        Map<String, Safetensors.Entry> entries = new LinkedHashMap<>();
        Path index = dir.resolve("model.safetensors.index.json");
        Set<String> files = new TreeSet<>();
        if (Files.exists(index)) {
            var map = JsonParser.parseString(Files.readString(index)).getAsJsonObject().getAsJsonObject("weight_map");
            map.entrySet().forEach(e -> files.add(e.getValue().getAsString()));
        } else if (Files.exists(dir.resolve("model.safetensors"))) {
            files.add("model.safetensors");
        } else {
            try (Stream<Path> s = Files.list(dir)) {
                s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".safetensors")).forEach(files::add);
            }
        }
        if (files.isEmpty()) throw new IOException(dir + ": no *.safetensors files");
        for (String f : files) entries.putAll(Safetensors.readHeader(dir.resolve(f)));
        return new Checkpoint(dir, entries);
    }

    public Path dir() {
        return dir;
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    public Set<String> names() {
        return entries.keySet();
    }

    public long[] shape(String name) {
        Safetensors.Entry e = entries.get(name);
        if (e == null) throw new IllegalArgumentException(dir + ": checkpoint has no tensor " + name);
        return e.shape().clone();
    }

    /** Reads one tensor and converts it; the result owns its memory (the mapping can go). */
    public Tensor load(String name, ScalarType dtype, Device device) throws IOException {
        Safetensors.Entry e = entries.get(name);
        if (e == null) throw new IOException(dir + ": checkpoint has no tensor " + name);
        ByteBuffer bytes = Safetensors.map(e);
        try (Tensor view = torch.from_blob(new BytePointer(bytes), e.shape(), Torch.options(scalarType(e.dtype())))) {
            // copy=true: when dtype and device already match, `to` would otherwise alias the mapping.
            return view.to(device, dtype, false, true, new MemoryFormatOptional());
        } finally {
            Safetensors.unmap(bytes);
        }
    }

    /** The bytes a tensor takes in the checkpoint. */
    public long byteSize(String name) {
        Safetensors.Entry e = entries.get(name);
        if (e == null) throw new IllegalArgumentException(dir + ": checkpoint has no tensor " + name);
        return e.end() - e.begin();
    }

    /** The dtype a tensor is stored in. */
    public ScalarType storedType(String name) {
        Safetensors.Entry e = entries.get(name);
        if (e == null) throw new IllegalArgumentException(dir + ": checkpoint has no tensor " + name);
        return scalarType(e.dtype());
    }

    /** Copies one tensor from the mapped file straight into {@code target} (converting dtype and device). */
    public void copyInto(String name, Tensor target) throws IOException {
        Safetensors.Entry e = entries.get(name);
        if (e == null) throw new IOException(dir + ": checkpoint has no tensor " + name);
        ByteBuffer bytes = Safetensors.map(e);
        try (Tensor view = torch.from_blob(new BytePointer(bytes), e.shape(), Torch.options(scalarType(e.dtype())))) {
            target.copy_(view);
        } finally {
            Safetensors.unmap(bytes);
        }
    }

    /**
     * Copies this rank's part ({@code shard}) of one full tensor from the mapped file into
     * {@code target}; a whole shard is {@link #copyInto(String, Tensor)}.
     */
    public void copyInto(String name, Tensor target, TensorShard shard) throws IOException {
        if (shard.replicated()) {
            copyInto(name, target);
            return;
        }
        Safetensors.Entry e = entries.get(name);
        if (e == null) throw new IOException(dir + ": checkpoint has no tensor " + name);
        ByteBuffer bytes = Safetensors.map(e);
        try (Tensor view = torch.from_blob(new BytePointer(bytes), e.shape(), Torch.options(scalarType(e.dtype())));
             Tensor part = shard.narrow(view)) {
            target.copy_(part);
        } finally {
            Safetensors.unmap(bytes);
        }
    }

    public static ScalarType scalarType(String safetensorsDtype) {
        return switch (safetensorsDtype) {
            case "F32" -> ScalarType.Float;
            case "F16" -> ScalarType.Half;
            case "BF16" -> ScalarType.BFloat16;
            case "F64" -> ScalarType.Double;
            case "I64" -> ScalarType.Long;
            case "I32" -> ScalarType.Int;
            case "I16" -> ScalarType.Short;
            case "I8" -> ScalarType.Char;
            case "U8" -> ScalarType.Byte;
            case "BOOL" -> ScalarType.Bool;
            default -> throw new IllegalArgumentException("unsupported safetensors dtype " + safetensorsDtype);
        };
    }
}
