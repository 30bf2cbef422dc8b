package dev.rollout.model;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.rollout.safetensors.SafetensorsWriter;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header naming each
 * tensor's dtype, shape and byte range, then the raw data. Reading memory-maps each tensor's
 * range, so a checkpoint is never copied onto the Java heap.
 */
public final class Safetensors {
    private Safetensors() {}

    /** One tensor's entry in a file's header. {@code dtype} uses the format's names (F32, BF16, ...). */
    public record Entry(Path file, String dtype, long[] shape, long begin, long end) {
        public long numel() {
            return Arrays.stream(shape).reduce(1, (a, b) -> a * b);
        }
    }

    /** Reads the header of one file; offsets in the entries are absolute file positions. */
    public static Map<String, Entry> readHeader(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, len, 0);
            long n = len.flip().getLong();
            if (n <= 0 || n > MAX_HEADER || 8 + n > ch.size())
                throw new IOException(file + ": not a safetensors file (header length " + n + ")");
            ByteBuffer json = ByteBuffer.allocate((int) n);
            readFully(ch, json, 8);
            return parseHeader(new String(json.array(), StandardCharsets.UTF_8), file, 8 + n, ch.size());
        }
    }

    /** Reads the header of safetensors bytes held in memory; offsets are positions in {@code buf}. */
    public static Map<String, Entry> readHeader(ByteBuffer buf) throws IOException {
        ByteBuffer b = buf.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 8) throw new IOException("not safetensors data: " + b.remaining() + " bytes");
        long n = b.getLong(0);
        if (n <= 0 || n > MAX_HEADER || 8 + n > b.remaining())
            throw new IOException("not safetensors data (header length " + n + ")");
        byte[] json = new byte[(int) n];
        b.position(8);
        b.get(json);
        return parseHeader(new String(json, StandardCharsets.UTF_8), null, 8 + n, buf.remaining());
    }

    private static final long MAX_HEADER = 100_000_000L;

    private static Map<String, Entry> parseHeader(String json, Path file, long dataStart, long size) throws IOException {
        String where = file == null ? "safetensors data" : file.toString();
        JsonObject header;
        try {
            header = JsonParser.parseString(json).getAsJsonObject();
        } catch (RuntimeException e) {
            throw new IOException(where + ": the header is not a JSON object");
        }
        Map<String, Entry> out = new LinkedHashMap<>();
        for (var e : header.entrySet()) {
            if (e.getKey().equals("__metadata__")) continue;
            try {
                JsonObject t = e.getValue().getAsJsonObject();
                long[] shape = new long[t.getAsJsonArray("shape").size()];
                for (int i = 0; i < shape.length; i++) shape[i] = t.getAsJsonArray("shape").get(i).getAsLong();
                long b = t.getAsJsonArray("data_offsets").get(0).getAsLong();
                long end = t.getAsJsonArray("data_offsets").get(1).getAsLong();
                Entry entry = new Entry(file, t.get("dtype").getAsString(), shape, dataStart + b, dataStart + end);
                if (b < 0 || entry.end() > size || entry.end() - entry.begin() != entry.numel() * bytesPer(entry.dtype()))
                    throw new IOException(where + ": tensor " + e.getKey() + " has an inconsistent byte range");
                out.put(e.getKey(), entry);
            } catch (IOException x) {
                throw x;
            } catch (RuntimeException x) {
                throw new IOException(where + ": bad header entry for " + e.getKey() + ": " + x.getMessage());
            }
        }
        return out;
    }

    /** Memory-maps one tensor's bytes (read-only, little-endian). */
    public static ByteBuffer map(Entry e) throws IOException {
        try (FileChannel ch = FileChannel.open(e.file(), StandardOpenOption.READ)) {
            return ch.map(FileChannel.MapMode.READ_ONLY, e.begin(), e.end() - e.begin()).order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    /**
     * Unmaps a buffer from {@link #map} now. Left to the garbage collector, every mapping of every
     * weight load stays resident until a collection happens, which on a server with a small heap
     * can be never: a thousand reloads would pin a thousand copies of the checkpoint's pages.
     */
    public static void unmap(ByteBuffer mapped) {
        if (!mapped.isDirect()) return;
        try {
            var unsafeField = Class.forName("sun.misc.Unsafe").getDeclaredField("theUnsafe");
            unsafeField.setAccessible(true);
            Object unsafe = unsafeField.get(null);
            unsafe.getClass().getMethod("invokeCleaner", ByteBuffer.class).invoke(unsafe, mapped);
        } catch (ReflectiveOperationException | RuntimeException e) {
            // jdk.unsupported missing: the mapping goes with the next collection instead
        }
    }

    public static int bytesPer(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> throw new IllegalArgumentException("unknown safetensors dtype " + dtype);
        };
    }

    /** Writes tensors in the order given, as {@code save_pretrained} does. */
    public static void write(Path file, Map<String, SafetensorsWriter.Tensor> tensors, Map<String, String> metadata) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16)) {
            SafetensorsWriter.write(out, tensors, metadata);
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long pos) throws IOException {
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) throw new IOException("unexpected end of file");
            pos += n;
        }
    }
}
