package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * The shapes a decode graph is captured at (DecodeGraphs): a step's batch goes up to its bucket,
 * its block table to a power of two of at least 16 blocks, so that captureAll's graphs for
 * contexts up to N tokens are exactly those the steps of such contexts look up.
 */
class DecodeGraphBucketsTest {
    @Test
    void blockTablesRoundUpToPowersOfTwoFromSixteen() {
        assertEquals(16, DecodeGraphs.blocksBucket(0));
        assertEquals(16, DecodeGraphs.blocksBucket(1));
        assertEquals(16, DecodeGraphs.blocksBucket(16));
        assertEquals(32, DecodeGraphs.blocksBucket(17));
        assertEquals(32, DecodeGraphs.blocksBucket(32));
        assertEquals(64, DecodeGraphs.blocksBucket(33));
        // 1,024 tokens of 16-token blocks: captureAll's default reaches the 64-block tables, and a
        // step of 1,024 tokens of context looks up the same bucket
        assertEquals(64, DecodeGraphs.blocksBucket((1024 + 15) / 16));
    }

    @Test
    void batchesRoundUpToTheirBucket() {
        assertEquals(1, DecodeGraphs.bucket(1));
        assertEquals(16, DecodeGraphs.bucket(11));
        assertEquals(24, DecodeGraphs.bucket(17));
        assertEquals(512, DecodeGraphs.bucket(500));
    }
}
