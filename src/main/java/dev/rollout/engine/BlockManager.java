package dev.rollout.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * Bookkeeping for the paged KV cache: which blocks are free, who holds each block, and which
 * full blocks hold which token prefix (the prefix cache). Pure Java; the memory itself is the
 * model runner's.
 *
 * <p>A full block is keyed by a hash chained over every token before it, so a hit means the
 * whole prefix matches; the block's own tokens and its parent's hash are compared too, so a hash
 * collision can never serve wrong KV. Freed blocks keep their contents and stay findable until
 * they are reused, least recently freed first.
 */
public final class BlockManager {
    private final int blockSize;
    private final int[] refCount;
    private final long[] hash;        // chained hash of a full cached block
    private final long[] parentHash;
    private final boolean[] hashed;
    private final int[][] blockTokens;
    /** Blocks nobody holds, in the order they were freed; the oldest are reused first. */
    private final LinkedHashSet<Integer> free = new LinkedHashSet<>();
    private final Map<Long, Integer> cached = new HashMap<>();
    private long salt;

    public BlockManager(int numBlocks, int blockSize) {
        if (numBlocks <= 0 || blockSize <= 0) throw new IllegalArgumentException("numBlocks and blockSize must be positive");
        this.blockSize = blockSize;
        refCount = new int[numBlocks];
        hash = new long[numBlocks];
        parentHash = new long[numBlocks];
        hashed = new boolean[numBlocks];
        blockTokens = new int[numBlocks][];
        for (int i = 0; i < numBlocks; i++) free.add(i);
    }

    public int blockSize() {
        return blockSize;
    }

    public int numBlocks() {
        return refCount.length;
    }

    public int numFreeBlocks() {
        return free.size();
    }

    /** Blocks held by at least one sequence. */
    public int numUsedBlocks() {
        return refCount.length - free.size();
    }

    int blocksFor(int numTokens) {
        return (numTokens + blockSize - 1) / blockSize;
    }

    /**
     * The cached blocks that hold {@code seq}'s leading tokens, covering at most
     * {@code maxTokens} tokens.
     */
    List<Integer> findCached(Sequence seq, int maxTokens) {
        List<Integer> hits = new ArrayList<>();
        long h = root(seq);
        for (int b = 0; (b + 1) * blockSize <= maxTokens; b++) {
            int[] toks = seq.tokens.toArray(b * blockSize, (b + 1) * blockSize);
            long parent = h;
            h = chain(parent, toks);
            Integer id = cached.get(h);
            if (id == null || parentHash[id] != parent || !Arrays.equals(blockTokens[id], toks)) break;
            hits.add(id);
        }
        return hits;
    }

    /** The hash a sequence's chain starts from: the cache's salt, in the sequence's namespace. */
    private long root(Sequence seq) {
        return salt ^ seq.cacheNamespace;
    }

    /** Can {@code seq} take {@code hits} from the cache and then grow to {@code numTokens}? */
    boolean canAllocate(List<Integer> hits, int numTokens) {
        int hitsOnFreeList = 0;
        for (int id : hits) if (refCount[id] == 0) hitsOnFreeList++;
        return blocksFor(numTokens) - hits.size() <= free.size() - hitsOnFreeList;
    }

    /** Gives {@code seq} the cached blocks; their tokens count as computed. */
    void acquire(Sequence seq, List<Integer> hits) {
        for (int id : hits) {
            if (refCount[id]++ == 0) free.remove(id);
            seq.blockTable.add(id);
        }
        seq.numComputed = hits.size() * blockSize;
        seq.numHashedBlocks = hits.size();
        seq.lastBlockHash = hits.isEmpty() ? root(seq) : hash[hits.get(hits.size() - 1)];
    }

    /** Can {@code seq} compute {@code n} more tokens with the free blocks left? */
    boolean canAppend(Sequence seq, int n) {
        return blocksFor(seq.numComputed + n) - seq.blockTable.size() <= free.size();
    }

    /** Adds blocks to {@code seq} so that {@code n} more tokens have slots. */
    void appendSlots(Sequence seq, int n) {
        int needed = blocksFor(seq.numComputed + n) - seq.blockTable.size();
        for (int i = 0; i < needed; i++) {
            Iterator<Integer> it = free.iterator();
            int id = it.next();
            it.remove();
            if (hashed[id]) {
                cached.remove(hash[id], id);
                hashed[id] = false;
                blockTokens[id] = null;
            }
            refCount[id] = 1;
            seq.blockTable.add(id);
        }
    }

    /** Enters the blocks that {@code seq} has filled and computed into the prefix cache. */
    void commitFullBlocks(Sequence seq) {
        int full = Math.min(seq.numComputed, seq.numTokens()) / blockSize;
        for (int b = seq.numHashedBlocks; b < full; b++) {
            int id = seq.blockTable.get(b);
            int[] toks = seq.tokens.toArray(b * blockSize, (b + 1) * blockSize);
            long h = chain(seq.lastBlockHash, toks);
            if (!hashed[id]) {
                hashed[id] = true;
                hash[id] = h;
                parentHash[id] = seq.lastBlockHash;
                blockTokens[id] = toks;
                cached.putIfAbsent(h, id);
            }
            seq.lastBlockHash = h;
            seq.numHashedBlocks = b + 1;
        }
    }

    /**
     * Holds {@code id} for someone other than a sequence (a session's pin): while held, the block
     * is never on the free list, so its cached prefix cannot be evicted. Each call needs one
     * {@link #release}.
     */
    void retain(int id) {
        if (refCount[id]++ == 0) free.remove(id);
    }

    /** Gives back one {@link #retain}; a block nobody holds any more joins the free list, findable until reused. */
    void release(int id) {
        if (refCount[id] <= 0) throw new IllegalStateException("block " + id + " is not held");
        if (--refCount[id] == 0) free.add(id);
    }

    /** Whether {@code id} still holds a findable prefix (a prefix-cache reset forgets every block). */
    boolean isCached(int id) {
        if (!hashed[id]) return false;
        Integer holder = cached.get(hash[id]);
        return holder != null && holder == id;
    }

    /** Returns {@code seq}'s blocks; its last blocks become the first to be reused. */
    void free(Sequence seq) {
        for (int i = seq.blockTable.size() - 1; i >= 0; i--) {
            int id = seq.blockTable.get(i);
            if (--refCount[id] == 0) free.add(id);
        }
        seq.blockTable.clear();
        seq.numHashedBlocks = 0;
    }

    /**
     * Forgets every cached prefix. Blocks held by running sequences keep their contents but are
     * no longer findable; {@code newSalt} keys everything computed from now on apart (a new
     * weight version must never match KV computed under the old one).
     */
    public void resetPrefixCache(long newSalt) {
        cached.clear();
        Arrays.fill(hashed, false);
        Arrays.fill(blockTokens, null);
        salt = newSalt;
    }

    /** Number of distinct prefixes that can currently be matched. */
    public int numCachedBlocks() {
        return cached.size();
    }

    private static long chain(long parent, int[] tokens) {
        long h = parent ^ 0x9E3779B97F4A7C15L;
        for (int t : tokens) {
            h ^= t;
            h *= 0x100000001B3L;
            h ^= h >>> 29;
        }
        return h * 0xBF58476D1CE4E5B9L ^ (h >>> 31);
    }
}
