package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A snapshot shares the sequence's token array instead of copying its output ids on the engine
 * thread (issue #20, R6), so what it reports must stay as it was while the sequence goes on.
 */
class SequenceSnapshotTest {
    private static Sequence sequence() {
        return new Sequence("r", 0, new int[] {1, 2, 3, 4}, SamplingParams.builder().maxNewTokens(500).build(), LogprobOptions.NONE,
                null, o -> { }, true, 0);
    }

    private static void generate(Sequence s, int token, String version) {
        s.tokens.add(token);
        s.noteVersion(version);
    }

    @Test
    void aSnapshotKeepsItsIdsWhileTheSequenceGrows() {
        Sequence s = sequence();
        for (int t = 0; t < 3; t++) generate(s, 100 + t, "v1");
        SequenceOutput early = s.snapshot("v1", System.nanoTime());
        for (int t = 3; t < 200; t++) generate(s, 100 + t, "v1");  // within the array, then into larger ones
        SequenceOutput late = s.snapshot("v1", System.nanoTime());
        assertEquals(3, early.completionTokens());
        assertArrayEquals(new int[] {100, 101, 102}, early.outputIds());
        assertSame(early.outputIds(), early.outputIds(), "copied once");
        assertEquals(200, late.completionTokens());
        for (int t = 0; t < 200; t++) assertEquals(100 + t, late.outputIds()[t]);
        assertSame(late.outputIds(), late.withText("x").outputIds(), "a snapshot with its text shares its ids");
    }

    @Test
    void versionSpansEndWhereTheNextBeginsAndTheLastAtTheOutputsEnd() {
        Sequence s = sequence();
        assertEquals(List.of(), s.snapshot("v1", System.nanoTime()).weightVersions());
        generate(s, 7, "v1");
        generate(s, 8, "v1");
        assertEquals(List.of(new SequenceOutput.VersionSpan("v1", 0, 2)), s.snapshot("v1", System.nanoTime()).weightVersions());
        generate(s, 9, "v2");
        generate(s, 10, "v3");
        generate(s, 11, "v3");
        assertEquals(List.of(new SequenceOutput.VersionSpan("v1", 0, 2), new SequenceOutput.VersionSpan("v2", 2, 3),
                new SequenceOutput.VersionSpan("v3", 3, 5)), s.snapshot("v3", System.nanoTime()).weightVersions());
    }

    @Test
    void aRunningSnapshotsLatencyIsTakenAtTheGivenClockAndAFinishedOnesAtItsEnd() {
        Sequence s = sequence();
        generate(s, 7, "v1");
        assertEquals(2.0, s.snapshot("v1", s.arrivalNanos + 2_000_000_000L).e2eLatency(), 1e-9);
        s.finishedNanos = s.arrivalNanos + 3_000_000_000L;
        assertEquals(3.0, s.snapshot("v1", s.arrivalNanos + 9_000_000_000L).e2eLatency(), 1e-9);
    }

    @Test
    void clearingDetachedLeavesTheOldArrayToItsHolders() {
        IntList l = IntList.of(new int[] {1, 2, 3});
        int[] held = l.backing();
        l.clearDetached();
        l.add(9);
        assertEquals(1, held[0], "written over a prefix someone holds");
        assertEquals(9, l.get(0));
        assertEquals(1, l.size());
    }
}
