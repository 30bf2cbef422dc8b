package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Paged-KV bookkeeping and the prefix cache, without any tensors. */
class BlockManagerTest {
    static Sequence seq(int... prompt) {
        return new Sequence("s", 0, prompt, SamplingParams.GREEDY, LogprobOptions.NONE, null, out -> {}, false, 0);
    }

    static int[] range(int from, int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = from + i;
        return a;
    }

    /** Allocates and "computes" the whole prompt, as a prefill would. */
    static void prefill(BlockManager bm, Sequence s) {
        List<Integer> hits = bm.findCached(s, s.numTokens() - 1);
        bm.acquire(s, hits);
        bm.appendSlots(s, s.numTokens() - s.numComputed);
        s.numComputed = s.numTokens();
        bm.commitFullBlocks(s);
    }

    @Test
    void allocatesWholeBlocksAndFreesThem() {
        BlockManager bm = new BlockManager(8, 4);
        Sequence s = seq(range(0, 10));
        prefill(bm, s);
        assertEquals(3, s.blockTable.size(), "10 tokens need 3 blocks of 4");
        assertEquals(5, bm.numFreeBlocks());
        assertTrue(bm.canAppend(s, 2));   // fills block 3
        assertTrue(bm.canAppend(s, 22));  // 32 tokens = 8 blocks
        assertFalse(bm.canAppend(s, 23));
        bm.free(s);
        assertEquals(8, bm.numFreeBlocks());
        assertEquals(0, bm.numUsedBlocks());
    }

    @Test
    void sharedPrefixIsFoundAndRefCounted() {
        BlockManager bm = new BlockManager(16, 4);
        Sequence a = seq(range(100, 13));
        prefill(bm, a);
        assertEquals(3, bm.numCachedBlocks(), "three full blocks are published");

        Sequence b = seq(concat(range(100, 8), range(500, 6)));   // shares two blocks, then differs
        List<Integer> hits = bm.findCached(b, b.numTokens() - 1);
        assertEquals(List.of(a.blockTable.get(0), a.blockTable.get(1)), hits);
        int free = bm.numFreeBlocks();
        bm.acquire(b, hits);
        assertEquals(8, b.numComputed, "the shared prefix counts as computed");
        bm.appendSlots(b, b.numTokens() - b.numComputed);
        assertEquals(free - 2, bm.numFreeBlocks(), "only the two new blocks are taken");
        assertEquals(a.blockTable.get(0), b.blockTable.get(0));

        bm.free(a);
        // a's first two blocks are still held by b; its third is free but still findable
        Sequence c = seq(range(100, 13));
        assertEquals(3, bm.findCached(c, 12).size());
        bm.free(b);
        assertEquals(16, bm.numFreeBlocks());
        assertEquals(3, bm.findCached(c, 12).size(), "freed blocks keep their contents until reused");
    }

    @Test
    void aFullHitStillLeavesOneTokenToCompute() {
        BlockManager bm = new BlockManager(8, 4);
        prefill(bm, seq(range(0, 8)));
        Sequence same = seq(range(0, 8));
        assertEquals(1, bm.findCached(same, same.numTokens() - 1).size(), "7 tokens at most: one block");
    }

    @Test
    void reuseEvictsTheLeastRecentlyFreedFirst() {
        BlockManager bm = new BlockManager(4, 2);
        Sequence a = seq(range(0, 4));
        prefill(bm, a);
        bm.free(a);                    // 2 cached blocks now on the free list
        Sequence other = seq(range(50, 4));
        prefill(bm, other);            // takes the two never-used blocks first
        assertEquals(2, bm.findCached(seq(range(0, 5)), 4).size(), "a's blocks survive while never-used ones remain");
        Sequence big = seq(range(90, 3));
        prefill(bm, big);              // needs both remaining blocks: a's are evicted
        assertEquals(0, bm.findCached(seq(range(0, 5)), 4).size());
    }

    @Test
    void aDifferentPrefixNeverMatchesEvenWithEqualBlockTokens() {
        BlockManager bm = new BlockManager(8, 2);
        prefill(bm, seq(1, 2, 3, 4, 9));
        // same second block (3, 4) behind a different first block
        assertEquals(0, bm.findCached(seq(7, 8, 3, 4, 9), 4).size());
    }

    @Test
    void resetWithANewSaltForgetsEverything() {
        BlockManager bm = new BlockManager(8, 2);
        prefill(bm, seq(1, 2, 3, 4, 5));
        bm.resetPrefixCache(42);
        assertEquals(0, bm.numCachedBlocks());
        assertEquals(0, bm.findCached(seq(1, 2, 3, 4, 5), 4).size());
    }

    static int[] concat(int[] a, int[] b) {
        int[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
    @Test
    void aRetainedBlockStaysCachedThroughEvictionUntilReleased() {
        BlockManager bm = new BlockManager(4, 4);
        Sequence a = seq(range(100, 9));
        prefill(bm, a);
        int first = a.blockTable.get(0);
        bm.retain(first);       // a session pins the first block
        bm.free(a);
        assertEquals(3, bm.numFreeBlocks(), "the pinned block is not free");
        Sequence b = seq(range(500, 12));
        prefill(bm, b);         // takes every free block: the unpinned ones are evicted
        assertEquals(0, bm.numFreeBlocks());
        bm.free(b);
        assertEquals(List.of(first), bm.findCached(seq(range(100, 9)), 8), "the pinned block is still found, the others not");
        bm.release(first);
        assertEquals(4, bm.numFreeBlocks());
        assertTrue(bm.isCached(first), "released, it stays findable until reused");
        org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> bm.release(first), "released twice");
    }
}
