package dev.rollout.constrain;

import java.util.Arrays;
import java.util.BitSet;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The token ids a sequence may take next, one bit each over the model's vocabulary (word
 * {@code id >>> 6}, bit {@code id & 63}: {@link BitSet}'s layout, and what a device mask is copied
 * from). Immutable: one mask is shared by every sequence in the same automaton state.
 */
public final class TokenMask {
    private static final AtomicLong SERIAL = new AtomicLong();
    private final long[] words;
    private final int size;
    private final int count;
    private final long id = SERIAL.incrementAndGet();

    TokenMask(long[] words, int size) {
        this.words = words;
        this.size = size;
        int c = 0;
        for (long w : words) c += Long.bitCount(w);
        this.count = c;
    }

    /**
     * A number no other mask of this process has: a cache of masks elsewhere (the sampler's copies
     * on the device) keys by it, neither hashing the bits nor holding the mask.
     */
    public long id() {
        return id;
    }

    /** The vocabulary size the mask covers. */
    public int size() {
        return size;
    }

    public boolean allows(int tokenId) {
        return tokenId >= 0 && tokenId < size && (words[tokenId >>> 6] & (1L << tokenId)) != 0;
    }

    /** How many tokens are allowed. */
    public int count() {
        return count;
    }

    /** How many 64-bit words hold the bits: {@code ceil(size / 64)}. */
    public int numWords() {
        return words.length;
    }

    /** A copy of the bits. */
    public long[] words() {
        return words.clone();
    }

    /** Copies the bits into {@code dst} at {@code offset}: one row of a batch's mask, without a copy per row. */
    public void copyTo(long[] dst, int offset) {
        System.arraycopy(words, 0, dst, offset, words.length);
    }

    public BitSet toBitSet() {
        return BitSet.valueOf(words);
    }

    /** The allowed ids, ascending. */
    public int[] ids() {
        return toBitSet().stream().toArray();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenMask m && m.size == size && Arrays.equals(m.words, words);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(words);
    }

    @Override
    public String toString() {
        return "TokenMask[" + count + " of " + size + "]";
    }
}
