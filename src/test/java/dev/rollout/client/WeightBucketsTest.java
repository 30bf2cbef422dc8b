package dev.rollout.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.rollout.model.Safetensors;
import dev.rollout.safetensors.SafetensorsWriter;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class WeightBucketsTest {
    private static SafetensorsWriter.Tensor bf16(int elements, int fill) {
        byte[] b = new byte[2 * elements];
        java.util.Arrays.fill(b, (byte) fill);
        return new SafetensorsWriter.Tensor("BF16", new long[] {elements}, ByteBuffer.wrap(b));
    }

    @Test
    void cutsInOrderBeforeATensorThatWouldOverflowAndPutsABigOneAlone() throws Exception {
        Map<String, SafetensorsWriter.Tensor> t = new LinkedHashMap<>();
        t.put("a", bf16(100, 1));   // 200 bytes
        t.put("b", bf16(150, 2));   // 300: a + b = 500 fit
        t.put("c", bf16(50, 3));    // 100: would make 600
        t.put("big", bf16(1000, 4));  // 2,000: over the limit, alone
        t.put("d", bf16(10, 5));
        WeightBuckets buckets = WeightBuckets.of(t, 500);
        assertEquals(4, buckets.size());
        assertEquals(List.of("a", "b"), buckets.names(0));
        assertEquals(List.of("c"), buckets.names(1));
        assertEquals(List.of("big"), buckets.names(2));
        assertEquals(List.of("d"), buckets.names(3));
        // every bucket is a safetensors body the server reads back, bytes intact
        for (int i = 0; i < buckets.size(); i++) {
            ByteBuffer body = ByteBuffer.wrap(buckets.encode(i));
            Map<String, Safetensors.Entry> header = Safetensors.readHeader(body);
            assertEquals(buckets.names(i), List.copyOf(header.keySet()));
            for (String name : header.keySet()) {
                Safetensors.Entry e = header.get(name);
                assertEquals("BF16", e.dtype());
                assertArrayEquals(t.get(name).shape(), e.shape());
                byte[] want = t.get(name).data().array(), got = new byte[(int) (e.end() - e.begin())];
                body.get((int) e.begin(), got);
                assertArrayEquals(want, got, name + "'s bytes");
            }
        }
    }

    @Test
    void refusesNothingToPushAndANonPositiveSize() {
        assertThrows(IllegalArgumentException.class, () -> WeightBuckets.of(Map.of(), 1 << 20));
        assertThrows(IllegalArgumentException.class, () -> WeightBuckets.of(Map.of("a", bf16(1, 0)), 0));
    }
}
