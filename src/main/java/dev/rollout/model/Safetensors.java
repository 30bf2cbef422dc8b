package dev.rollout.model;

import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.MalformedJsonException;
import dev.rollout.safetensors.SafetensorsWriter;
import java.io.BufferedOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

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

    /**
     * Reads the header of one file; offsets in the entries are absolute file positions. The header
     * is checked as the format requires (see {@link #parseHeader}), so a file that passes can be
     * mapped range by range without further checks.
     */
    public static Map<String, Entry> readHeader(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            if (ch.size() < 8) throw new IOException(file + ": not a safetensors file (" + ch.size() + " bytes)");
            readFully(ch, len, 0);
            long n = len.flip().getLong();
            checkHeaderLength(n, ch.size(), file.toString());
            ByteBuffer json = ByteBuffer.allocate((int) n);  // n <= MAX_HEADER and within the file: checked above
            readFully(ch, json, 8);
            return parseHeader(json.array(), file, 8 + n, ch.size());
        }
    }

    /** Reads the header of safetensors bytes held in memory; offsets are positions in {@code buf}. */
    public static Map<String, Entry> readHeader(ByteBuffer buf) throws IOException {
        ByteBuffer b = buf.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 8) throw new IOException("not safetensors data: " + b.remaining() + " bytes");
        long n = b.getLong(b.position());
        checkHeaderLength(n, b.remaining(), "safetensors data");
        byte[] json = new byte[(int) n];
        b.position(b.position() + 8);
        b.get(json);
        return parseHeader(json, null, 8 + n, buf.remaining());
    }

    /** The reference's limit (MAX_HEADER_SIZE): a header is names, shapes and offsets, never 100 MB. */
    private static final long MAX_HEADER = 100_000_000L;

    /** The header length is checked against what is there before a byte is allocated for it. */
    private static void checkHeaderLength(long n, long size, String where) throws IOException {
        if (n < 2 || n > MAX_HEADER || n > size - 8)
            throw new IOException(where + ": not safetensors data (a header length of " + n + " bytes in " + size + " bytes; "
                    + "at most " + MAX_HEADER + ")");
    }

    /**
     * Parses and checks a header as the format requires (the reference reader's rules): a UTF-8
     * JSON object, each name once; {@code __metadata__}, if present, maps strings to strings;
     * every other entry has a known dtype, a shape of non-negative dimensions whose element
     * count fits 64 bits, and {@code data_offsets} [begin, end) holding exactly that many bytes;
     * and the entries, sorted by offset, cover the data after the header exactly, without gaps
     * or overlaps ({@link TensorLayout#checkTiling}). Gson's tree parser kept the last of two
     * equal names silently; the streaming reader sees each one.
     */
    private static Map<String, Entry> parseHeader(byte[] json, Path file, long dataStart, long size) throws IOException {
        String where = file == null ? "safetensors data" : file.toString();
        if (json[0] != '{') throw new IOException(where + ": the header does not start with '{'");
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(json)).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(where + ": the header is not UTF-8");
        }
        Map<String, long[]> offsets = new LinkedHashMap<>();
        Map<String, Entry> out = new LinkedHashMap<>();
        try (JsonReader r = new JsonReader(new StringReader(text))) {
            r.setStrictness(Strictness.STRICT);
            r.setNestingLimit(4);  // header -> entry -> shape: nothing deeper is valid
            r.beginObject();
            Set<String> names = new HashSet<>();
            while (r.hasNext()) {
                String name = r.nextName();
                if (!names.add(name)) throw new IOException(where + ": the header names '" + name + "' twice");
                if (name.equals("__metadata__")) {
                    readMetadata(r, where);
                    continue;
                }
                String what = where + ": tensor '" + name + "'";
                EntryFields f = readEntry(r, what);
                int per;
                try {
                    per = bytesPer(f.dtype);
                } catch (IllegalArgumentException e) {
                    throw new IOException(what + ": " + e.getMessage());
                }
                long nbytes = TensorLayout.nbytes(f.shape, per, what);
                if (f.begin >= 0 && f.end >= f.begin && f.end - f.begin != nbytes)
                    throw new IOException(what + ": data_offsets [" + f.begin + ", " + f.end + ") hold " + (f.end - f.begin)
                            + " bytes, but a " + f.dtype + " tensor of shape " + Arrays.toString(f.shape) + " has " + nbytes);
                offsets.put(name, new long[] {f.begin, f.end});
                out.put(name, new Entry(file, f.dtype, f.shape, 0, 0));
            }
            r.endObject();
            if (r.peek() != JsonToken.END_DOCUMENT) throw new IOException(where + ": the header has more after its object");
        } catch (MalformedJsonException | IllegalStateException | NumberFormatException | EOFException e) {
            throw new IOException(where + ": the header is not valid: " + e.getMessage());
        }
        List<TensorLayout.Range> ranges = new ArrayList<>();
        offsets.forEach((name, o) -> ranges.add(new TensorLayout.Range(name, o[0], o[1])));
        TensorLayout.checkTiling(ranges, size - dataStart, where);
        // only now, with every offset inside the data, are they turned into positions
        out.replaceAll((name, e) -> new Entry(file, e.dtype(), e.shape(), dataStart + offsets.get(name)[0], dataStart + offsets.get(name)[1]));
        return out;
    }

    private record EntryFields(String dtype, long[] shape, long begin, long end) {}

    private static EntryFields readEntry(JsonReader r, String what) throws IOException {
        if (r.peek() != JsonToken.BEGIN_OBJECT) throw new IOException(what + ": the entry must be an object, not " + r.peek());
        r.beginObject();
        Set<String> keys = new HashSet<>();
        String dtype = null;
        long[] shape = null, range = null;
        while (r.hasNext()) {
            String key = r.nextName();
            if (!keys.add(key)) throw new IOException(what + ": the entry names '" + key + "' twice");
            switch (key) {
                case "dtype" -> {
                    if (r.peek() != JsonToken.STRING) throw new IOException(what + ": dtype must be a string");
                    dtype = r.nextString();
                }
                case "shape" -> shape = longs(r, what + ": shape");
                case "data_offsets" -> {
                    range = longs(r, what + ": data_offsets");
                    if (range.length != 2) throw new IOException(what + ": data_offsets must be [begin, end]");
                }
                default -> r.skipValue();  // the reference reader ignores other fields too
            }
        }
        r.endObject();
        if (dtype == null || shape == null || range == null)
            throw new IOException(what + ": the entry needs dtype, shape and data_offsets");
        return new EntryFields(dtype, shape, range[0], range[1]);
    }

    private static long[] longs(JsonReader r, String what) throws IOException {
        if (r.peek() != JsonToken.BEGIN_ARRAY) throw new IOException(what + " must be a list of integers");
        List<Long> values = new ArrayList<>();
        r.beginArray();
        while (r.hasNext()) {
            if (r.peek() != JsonToken.NUMBER) throw new IOException(what + " must be a list of integers");
            try {
                values.add(r.nextLong());
            } catch (NumberFormatException e) {
                throw new IOException(what + " must be a list of integers that fit 64 bits");
            }
        }
        r.endArray();
        return values.stream().mapToLong(Long::longValue).toArray();
    }

    /** {@code __metadata__}: the reference reads it as a map of strings to strings, and so does every writer. */
    private static void readMetadata(JsonReader r, String where) throws IOException {
        if (r.peek() != JsonToken.BEGIN_OBJECT) throw new IOException(where + ": __metadata__ must be an object of strings");
        r.beginObject();
        Set<String> keys = new HashSet<>();
        while (r.hasNext()) {
            String key = r.nextName();
            if (!keys.add(key)) throw new IOException(where + ": __metadata__ names '" + key + "' twice");
            if (r.peek() != JsonToken.STRING)
                throw new IOException(where + ": __metadata__ must map strings to strings; '" + key + "' is " + r.peek());
            r.nextString();
        }
        r.endObject();
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
