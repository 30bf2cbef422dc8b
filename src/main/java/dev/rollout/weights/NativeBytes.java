package dev.rollout.weights;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import org.bytedeco.javacpp.BytePointer;

/**
 * Bytes written into native memory, off the Java heap, as a request body streams in: a weight
 * push of a gigabyte must not sit on the heap. The buffer starts at the size the caller expects,
 * but never larger than {@link #FIRST_CHUNK}, and doubles only as bytes actually arrive: a size
 * a client merely claims (a Content-Length, a header) allocates nothing it does not send.
 */
public final class NativeBytes extends OutputStream {
    /** The most allocated before any byte has arrived. */
    static final long FIRST_CHUNK = 64L << 20;

    /** More bytes than the limit. */
    public static final class TooLarge extends IOException {
        TooLarge(long limit) {
            super("more than " + limit + " bytes");
        }
    }

    private final long limit;
    private BytePointer buffer;
    private long size;

    /**
     * @param expected how many bytes the caller expects (a hint, not trusted)
     * @param limit    the most this may hold; one more byte is {@link TooLarge}
     */
    public NativeBytes(long expected, long limit) {
        this.limit = limit;
        buffer = new BytePointer(Math.max(16, Math.min(Math.min(expected, limit), FIRST_CHUNK)));
    }

    @Override
    public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        if (size + len > buffer.capacity()) {
            if (size + len > limit) throw new TooLarge(limit);
            BytePointer grown = new BytePointer(Math.min(Math.max(buffer.capacity() * 2, size + len), limit));
            grown.put(buffer.position(0).limit(size));
            buffer.close();
            buffer = grown;
        }
        buffer.position(size).put(b, off, len);
        size += len;
    }

    /** What was written, as a direct buffer over the native memory; valid until {@link #close()}. */
    public ByteBuffer bytes() {
        return buffer.position(0).limit(size).asByteBuffer();
    }

    public long size() {
        return size;
    }

    @Override
    public void close() {
        buffer.close();
    }
}
