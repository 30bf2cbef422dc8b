package dev.rollout.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A body's native buffer is sized by the bytes that arrive, never by what the request claims. */
class NativeBytesTest {
    @Test
    void aClaimOfTwoGigabytesAllocatesAtMostTheFirstAllocation() throws IOException {
        try (NativeBytes b = new NativeBytes(1_999_999_999L, 2_147_483_000L)) {
            assertTrue(b.capacity() <= NativeBytes.FIRST_ALLOCATION, "allocated " + b.capacity());
            b.readFrom(Channels.newChannel(new ByteArrayInputStream(new byte[10])));
            assertEquals(10, b.size());
        }
    }

    @Test
    void growsAsBytesArriveAndKeepsThem() throws IOException {
        byte[] data = new byte[3 * (1 << 20) + 17];
        new Random(7).nextBytes(data);
        try (NativeBytes b = new NativeBytes(-1, 1 << 24)) {
            assertEquals(1 << 20, b.capacity(), "an unknown size starts at 1 MB");
            b.readFrom(Channels.newChannel(new ByteArrayInputStream(data)));
            assertTrue(b.capacity() <= 2L * data.length, "at most twice what arrived: " + b.capacity());
            ByteBuffer got = b.bytes();
            byte[] back = new byte[got.remaining()];
            got.get(back);
            assertArrayEquals(data, back);
        }
        try (NativeBytes b = new NativeBytes(-1, 1 << 24)) {
            for (int i = 0; i < data.length; i += 1000) b.append(data, i, Math.min(1000, data.length - i));
            ByteBuffer got = b.bytes();
            byte[] back = new byte[got.remaining()];
            got.get(back);
            assertArrayEquals(data, back);
        }
    }

    @Test
    void theLimitIsExactAndOneByteMoreIsRefused() throws IOException {
        try (NativeBytes b = new NativeBytes(-1, 100)) {
            b.readFrom(Channels.newChannel(new ByteArrayInputStream(new byte[100])));
            assertEquals(100, b.size());
        }
        try (NativeBytes b = new NativeBytes(100, 100)) {
            assertThrows(NativeBytes.TooLarge.class, () -> b.readFrom(Channels.newChannel(new ByteArrayInputStream(new byte[101]))));
        }
        try (NativeBytes b = new NativeBytes(-1, 100)) {
            assertThrows(NativeBytes.TooLarge.class, () -> b.append(new byte[101], 0, 101));
        }
    }
}
