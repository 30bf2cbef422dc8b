package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Batch formation, chunked prefill and preemption, driven by hand (no model). */
class SchedulerTest {
    static Sequence seq(String rid, int len, int maxNew) {
        return seq(rid, 1, len, maxNew);
    }

    static Sequence seq(String rid, int firstToken, int len, int maxNew) {
        return new Sequence(rid, 0, BlockManagerTest.range(firstToken, len),
                SamplingParams.builder().temperature(0).maxNewTokens(maxNew).build(), LogprobOptions.NONE, null, o -> {}, false, 0);
    }

    /** Pretends the model ran: marks tokens computed and appends a token for each sampling sequence. */
    static void complete(Scheduler s, List<ScheduledSequence> batch) {
        s.markComputed(batch);
        for (ScheduledSequence x : batch) if (x.sample()) x.seq().tokens.add(7);
    }

    @Test
    void prefillIsChunkedByTheTokenBudgetAndDecodesJoinTheSameStep() {
        Scheduler s = new Scheduler(new BlockManager(64, 4), 8, 10);
        Sequence a = seq("a", 3, 5), b = seq("b", 25, 5);
        s.add(a);
        s.add(b);
        List<ScheduledSequence> step1 = s.schedule();
        assertEquals(2, step1.size());
        assertEquals(3, step1.get(0).numTokens());
        assertTrue(step1.get(0).sample());
        assertEquals(7, step1.get(1).numTokens(), "b gets the rest of the budget");
        assertFalse(step1.get(1).sample(), "b's prompt is not finished");
        complete(s, step1);

        List<ScheduledSequence> step2 = s.schedule();
        assertEquals(1, step2.get(0).numTokens(), "a decodes");
        assertEquals(9, step2.get(1).numTokens(), "b's next chunk");
        assertEquals(7, step2.get(1).start());
        complete(s, step2);
        List<ScheduledSequence> step3 = s.schedule();
        assertEquals(9, step3.get(1).numTokens());
        assertTrue(step3.get(1).sample(), "b's last chunk reaches the end of its prompt");
    }

    @Test
    void maxRunningSequencesIsRespected() {
        Scheduler s = new Scheduler(new BlockManager(64, 4), 2, 100);
        for (int i = 0; i < 5; i++) s.add(seq("r" + i, 3, 5));
        assertEquals(2, s.schedule().size());
        assertEquals(2, s.numRunning());
        assertEquals(3, s.numWaiting());
    }

    @Test
    void outOfBlocksPreemptsTheLatestAndRecomputesIt() {
        // 4 blocks of 2 tokens: two sequences of 3 tokens take 2 blocks each; growing needs more
        Scheduler s = new Scheduler(new BlockManager(4, 2), 8, 100);
        Sequence a = seq("a", 1, 3, 10), b = seq("b", 50, 3, 10);
        s.add(a);
        s.add(b);
        complete(s, s.schedule());        // both prefilled: 3 computed + 1 sampled each
        assertEquals(4, a.numTokens());
        complete(s, s.schedule());        // both decode into their second block's free slot
        List<ScheduledSequence> step = s.schedule(); // a needs a third block: b is preempted
        assertEquals(1, step.size());
        assertEquals(a, step.get(0).seq());
        assertEquals(SequenceStatus.WAITING, b.status());
        assertEquals(1, b.numRetractions);
        assertEquals(0, b.numComputed);
        assertEquals(1, s.numPreemptions());
        s.finish(a);
        List<ScheduledSequence> again = s.schedule();
        assertEquals(b, again.get(0).seq());
        assertEquals(b.numTokens() - b.numComputed, again.get(0).numTokens(), "b recomputes what the cache no longer holds");
    }

    @Test
    void nSiblingsWaitForTheLeaderThenShareItsPrompt() {
        Scheduler s = new Scheduler(new BlockManager(64, 4), 8, 100);
        Sequence lead = seq("x_0", 17, 3), sib = seq("x_1", 17, 3);
        sib.sharePrefixWith(lead);
        s.add(lead);
        s.add(sib);
        List<ScheduledSequence> first = s.schedule();
        assertEquals(1, first.size(), "the sibling waits for the leader's prompt");
        complete(s, first);
        List<ScheduledSequence> second = s.schedule();
        assertEquals(2, second.size());
        assertEquals(16, sib.numCachedTokens, "four full blocks come from the cache");
        assertEquals(1, second.get(1).numTokens());
    }

    @Test
    void promptPositionsToScoreAreNotTakenFromTheCache() {
        Scheduler s = new Scheduler(new BlockManager(64, 4), 8, 100);
        Sequence first = seq("p", 12, 1);
        s.add(first);
        complete(s, s.schedule());
        s.finish(first);
        Sequence scored = new Sequence("q", 0, BlockManagerTest.range(1, 12), SamplingParams.GREEDY,
                new LogprobOptions(true, 6, 0, null), null, o -> {}, false, 0);
        s.add(scored);
        List<ScheduledSequence> step = s.schedule();
        assertEquals(4, step.get(0).start(), "only the block before position 5 may come from the cache");
    }

    @Test
    void findMatchesRidPrefixes() {
        Scheduler s = new Scheduler(new BlockManager(64, 4), 8, 100);
        s.add(seq("req_0", 2, 2));
        s.add(seq("req_1", 2, 2));
        s.add(seq("other", 2, 2));
        assertEquals(2, s.find(r -> r.startsWith("req")).size());
    }

    /**
     * The timeout scan: waiting sequences by the time they (re)entered the queue, running ones by
     * their first admission; a preemption restarts the waiting clock and keeps the running one.
     */
    @Test
    void timedOutFindsLongWaitersAndLongRunnersAndAPreemptionRestartsTheWait() {
        Scheduler s = new Scheduler(new BlockManager(4, 2), 1, 100);
        Sequence a = seq("a", 1, 3, 10), b = seq("b", 50, 3, 10);
        s.add(a);
        s.add(b);
        complete(s, s.schedule());                       // a runs (one slot), b waits
        List<Sequence> waited = new java.util.ArrayList<>(), ran = new java.util.ArrayList<>();
        long later = System.nanoTime() + 5_000_000_000L;
        s.timedOut(later, Long.MAX_VALUE, Long.MAX_VALUE, waited, ran);
        assertTrue(waited.isEmpty() && ran.isEmpty(), "a timeout of Long.MAX_VALUE is off");
        s.timedOut(later, 1_000_000_000L, 1_000_000_000L, waited, ran);
        assertEquals(List.of(b), waited);
        assertEquals(List.of(a), ran);
        long admitted = a.admittedNanos;
        long queuedBefore = b.queuedNanos;
        assertEquals(1, s.retractAll());                 // a goes back to the queue
        assertTrue(a.queuedNanos >= queuedBefore, "its waiting clock starts again");
        waited.clear();
        ran.clear();
        s.timedOut(a.queuedNanos + 500_000_000L, 1_000_000_000L, 1, waited, ran);
        assertTrue(!waited.contains(a) && ran.isEmpty(), "retracted half a second ago: neither waited too long nor running");
        complete(s, s.schedule());
        assertEquals(admitted, a.admittedNanos, "its running clock goes on from the first admission");
    }
}
