package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Sessions on the real engine over the small random Qwen3 fixture (blocks of 4 tokens, 64 blocks,
 * greedy): a turn gets its parent's history before its input, reuses the parent's KV (the
 * structural check standing in for SGLang's text comparisons), keeps it pinned against eviction
 * within its capacity, and every invalid turn is refused before anything changes.
 */
class SessionsTest {
    private EngineHarness h;

    @BeforeEach
    void engine() throws Exception {
        h = EngineHarness.fixture("qwen3", EngineHarness.smallConfig());
    }

    private static SamplingParams greedy(int maxNew) {
        return SamplingParams.builder().temperature(0).maxNewTokens(maxNew).ignoreEos(true).build();
    }

    private static int[] tokens(int from, int n) {
        return IntStream.range(from, from + n).map(i -> 2 + i % 500).toArray();
    }

    private static int[] concat(int[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToInt(java.util.Arrays::stream).toArray();
    }

    private Sequence seq(String rid, int[] prompt, SamplingParams p, LogprobOptions lp) {
        return new Sequence(rid, 0, prompt, p, lp, null, out -> {
            if (out.finished()) h.finished.put(out.rid(), out);
        }, false, 42);
    }

    /** Submits one turn as the loop would, and runs the engine until it is done. */
    private SequenceOutput turn(String rid, int[] input, int maxNew, SessionTurn t) {
        return turn(rid, input, greedy(maxNew), LogprobOptions.NONE, t);
    }

    private SequenceOutput turn(String rid, int[] input, SamplingParams p, LogprobOptions lp, SessionTurn t) {
        Sequence s = seq(rid, input, p, lp);
        h.engine.admit(new EngineCommand.Generate(List.of(s), t == null ? Map.of() : Map.of(rid, t)));
        h.runToCompletion();
        return h.finished.get(rid);
    }

    private Sessions sessions() {
        return h.engine.sessions();
    }

    private String open(long capacity) {
        return sessions().open(null, capacity, null, System.nanoTime());
    }

    private static SessionTurn append(String sid, String parent) {
        return new SessionTurn(sid, parent, 0, false, false);
    }

    @Test
    void aSecondTurnReusesTheFirstTurnsKvAndGeneratesWhatTheWholeHistoryGivesAFreshRequest() {
        String sid = open(120);
        int[] p1 = tokens(0, 10), c2 = tokens(100, 5);
        SequenceOutput t1 = turn("t1", p1, 6, append(sid, null));
        LogprobOptions lp = new LogprobOptions(true, -1, 0, null);
        SequenceOutput t2 = turn("t2", c2, greedy(6), lp, append(sid, "t1"));
        int history = p1.length + t1.outputIds().length;
        assertEquals(history + c2.length, t2.promptTokens(), "the second turn's prompt is the first's prompt and output, then its own");
        // the first turn computed all but its last sampled token: its full blocks are the second turn's cache hits
        assertEquals((history - 1) / 4 * 4, t2.cachedTokens(), "the first turn's KV is reused, block by block");

        assertTrue(h.engine.flushCache());
        SequenceOutput fresh = turn("fresh", concat(p1, t1.outputIds(), c2), greedy(6), lp, null);
        assertEquals(0, fresh.cachedTokens(), "the control computes everything");
        assertArrayEquals(fresh.outputIds(), t2.outputIds(), "greedy: the session turn continues exactly as the whole history does");
        for (int i = 0; i < fresh.outputIds().length; i++)
            assertEquals(fresh.outputLogprobs().get(i).logprob(), t2.outputLogprobs().get(i).logprob(), 1e-4);
    }

    @Test
    void aSessionsPinsSurviveTrafficThatEvictsEverythingElse() {
        String sid = open(120);
        int[] p1 = tokens(0, 17);
        SequenceOutput t1 = turn("t1", p1, 4, append(sid, null));
        turn("plain", tokens(300, 17), 4, null);   // a request outside any session: its blocks are only cached
        long pinned = sessions().pinnedTokens(sid);
        assertEquals((p1.length + 4 - 1) / 4 * 4, pinned, "the first turn's computed full blocks are pinned");

        // other traffic cycles every free block through the cache, twice over
        for (int i = 0; i < 12; i++) turn("flood" + i, tokens(1000 + 40 * i, 39), 1, null);

        SequenceOutput again = turn("plain-again", concat(tokens(300, 17), t1.outputIds()), 1, null);
        assertEquals(0, again.cachedTokens(), "control: without a pin the flood evicted the plain request's prefix");
        SequenceOutput t2 = turn("t2", tokens(200, 3), 2, append(sid, "t1"));
        assertEquals(pinned, t2.cachedTokens(), "the session's history was still cached: its pins held");
    }

    @Test
    void offsetCutsTheHistoryAsAPythonSliceAndReplaceForgetsTheBranchesBuiltOnTheParent() {
        String sid = open(120);
        int[] p1 = tokens(0, 9);
        SequenceOutput t1 = turn("t1", p1, 5, append(sid, null));
        int[] h1 = concat(p1, t1.outputIds());

        // offset -1, as SGLang's test sends: the history without its last token (whose KV was never computed)
        SequenceOutput t2 = turn("t2", tokens(50, 3), 2, new SessionTurn(sid, "t1", -1, true, false));
        assertEquals(h1.length - 1 + 3, t2.promptTokens());
        assertEquals(sessions().rids(sid), Set.of("t1", "t2"));

        // back to t1 with replace: t2 is forgotten
        SequenceOutput t3 = turn("t3", tokens(60, 3), 2, new SessionTurn(sid, "t1", 4, true, false));
        assertEquals(4 + 3, t3.promptTokens(), "a positive offset keeps that many tokens");
        assertEquals(sessions().rids(sid), Set.of("t1", "t3"));
        IllegalArgumentException gone = assertThrows(IllegalArgumentException.class,
                () -> turn("t4", tokens(70, 3), 2, append(sid, "t2")));
        assertTrue(gone.getMessage().contains("'t2' is not a request of session"), gone.getMessage());

        // drop_previous_output: the parent's prompt only
        SequenceOutput t5 = turn("t5", tokens(80, 2), 2, new SessionTurn(sid, "t1", 0, false, true));
        assertEquals(p1.length + 2, t5.promptTokens());
        assertEquals(p1.length / 4 * 4, t5.cachedTokens());

        // replace with no rid starts the session over
        turn("root2", tokens(90, 3), 1, new SessionTurn(sid, null, 0, true, false));
        assertEquals(sessions().rids(sid), Set.of("root2"));
    }

    @Test
    void replacingARunningParentCutsItShortAndContinuesFromWhatItHadMade() {
        String sid = open(120);
        Sequence parent = seq("long", tokens(0, 8), greedy(40), LogprobOptions.NONE);
        h.engine.admit(new EngineCommand.Generate(List.of(parent), Map.of("long", append(sid, null))));
        for (int i = 0; i < 6; i++) h.engine.step();
        int made = parent.numOutputTokens();
        assertTrue(made > 0 && made < 40);

        // appending to a request that still runs is refused; replacing it cuts it short
        assertThrows(IllegalArgumentException.class, () -> h.engine.admit(new EngineCommand.Generate(
                List.of(seq("x", tokens(30, 2), greedy(1), LogprobOptions.NONE)), Map.of("x", append(sid, "long")))));
        SequenceOutput child = turn("child", tokens(40, 2), 3, new SessionTurn(sid, "long", 0, true, false));
        SequenceOutput cut = h.finished.get("long");
        assertEquals(FinishReason.Type.ABORT, cut.finishReason().type());
        assertEquals(made, cut.outputIds().length, "nothing was generated after the replace");
        assertEquals(8 + made + 2, child.promptTokens());
        assertTrue(child.cachedTokens() >= (8 + made - 1) / 4 * 4 - 4, "the cut parent's KV is reused: " + child.cachedTokens());
    }

    @Test
    void invalidTurnsAreRefusedAndChangeNothing() {
        String sid = open(100);
        turn("a", tokens(0, 5), 2, append(sid, null));
        long pinned = sessions().pinnedTokens(sid);
        int used = h.engine.stats().usedBlocks();

        assertThrows(IllegalArgumentException.class, () -> turn("b", tokens(9, 2), 1, append("nope", null)),
                "an unknown session");
        assertThrows(IllegalArgumentException.class, () -> turn("b", tokens(9, 2), 1, append(sid, "zzz")), "an unknown rid");
        assertThrows(IllegalArgumentException.class, () -> turn("a", tokens(9, 2), 1, append(sid, "a")), "a rid used twice");
        IllegalArgumentException tooLong = assertThrows(IllegalArgumentException.class,
                () -> turn("b", tokens(9, 250), 1, append(sid, "a")));
        assertTrue(tooLong.getMessage().contains("context length"), tooLong.getMessage());
        IllegalArgumentException start = assertThrows(IllegalArgumentException.class,
                () -> turn("b", tokens(9, 2), greedy(1), new LogprobOptions(true, 9, 0, null), append(sid, "a")));
        assertTrue(start.getMessage().contains("logprob_start_len (9)"), start.getMessage());
        // logprob_start_len counts the session's history: 8 is inside a 5 + 2 + 2 token prompt
        turn("c", tokens(9, 2), greedy(1), new LogprobOptions(true, 8, 0, null), append(sid, "a"));

        assertEquals(Set.of("a", "c"), sessions().rids(sid));
        assertTrue(sessions().pinnedTokens(sid) >= pinned);
        assertTrue(h.engine.stats().usedBlocks() >= used);
        assertTrue(sessions().close(sid));
        assertFalse(sessions().close(sid), "closing twice: it was not open");
        assertEquals(0, h.engine.stats().usedBlocks(), "closing gave every pinned block back");
        assertEquals(0, sessions().numPinnedBlocks());
        assertThrows(IllegalArgumentException.class, () -> turn("d", tokens(9, 2), 1, append(sid, "a")), "a closed session");
    }

    @Test
    void openingIsBoundedByTheServersLimits() {
        sessions().limit(new SessionLimits(2, 100, 4096));
        String a = sessions().open("mine", 60, null, 0);
        assertEquals("mine", a, "the client's id is kept");
        assertThrows(IllegalArgumentException.class, () -> sessions().open("mine", 10, null, 0), "an id that is open");
        assertThrows(IllegalArgumentException.class, () -> sessions().open(null, 101, null, 0), "more than one session may pin");
        SessionLimitExceeded full = assertThrows(SessionLimitExceeded.class, () -> sessions().open(null, 41, null, 0));
        assertTrue(full.getMessage().contains("at most 40"), full.getMessage());
        String b = sessions().open(null, 40, null, 0);
        assertEquals(32, b.length(), "a new id is 32 hex digits, as SGLang's uuid4().hex");
        assertThrows(SessionLimitExceeded.class, () -> sessions().open(null, 0, null, 0), "max-open");
        sessions().close(a);
        sessions().open(null, 60, null, 0);
    }

    @Test
    void aSessionPinsNoMoreThanItsCapacity() {
        String sid = open(8);  // two blocks of 4
        turn("a", tokens(0, 30), 2, append(sid, null));
        assertEquals(8, sessions().pinnedTokens(sid));
        SequenceOutput b = turn("b", tokens(50, 2), 1, append(sid, "a"));
        assertTrue(b.cachedTokens() >= 8, "the pinned prefix (at least) is reused");
    }

    @Test
    void pinsGiveWayWhenAWaitingRequestCouldNotRunOtherwise() {
        sessions().limit(new SessionLimits(8, 256, 4096));
        String s1 = open(128), s2 = open(128);
        turn("a", tokens(0, 100), 2, append(s1, null));
        turn("b", tokens(200, 100), 2, append(s2, null));
        assertEquals(200, sessions().pinnedTokens(s1) + sessions().pinnedTokens(s2));
        // 64 blocks of 4: 50 pinned, and this prompt needs 51 more
        SequenceOutput big = turn("big", tokens(400, 200), 2, null);
        assertEquals(2, big.outputIds().length, "it ran instead of waiting for the sessions");
        assertEquals(0, sessions().pinnedTokens(s1), "the least recently used session gave way first");
    }

    @Test
    void aPrefixCacheResetDropsThePinsAndTheNextTurnRecomputes() {
        String sid = open(100);
        SequenceOutput t1 = turn("a", tokens(0, 10), 3, append(sid, null));
        assertTrue(sessions().pinnedTokens(sid) > 0);
        h.engine.setWeightVersion("v2");
        assertEquals(0, sessions().pinnedTokens(sid));
        assertEquals(0, h.engine.stats().usedBlocks());
        SequenceOutput t2 = turn("b", tokens(20, 2), 2, append(sid, "a"));
        assertEquals(10 + t1.outputIds().length + 2, t2.promptTokens(), "the session still knows its history");
        assertEquals(0, t2.cachedTokens(), "KV of the old weights is never reused");
    }

    @Test
    void anIdleSessionClosesAfterItsTimeout() {
        String sid = sessions().open(null, 50, java.time.Duration.ofSeconds(5), 0);
        sessions().expire(java.time.Duration.ofSeconds(4).toNanos());
        assertEquals(1, sessions().numOpen());
        sessions().expire(java.time.Duration.ofSeconds(6).toNanos());
        assertEquals(0, sessions().numOpen());
        assertFalse(sessions().close(sid));
    }

    @Test
    void anAppendedTurnDropsTheBosItsHistoryAlreadyHas() {
        String sid = open(100);
        int bos = 7;
        int[] p1 = concat(new int[] {bos}, tokens(0, 6));
        SequenceOutput t1 = turn("a", p1, 2, new SessionTurn(sid, null, 0, false, false, bos));
        assertEquals(7, t1.promptTokens(), "a root keeps its BOS");
        SequenceOutput t2 = turn("b", concat(new int[] {bos}, tokens(20, 3)), 2, new SessionTurn(sid, "a", 0, false, false, bos));
        assertEquals(7 + 2 + 3, t2.promptTokens(), "the appended input's BOS is dropped");
        SequenceOutput t3 = turn("c", tokens(30, 3), 1, new SessionTurn(sid, "b", 0, false, false, bos));
        assertEquals(12 + 2 + 3, t3.promptTokens(), "an input without a BOS is kept whole");
    }

    @Test
    void sliceEndFollowsPython() {
        assertEquals(10, Sessions.sliceEnd(10, 0));
        assertEquals(4, Sessions.sliceEnd(10, 4));
        assertEquals(10, Sessions.sliceEnd(10, 50));
        assertEquals(9, Sessions.sliceEnd(10, -1));
        assertEquals(0, Sessions.sliceEnd(10, -50));
    }
}
