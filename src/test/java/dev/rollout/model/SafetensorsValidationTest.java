package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Safetensors headers and flattened-bucket manifests as pushes send them: every header the format
 * forbids is refused with a message before a byte is allocated or copied (the reference reader's
 * rules), and what it allows is read.
 */
class SafetensorsValidationTest {
    @TempDir
    Path dir;

    /** safetensors bytes with this header and {@code dataBytes} bytes of data, in native memory. */
    static ByteBuffer blob(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocateDirect(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        for (int i = 0; i < dataBytes; i++) b.put((byte) i);
        return b.flip();
    }

    static String refusal(String header, int dataBytes) {
        return assertThrows(IOException.class, () -> TensorPayloads.fromSafetensors(blob(header, dataBytes))).getMessage();
    }

    @Test
    void aValidHeaderIsRead() throws IOException {
        Map<String, Tensor> t = TensorPayloads.fromSafetensors(blob("{\"__metadata__\": {\"format\": \"pt\"}, "
                + "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}, "
                + "\"a\": {\"dtype\": \"F32\", \"shape\": [1, 2], \"data_offsets\": [0, 8]}, "
                + "\"empty\": {\"dtype\": \"BF16\", \"shape\": [0, 4], \"data_offsets\": [16, 16]}}   ", 16));
        assertEquals(List.of("b", "a", "empty"), List.copyOf(t.keySet()));
        assertEquals(2, t.get("b").numel());
        t.values().forEach(Tensor::close);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
        overflow 2^32 x 2^32 x 2    | {"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 2], "data_offsets": [0, 16]}} | 16 | more elements than 2^63
        overflow 2^62 x 4           | {"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}     | 16 | more elements than 2^63
        bytes overflow 2^62 F32     | {"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 16]}}        | 16 | more bytes than 2^63
        negative dimension          | {"a": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}                     | 16 | negative
        shape past 64 bits          | {"a": {"dtype": "F32", "shape": [18446744073709551616], "data_offsets": [0, 16]}}       | 16 | fit 64 bits
        overlapping offsets         | {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}} | 16 | overlap
        same range twice            | {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}} | 16 | overlap
        a gap                       | {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}} | 16 | a gap
        not starting at 0           | {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}                          | 16 | starts at byte 8
        data left over              | {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}                           | 16 | cover the data exactly
        past the end                | {"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}                          | 16 | the data has 16 bytes
        end before begin            | {"a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 8]}}                          | 16 | not a range
        negative offset             | {"a": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}                         | 16 | not a range
        size does not match shape   | {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}                          | 16 | hold 16 bytes
        duplicate tensor name       | {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}} | 16 | names 'a' twice
        duplicate field in an entry | {"a": {"dtype": "F32", "dtype": "F64", "shape": [4], "data_offsets": [0, 16]}}          | 16 | names 'dtype' twice
        metadata with a number      | {"__metadata__": {"format": 1}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}} | 16 | strings to strings
        metadata not an object      | {"__metadata__": ["pt"], "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}  | 16 | object of strings
        metadata key twice          | {"__metadata__": {"f": "a", "f": "b"}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}} | 16 | __metadata__ names 'f' twice
        duplicate metadata          | {"__metadata__": {}, "__metadata__": {}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}} | 16 | twice
        unknown dtype               | {"a": {"dtype": "F33", "shape": [4], "data_offsets": [0, 16]}}                          | 16 | unknown safetensors dtype
        missing data_offsets        | {"a": {"dtype": "F32", "shape": [4]}}                                                   | 16 | needs dtype, shape and data_offsets
        three offsets               | {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]}}                       | 16 | [begin, end]
        fractional dimension        | {"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 16]}}                        | 16 | integers
        nested too deep             | {"a": {"dtype": "F32", "shape": [[4]], "data_offsets": [0, 16]}}                        | 16 | list of integers
        not an object               | [1, 2]                                                                                  | 16 | does not start with '{'
        trailing garbage            | {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}} x                        | 16 | not valid
        NaN in strict JSON          | {"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 16]}}                        | 16 | not valid
        """)
    void refused(String name, String header, int data, String says) {
        String m = refusal(header, data);
        assertTrue(m.contains(says), name + ": " + m);
    }

    @Test
    void headerLengthsAreCheckedBeforeAnythingIsAllocated() {
        ByteBuffer b = ByteBuffer.allocateDirect(24).order(ByteOrder.LITTLE_ENDIAN);
        for (long claimed : new long[] {1_999_999_999L, Long.MAX_VALUE, -8, 17, 99_999_999}) {
            b.clear();
            b.putLong(0, claimed);
            String m = assertThrows(IOException.class, () -> TensorPayloads.fromSafetensors(b)).getMessage();
            assertTrue(m.contains("header length of " + claimed), m);
        }
    }

    @Test
    void invalidUtf8InTheHeaderIsRefused() {
        byte[] h = "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}, \"\u00ff\": 1}".getBytes(StandardCharsets.ISO_8859_1);
        ByteBuffer b = ByteBuffer.allocateDirect(8 + h.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).flip();
        assertTrue(assertThrows(IOException.class, () -> TensorPayloads.fromSafetensors(b)).getMessage().contains("not UTF-8"));
    }

    @Test
    void checkpointFilesAreHeldToTheSameRules() throws IOException {
        ByteBuffer bad = blob("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
                + "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 16);
        byte[] bytes = new byte[bad.remaining()];
        bad.get(bytes);
        Path f = Files.write(dir.resolve("model.safetensors"), bytes);
        assertTrue(assertThrows(IOException.class, () -> Safetensors.readHeader(f)).getMessage().contains("overlap"));
    }

    // ---- flattened buckets: the same rules for the manifest ----------------------------------

    static String manifestRefusal(int bucketBytes, TensorPayloads.FlatEntry... entries) {
        ByteBuffer b = ByteBuffer.allocateDirect(bucketBytes);
        return assertThrows(IOException.class, () -> TensorPayloads.fromFlatBuffer(b, List.of(entries))).getMessage();
    }

    static TensorPayloads.FlatEntry e(String name, long[] shape, long start, long end) {
        return new TensorPayloads.FlatEntry(name, "float32", shape, start, end);
    }

    @Test
    void flattenedBucketManifestsAreCheckedAsSafetensorsHeadersAre() throws IOException {
        assertTrue(manifestRefusal(16, e("a", new long[] {4294967296L, 4294967296L, 2}, 0, 16)).contains("2^63"));
        assertTrue(manifestRefusal(16, e("a", new long[] {-2, -2}, 0, 16)).contains("negative"));
        assertTrue(manifestRefusal(16, e("a", new long[] {4}, 0, 16), e("b", new long[] {2}, 8, 16)).contains("overlap"));
        assertTrue(manifestRefusal(16, e("a", new long[] {2}, 0, 8), e("b", new long[] {1}, 12, 16)).contains("gap"));
        assertTrue(manifestRefusal(16, e("a", new long[] {2}, 0, 8)).contains("cover the data exactly"));
        assertTrue(manifestRefusal(16, e("a", new long[] {8}, 0, 32)).contains("the data has 16 bytes"));
        assertTrue(manifestRefusal(16, e("a", new long[] {2}, 0, 8), e("a", new long[] {2}, 8, 16)).contains("twice"));
        Map<String, Tensor> ok = TensorPayloads.fromFlatBuffer(ByteBuffer.allocateDirect(16),
                List.of(e("b", new long[] {2}, 8, 16), e("a", new long[] {1, 2}, 0, 8)));
        assertEquals(2, ok.size());
        ok.values().forEach(Tensor::close);
    }
}
