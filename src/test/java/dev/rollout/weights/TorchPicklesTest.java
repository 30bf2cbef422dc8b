package dev.rollout.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.rollout.model.CudaIpc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Real payloads from torch's ForkingPickler (tools/reference/make_pickles.py, run with torch 2.11
 * on the GPU machine): every SGLang and veRL shape is read into IPC handles, and known exploit
 * pickles are refused without anything being built.
 */
class TorchPicklesTest {
    static JsonObject fixture;

    @BeforeAll
    static void load() throws IOException {
        fixture = JsonParser.parseString(Files.readString(Path.of("src/test/resources/pickles/torch-pickles.json"))).getAsJsonObject();
    }

    static byte[] payload(String kind) {
        return Base64.getDecoder().decode(fixture.getAsJsonObject("payloads").get(kind).getAsString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"plain", "sglang", "verl"})
    void namedTensorListsBecomeIpcHandles(String kind) throws IOException {
        TorchPickles.Decoded d = TorchPickles.decode(payload(kind), 0);
        assertNull(d.flat());
        List<CudaIpc.Handle> t = d.tensors();
        assertEquals(List.of("w1", "w2", "w3"), t.stream().map(CudaIpc.Handle::name).toList());
        assertEquals(ScalarType.BFloat16, t.get(0).dtype());
        assertArrayEquals(new long[] {3, 4}, t.get(0).shape());
        assertArrayEquals(new long[] {4, 1}, t.get(0).stride());
        assertEquals(ScalarType.Float, t.get(1).dtype());
        assertArrayEquals(new long[] {5}, t.get(1).shape());
        assertEquals(7, t.get(1).storageOffset(), "w2 is a view starting at element 7 of its storage");
        assertArrayEquals(new long[] {1, 3}, t.get(2).stride(), "w3 is a transposed, non-contiguous view");
        for (CudaIpc.Handle h : t) {
            assertEquals(66, h.memHandle().length);
            assertEquals('c', h.memHandle()[1], "a cudaMalloc block");
            assertTrue(h.eventSyncRequired());
            if (kind.equals("plain")) assertEquals(0, h.deviceIndex());
            else assertEquals(fixture.get("device_uuid").getAsString(), h.deviceUuid());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"flattened_bucket"})
    void flattenedBuckets(String kind) throws IOException {
        TorchPickles.Decoded d = TorchPickles.decode(payload(kind), 0);
        assertEquals(ScalarType.Byte, d.flat().dtype());
        assertEquals(3, d.flatEntries().size());
        assertEquals("w1", d.flatEntries().get(0).name());
        assertEquals("BF16", d.flatEntries().get(0).dtype());
        assertEquals(0, d.flatEntries().get(0).start());
        assertEquals(24, d.flatEntries().get(0).end());
        assertEquals(d.flat().shape()[0], d.flatEntries().get(2).end());
    }

    @ParameterizedTest
    @ValueSource(strings = {"os_system", "builtins_eval", "subprocess", "torch_load", "nested_in_tensor_list"})
    void exploitsAreRefused(String name) {
        byte[] evil = Base64.getDecoder().decode(fixture.getAsJsonObject("exploits").get(name).getAsString());
        IOException e = assertThrows(IOException.class, () -> TorchPickles.decode(evil, 0));
        assertTrue(e.getMessage().contains("is not allowed"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"verl"})
    void aRankWithoutAValueIsRefused(String kind) {
        IOException e = assertThrows(IOException.class, () -> TorchPickles.decode(payload(kind), 1));
        assertTrue(e.getMessage().contains("no value for rank 1"), e.getMessage());
    }

    /** The pickle library allocates a byte string's claimed length first: a 12-byte pickle claiming 2 GB must not allocate it. */
    @ParameterizedTest
    @ValueSource(ints = {0x42, 0x58, 0x8e, 0x96})  // BINBYTES, BINUNICODE, BINBYTES8, BYTEARRAY8
    void lengthsInAPickleAreCheckedAgainstItsBytes(int opcode) {
        boolean wide = opcode >= 0x8e;
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(3 + (wide ? 8 : 4) + 3).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 0x80).put((byte) 5).put((byte) opcode);
        if (wide) b.putLong(2_000_000_000L); else b.putInt(2_000_000_000);
        b.put((byte) 'a').put((byte) 'b').put((byte) '.');
        IOException e = assertThrows(IOException.class, () -> TorchPickles.decode(b.array(), 0));
        assertTrue(e.getMessage().contains("claims 2000000000 bytes, but 3 are left"), e.getMessage());
    }
}
