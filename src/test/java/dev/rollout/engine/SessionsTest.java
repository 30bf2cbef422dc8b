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

    /** A sequence whose client streams: every snapshot goes to {@code seen}. */
    private Sequence streamed(String rid, int[] prompt, SamplingParams p, List<SequenceOutput> seen) {
        return new Sequence(rid, 0, prompt, p, LogprobOptions.NONE, null, out -> {
            seen.add(out);
            if (out.finished()) h.finished.put(out.rid(), out);
        }, true, 42);
    }

    private static SessionTurn streamingAppend(String sid) {
        return new SessionTurn(sid, null, 0, false, false);
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

    // ---- streamed turns ("stream": true) -----------------------------------------------------

    /**
     * The same conversation in two sessions, one streamed and one not: every turn has the same
     * prompt, output and cache hits, so streaming changes nothing in what the session remembers.
     * While a streamed turn runs, continuing it is refused; by the time its last snapshot is sent
     * the session has taken its output (and pinned its KV), so the client may send the next turn
     * as soon as it reads that snapshot.
     */
    @Test
    void aStreamedTurnJoinsItsSessionExactlyAsAWholeOneDoes() {
        int turns = 3;
        String whole = open(120);
        List<SequenceOutput> wholeTurns = new java.util.ArrayList<>();
        List<Long> wholePins = new java.util.ArrayList<>();
        String parent = null;
        for (int t = 0; t < turns; t++) {
            wholeTurns.add(turn("w" + t, tokens(100 * t, 5 + t), 7, append(whole, parent)));
            wholePins.add(sessions().pinnedTokens(whole));
            parent = "w" + t;
        }
        sessions().close(whole);
        assertTrue(h.engine.flushCache(), "the streamed conversation starts from the same empty cache");

        String sid = open(120);
        parent = null;
        for (int t = 0; t < turns; t++) {
            List<SequenceOutput> seen = new java.util.ArrayList<>();
            long[] pinnedAtLastSnapshot = {-1};
            String rid = "s" + t;
            Sequence s = new Sequence(rid, 0, tokens(100 * t, 5 + t), greedy(7), LogprobOptions.NONE, null, out -> {
                seen.add(out);
                if (out.finished()) {
                    h.finished.put(out.rid(), out);
                    pinnedAtLastSnapshot[0] = sessions().pinnedTokens(sid);
                }
            }, true, 42);
            h.engine.admit(new EngineCommand.Generate(List.of(s), Map.of(rid, append(sid, parent))));
            h.engine.step();
            h.engine.step();
            assertTrue(!seen.isEmpty() && !seen.get(seen.size() - 1).finished(), "it streams before it ends");
            IllegalArgumentException early = assertThrows(IllegalArgumentException.class, () -> h.engine.admit(new EngineCommand.Generate(
                    List.of(seq("early", tokens(900, 2), greedy(1), LogprobOptions.NONE)), Map.of("early", append(sid, rid)))));
            assertTrue(early.getMessage().contains("hasn't finished"), early.getMessage());
            h.runToCompletion();
            SequenceOutput last = h.finished.get(rid), w = wholeTurns.get(t);

            assertArrayEquals(w.outputIds(), last.outputIds(), "turn " + t + ": greedy, the streamed turn generates what the whole one does");
            assertEquals(w.promptTokens(), last.promptTokens(), "turn " + t + ": the same history before its input");
            assertEquals(w.cachedTokens(), last.cachedTokens(), "turn " + t + ": the same KV reused");
            assertTrue(seen.size() > 1, "snapshots were streamed");
            for (SequenceOutput o : seen.subList(0, seen.size() - 1)) assertFalse(o.finished());
            assertEquals(wholePins.get(t), sessions().pinnedTokens(sid), "turn " + t + ": the same KV pinned");
            assertEquals(sessions().pinnedTokens(sid), pinnedAtLastSnapshot[0], "the session pinned the turn before its last snapshot");
            parent = rid;
        }
    }

    /**
     * A streamed turn whose client goes away is aborted with what it made so far, and (as in
     * SGLang, whose aborted request stays in the session's tree) that partial output is the history
     * a later turn continues; the stream changes nothing there either.
     */
    @Test
    void aStreamCutShortLeavesItsPartialOutputInItsSession() {
        String sid = open(120);
        List<SequenceOutput> seen = new java.util.ArrayList<>();
        Sequence s = streamed("cut", tokens(0, 6), greedy(40), seen);
        h.engine.admit(new EngineCommand.Generate(List.of(s), Map.of("cut", append(sid, null))));
        for (int i = 0; i < 5; i++) h.engine.step();
        h.engine.abort(RequestMatch.ids(Set.of("cut")), "client disconnected");
        SequenceOutput cut = h.finished.get("cut");
        assertEquals(FinishReason.Type.ABORT, cut.finishReason().type());
        int made = cut.outputIds().length;
        assertTrue(made > 0 && made < 40, "cut mid-stream: " + made);
        SequenceOutput next = turn("next", tokens(50, 3), 2, append(sid, "cut"));
        assertEquals(6 + made + 3, next.promptTokens(), "the partial output is part of the history");
        assertTrue(next.cachedTokens() >= (6 + made - 1) / 4 * 4 - 4, "and its KV is reused: " + next.cachedTokens());
    }

    // ---- streaming sessions ("streaming": true at open) ------------------------------------

    private String openStreaming(long capacity) {
        return sessions().open(null, capacity, true, null, System.nanoTime());
    }

    /**
     * SGLang's streaming session: each turn continues the last one whatever its rid (null or the
     * last turn's), and the session remembers only that last turn. Greedy, the conversation
     * generates what the whole history sent at once does (the structural stand-in for SGLang's
     * exact cached_tokens, which counts tokens where ours counts whole blocks).
     */
    @Test
    void aStreamingSessionIsALinearConversation() {
        String sid = openStreaming(120);
        int[] p1 = tokens(0, 9), p2 = tokens(100, 4), p3 = tokens(200, 5);
        SequenceOutput t1 = turn("t1", p1, 5, streamingAppend(sid));
        assertEquals(Set.of("t1"), sessions().rids(sid));
        SequenceOutput t2 = turn("t2", p2, 5, streamingAppend(sid));
        int h1 = p1.length + t1.outputIds().length;
        assertEquals(h1 + p2.length, t2.promptTokens(), "rid null continues the last turn");
        assertEquals((h1 - 1) / 4 * 4, t2.cachedTokens(), "the last turn's KV is reused");
        assertEquals(Set.of("t2"), sessions().rids(sid), "only the last turn is remembered");
        SequenceOutput t3 = turn("t3", p3, 5, append(sid, "t2"));
        int h2 = h1 + p2.length + t2.outputIds().length;
        assertEquals(h2 + p3.length, t3.promptTokens(), "the last turn's rid continues it too");
        IllegalArgumentException older = assertThrows(IllegalArgumentException.class, () -> turn("t4", tokens(300, 2), 1, append(sid, "t1")));
        assertTrue(older.getMessage().contains("'t1' is not the last finished turn"), older.getMessage());

        sessions().close(sid);
        assertTrue(h.engine.flushCache());
        SequenceOutput fresh = turn("fresh", concat(p1, t1.outputIds(), p2, t2.outputIds(), p3), 5, null);
        assertArrayEquals(fresh.outputIds(), t3.outputIds(), "greedy: the third turn continues exactly as the whole history does");
    }

    @Test
    void aStreamingSessionRunsOneTurnAtATimeAndRefusesCutsAndBranches() {
        String sid = openStreaming(120);
        turn("t1", tokens(0, 6), 3, streamingAppend(sid));
        long pinned = sessions().pinnedTokens(sid);
        for (SessionTurn bad : List.of(new SessionTurn(sid, null, 0, true, false), new SessionTurn(sid, null, 0, false, true),
                new SessionTurn(sid, null, 1, false, false), new SessionTurn(sid, null, -1, false, false))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> turn("bad", tokens(50, 2), 1, bad));
            assertTrue(e.getMessage().startsWith("Streaming sessions do not support"), e.getMessage());
        }
        Sequence running = seq("t2", tokens(60, 3), greedy(30), LogprobOptions.NONE);
        h.engine.admit(new EngineCommand.Generate(List.of(running), Map.of("t2", streamingAppend(sid))));
        h.engine.step();
        IllegalArgumentException busy = assertThrows(IllegalArgumentException.class, () -> h.engine.admit(new EngineCommand.Generate(
                List.of(seq("t3", tokens(70, 2), greedy(1), LogprobOptions.NONE)), Map.of("t3", streamingAppend(sid)))));
        assertTrue(busy.getMessage().contains("already has an active request"), busy.getMessage());
        assertEquals(Set.of("t1"), sessions().rids(sid), "refusals changed nothing");
        assertEquals(pinned, sessions().pinnedTokens(sid));
        h.runToCompletion();
        SequenceOutput t3 = turn("t3", tokens(70, 2), 1, streamingAppend(sid));
        assertEquals(6 + 3 + 3 + 30 + 2, t3.promptTokens(), "after t2 ended, the next turn continues it");
    }

    /** SGLang's test_nth_mid_abort_recovery and test_first_mid_abort_recovery: an aborted turn is rolled back. */
    @Test
    void anAbortedTurnOfAStreamingSessionIsForgotten() {
        String sid = openStreaming(120);
        // the first turn aborted: the session stays empty
        Sequence first = seq("a0", tokens(0, 5), greedy(40), LogprobOptions.NONE);
        h.engine.admit(new EngineCommand.Generate(List.of(first), Map.of("a0", streamingAppend(sid))));
        for (int i = 0; i < 4; i++) h.engine.step();
        h.engine.abort(RequestMatch.every(), "abort_all");
        assertEquals(Set.of(), sessions().rids(sid));
        SequenceOutput t1 = turn("t1", tokens(10, 6), 4, streamingAppend(sid));
        assertEquals(6, t1.promptTokens(), "nothing of the aborted first turn is inherited");
        long pinned = sessions().pinnedTokens(sid);

        // a later turn aborted: the session rolls back to the turn before it
        Sequence second = seq("a1", tokens(20, 3), greedy(40), LogprobOptions.NONE);
        h.engine.admit(new EngineCommand.Generate(List.of(second), Map.of("a1", streamingAppend(sid))));
        for (int i = 0; i < 4; i++) h.engine.step();
        h.engine.abort(RequestMatch.ids(Set.of("a1")), "cut");
        assertEquals(FinishReason.Type.ABORT, h.finished.get("a1").finishReason().type());
        assertEquals(Set.of("t1"), sessions().rids(sid));
        assertEquals(pinned, sessions().pinnedTokens(sid), "the last good turn stays pinned");
        SequenceOutput t2 = turn("t2", tokens(30, 3), 2, streamingAppend(sid));
        assertEquals(6 + 4 + 3, t2.promptTokens(), "the next turn continues the last turn that ended well");
        assertEquals(pinned, t2.cachedTokens());
    }

    @Test
    void closingAStreamingSessionLetsItsRunningTurnEndAndKeepsNothing() {
        String sid = openStreaming(120);
        turn("t1", tokens(0, 6), 3, streamingAppend(sid));
        Sequence running = seq("t2", tokens(60, 3), greedy(10), LogprobOptions.NONE);
        h.engine.admit(new EngineCommand.Generate(List.of(running), Map.of("t2", streamingAppend(sid))));
        h.engine.step();
        assertTrue(sessions().close(sid));
        h.runToCompletion();
        assertEquals(10, h.finished.get("t2").outputIds().length, "it ran to its end");
        assertEquals(0, sessions().numPinnedBlocks());
        assertEquals(0, h.engine.stats().usedBlocks(), "nothing pins its KV");
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
