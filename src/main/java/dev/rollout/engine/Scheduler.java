package dev.rollout.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.function.Predicate;

/**
 * Continuous batching with chunked prefill. Each step spends a token budget: first on the
 * running sequences in arrival order (one token for a decode, the next chunk for an unfinished
 * prompt), then on admitting waiting sequences, whose prompts may be cut into chunks. When the
 * KV blocks run out, the latest running sequence is preempted: its blocks are freed and it
 * goes back to the front of the queue, to be recomputed (mostly from the prefix cache).
 * Pure Java: no tensors.
 */
public final class Scheduler {
    private final BlockManager blocks;
    private final int maxNumSeqs;
    private final int maxNumBatchedTokens;
    private final Deque<Sequence> waiting = new ArrayDeque<>();
    private final List<Sequence> running = new ArrayList<>();
    private long numPreemptions;

    public Scheduler(BlockManager blocks, int maxNumSeqs, int maxNumBatchedTokens) {
        this.blocks = blocks;
        this.maxNumSeqs = maxNumSeqs;
        this.maxNumBatchedTokens = maxNumBatchedTokens;
    }

    public void add(Sequence seq) {
        seq.queuedNanos = System.nanoTime();
        waiting.addLast(seq);
    }

    public boolean hasWork() {
        return !waiting.isEmpty() || !running.isEmpty();
    }

    public int numRunning() {
        return running.size();
    }

    public int numWaiting() {
        return waiting.size();
    }

    public long numPreemptions() {
        return numPreemptions;
    }

    /** A step with admissions: the usual case. */
    public List<ScheduledSequence> schedule() {
        return schedule(true);
    }

    /** @param admit false while an update or drain waits for the running sequences to finish */
    public List<ScheduledSequence> schedule(boolean admit) {
        List<ScheduledSequence> batch = new ArrayList<>();
        int budget = maxNumBatchedTokens;

        // running: decodes and unfinished prompts
        for (int i = 0; i < running.size() && budget > 0; i++) {
            Sequence seq = running.get(i);
            int n = Math.min(seq.numUncomputed(), budget);
            boolean preemptedSelf = false;
            while (!blocks.canAppend(seq, n)) {
                if (running.size() - 1 > i) {
                    preempt(running.remove(running.size() - 1));
                } else {
                    preempt(running.remove(i));
                    preemptedSelf = true;
                    break;
                }
            }
            if (preemptedSelf) break;
            batch.add(take(seq, n));
            budget -= n;
        }

        // waiting: admit in arrival order while budget, sequence slots and blocks last
        for (Iterator<Sequence> it = waiting.iterator(); admit && it.hasNext() && budget > 0 && running.size() < maxNumSeqs; ) {
            Sequence seq = it.next();
            // An n>1 sibling waits until the first sample's prompt is in the cache, then shares it.
            if (seq.prefixLeader != null && !seq.prefixLeader.promptComputed()) continue;
            List<Integer> hits = blocks.findCached(seq, maxCachedTokens(seq));
            int cachedTokens = hits.size() * blocks.blockSize();
            int n = Math.min(seq.numTokens() - cachedTokens, budget);
            if (!blocks.canAllocate(hits, cachedTokens + n)) break;
            it.remove();
            blocks.acquire(seq, hits);
            if (seq.numCachedTokens < 0) seq.numCachedTokens = Math.min(cachedTokens, seq.promptLen);
            seq.status = SequenceStatus.RUNNING;
            if (seq.admittedNanos == 0) seq.admittedNanos = System.nanoTime();
            running.add(seq);
            batch.add(take(seq, n));
            budget -= n;
        }
        return batch;
    }

    /**
     * At least one token must run through the model to give logits, and prompt positions that
     * are to be scored must be computed, not taken from the cache.
     */
    private static int maxCachedTokens(Sequence seq) {
        int max = seq.numTokens() - 1;
        if (seq.inputScoredUpTo < seq.promptLen) max = Math.min(max, Math.max(seq.inputScoredUpTo - 1, 0));
        return max;
    }

    private ScheduledSequence take(Sequence seq, int n) {
        int start = seq.numComputed;
        blocks.appendSlots(seq, n);
        return new ScheduledSequence(seq, start, n, start + n == seq.numTokens());
    }

    private void preempt(Sequence seq) {
        blocks.free(seq);
        seq.numComputed = 0;
        seq.numRetractions++;
        seq.status = SequenceStatus.WAITING;
        seq.queuedNanos = System.nanoTime();
        waiting.addFirst(seq);
        numPreemptions++;
    }

    /** Moves every running sequence back to the queue, its KV freed (pause in "retract" mode). */
    public int retractAll() {
        int n = running.size();
        while (!running.isEmpty()) preempt(running.remove(running.size() - 1));
        return n;
    }

    /** Marks the step's tokens computed and publishes the blocks they filled to the prefix cache. */
    public void markComputed(List<ScheduledSequence> batch) {
        for (ScheduledSequence s : batch) {
            s.seq().numComputed = s.start() + s.numTokens();
            blocks.commitFullBlocks(s.seq());
        }
    }

    /** Removes a finished or aborted sequence and returns its blocks. */
    public void finish(Sequence seq) {
        if (seq.status == SequenceStatus.RUNNING) running.remove(seq);
        else waiting.remove(seq);
        blocks.free(seq);
        seq.status = SequenceStatus.FINISHED;
    }

    /**
     * Adds to {@code waitedTooLong} the sequences queued for {@code waitingNanos} or more by
     * {@code now}, and to {@code ranTooLong} those running {@code runningNanos} or more since their
     * first admission (Long.MAX_VALUE turns either off). A pass over both queues that allocates
     * nothing per sequence: it runs every step while a timeout is set.
     */
    public void timedOut(long now, long waitingNanos, long runningNanos, List<Sequence> waitedTooLong, List<Sequence> ranTooLong) {
        if (waitingNanos != Long.MAX_VALUE)
            for (Sequence s : waiting) if (now - s.queuedNanos >= waitingNanos) waitedTooLong.add(s);
        if (runningNanos != Long.MAX_VALUE)
            for (int i = 0; i < running.size(); i++) {
                Sequence s = running.get(i);
                if (now - s.admittedNanos >= runningNanos) ranTooLong.add(s);
            }
    }

    /** Running and waiting sequences whose rid passes {@code test}. */
    public List<Sequence> find(Predicate<String> test) {
        List<Sequence> out = new ArrayList<>();
        for (Sequence s : running) if (test.test(s.rid)) out.add(s);
        for (Sequence s : waiting) if (test.test(s.rid)) out.add(s);
        return out;
    }
}
