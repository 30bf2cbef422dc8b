package dev.rollout.weights;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * A request body's bytes in native memory, grown only as bytes actually arrive. A size that a
 * request announces (Content-Length, a base64 length) is a hint, never an allocation: an earlier
 * fuzz run took the server down by claiming 2 GB in a 10-byte body, and the server allocated
 * the 2 GB first. The first allocation is at most {@link #FIRST_ALLOCATION}; after that the
 * capacity doubles, so memory stays within twice what was received.
 *
 * <p>The memory is malloc'd and grown with realloc: glibc (and jemalloc) move large blocks by
 * remapping pages, so growing a 1 GB push from 64 MB copies little or nothing. It is freed by
 * {@link #close()}.
 */
public final class NativeBytes extends OutputStream {
    /** What a body may have allocated before any of it arrived. */
    public static final long FIRST_ALLOCATION = 64L << 20;

    /** More bytes than the limit arrived. */
    public static final class TooLarge extends IOException {
        public final long limit;

        TooLarge(long limit) {
            super("the body is larger than the limit of " + limit + " bytes");
            this.limit = limit;
        }
    }

    private final long limit;
    private final long expected;
    private Pointer memory;
    private BytePointer view;
    private long capacity, size;

    /**
     * @param expected how many bytes the request says will come, or -1; only a hint
     * @param limit    the most bytes this body may hold
     */
    public NativeBytes(long expected, long limit) throws IOException {
        this.limit = limit;
        this.expected = expected;
        long first = Math.max(16, Math.min(expected > 0 ? expected : 1 << 20, Math.min(FIRST_ALLOCATION, limit)));
        memory = Pointer.malloc(first);
        if (memory == null || memory.isNull()) throw new IOException("could not allocate " + first + " bytes of native memory");
        capacity = first;
    }

    /** Room for {@code more} bytes past the current size, or TooLarge past the limit. */
    private void reserve(long more) throws IOException {
        long needed = size + more;
        if (needed > limit) throw new TooLarge(limit);
        if (needed <= capacity) return;
        long grown = Math.max(needed, Math.min(capacity * 2, limit));
        if (expected >= needed && expected < grown) grown = expected;  // the announced size, once the bytes show it may be true
        Pointer p = Pointer.realloc(memory, grown);
        if (p == null || p.isNull()) throw new IOException("could not allocate " + grown + " bytes of native memory");
        memory = p;
        capacity = grown;
        view = null;
    }

    @Override
    public void write(int b) throws IOException {
        append(new byte[] {(byte) b}, 0, 1);
    }

    /** As {@link #append}: a streaming decoder (Jackson's base64) writes here. */
    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        append(b, off, len);
    }

    public void append(byte[] b, int off, int len) throws IOException {
        reserve(len);
        view().position(size).put(b, off, len);
        size += len;
    }

    /** Reads {@code in} to its end. */
    public void readFrom(ReadableByteChannel in) throws IOException {
        while (true) {
            if (size == capacity) {
                if (size == limit) {  // full: the body may end exactly here
                    if (in.read(ByteBuffer.allocate(1)) < 0) return;
                    throw new TooLarge(limit);
                }
                reserve(Math.min(capacity, limit - size));
            }
            int n = in.read(view().position(size).limit(capacity).asByteBuffer());
            if (n < 0) return;
            size += n;
            if (size > limit) throw new TooLarge(limit);
        }
    }

    public long size() {
        return size;
    }

    /** What is allocated now. */
    long capacity() {
        return capacity;
    }

    /** The bytes so far, as a direct buffer over this memory: valid until the next write or close. */
    public ByteBuffer bytes() {
        return view().position(0).limit(size).asByteBuffer();
    }

    /** A pointer over the memory, made again only after a realloc: Jackson writes a push in 8 KB pieces. */
    private BytePointer view() {
        if (view == null) view = new BytePointer(memory).capacity(capacity);
        return view;
    }

    @Override
    public void close() {
        if (memory != null) Pointer.free(memory);
        memory = null;
        view = null;
    }
}
