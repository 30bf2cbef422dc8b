package dev.rollout.safetensors;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Writes the safetensors format: an 8-byte little-endian header length, a JSON header naming each
 * tensor's dtype, shape and byte range, then the tensors' raw bytes in order. The server writes
 * checkpoints with it and the client (which ships without the server) writes weight buckets, so
 * it depends on nothing but the JDK.
 */
public final class SafetensorsWriter {
    private SafetensorsWriter() {}

    /** A tensor to write: raw little-endian bytes plus its safetensors dtype ("BF16", "F32", ...) and shape. */
    public record Tensor(String dtype, long[] shape, ByteBuffer data) {
        /** Its bytes in the file. */
        public long size() {
            return data.remaining();
        }
    }

    /** Writes tensors in the order given, as {@code save_pretrained} does. */
    public static void write(OutputStream out, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        List<String> parts = new ArrayList<>();
        if (!metadata.isEmpty()) {
            List<String> kv = new ArrayList<>();
            metadata.forEach((k, v) -> kv.add(quote(k) + ":" + quote(v)));
            parts.add("\"__metadata__\":{" + String.join(",", kv) + "}");
        }
        long offset = 0;
        for (var e : tensors.entrySet()) {
            Tensor t = e.getValue();
            parts.add(quote(e.getKey()) + ":{\"dtype\":" + quote(t.dtype()) + ",\"shape\":"
                    + Arrays.toString(t.shape()).replace(" ", "") + ",\"data_offsets\":[" + offset + "," + (offset + t.size()) + "]}");
            offset += t.size();
        }
        // the data must start 8-byte aligned: the header is padded with spaces, as the reference writer does
        byte[] header = ("{" + String.join(",", parts) + "}").getBytes(StandardCharsets.UTF_8);
        int padded = (header.length + 7) / 8 * 8;
        byte[] headerPadded = Arrays.copyOf(header, padded);
        Arrays.fill(headerPadded, header.length, padded, (byte) ' ');
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
        out.write(headerPadded);
        byte[] chunk = new byte[1 << 16];
        for (Tensor t : tensors.values()) {
            ByteBuffer d = t.data().duplicate();
            while (d.hasRemaining()) {
                int n = Math.min(chunk.length, d.remaining());
                d.get(chunk, 0, n);
                out.write(chunk, 0, n);
            }
        }
    }

    /** The safetensors bytes of {@code tensors}, in memory. */
    public static byte[] bytes(Map<String, Tensor> tensors) {
        long size = tensors.values().stream().mapToLong(Tensor::size).sum();
        if (size > Integer.MAX_VALUE - (1 << 20)) throw new IllegalArgumentException(size + " bytes do not fit one array: bucket them");
        ByteArrayOutputStream out = new ByteArrayOutputStream((int) size + 4096);
        try {
            write(out, tensors, Map.of());
        } catch (IOException e) {
            throw new UncheckedIOException(e);  // a ByteArrayOutputStream does not fail
        }
        return out.toByteArray();
    }

    private static String quote(String s) {
        return '"' + s.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
    }
}
