package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.ModelConfig;
import dev.rollout.model.ParameterTable;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.bytedeco.pytorch.InferenceMode;

/**
 * The one thread that owns the engine. Other threads never touch engine state: they {@link
 * #submit} {@link EngineCommand}s, plain data that runs between two steps, and read the values
 * the loop publishes ({@link #info()}, {@link #status()}, {@link #stats()}). The loop never dies
 * from a failed step: it aborts what was running with the error, so no caller waits forever, and
 * carries on.
 *
 * <p>Commands that must wait for the running sequences to finish (a weight update that does not
 * abort them, a drain that cuts) are barriers: while one is pending no new sequence is admitted,
 * and each has a deadline after which it gives up (update) or cuts what still runs (drain).
 * SGLang's drain (WAIT) only watches: it is answered when nothing runs or waits, or at its
 * deadline, and holds nothing back.
 */
public final class EngineLoop implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(EngineLoop.class.getName());
    private static final long IDLE_POLL_MS = 50;
    private static final long HOUSEKEEPING_NANOS = TimeUnit.MILLISECONDS.toNanos(IDLE_POLL_MS);
    /** A command whose answer comes later, from a barrier. */
    private static final Object LATER = new Object();

    private final LlmEngine engine;
    private final WeightControl weights;
    private final MemoryOccupation memory;
    private final WeightChecker checker;
    private final BlockingQueue<Queued<?>> commands = new LinkedBlockingQueue<>();
    private final List<Barrier> barriers = new ArrayList<>();   // engine thread only
    private final List<IdleWait> idleWaits = new ArrayList<>(); // engine thread only
    private final List<Housekeeping> housekeeping = new CopyOnWriteArrayList<>();
    private volatile boolean running = true;
    /** Why a tensor-parallel rank is lost (the engine then runs nothing more), or null. */
    private volatile String lostRank;
    private boolean exitReported;    // guarded by this: a worker's exit named the lost rank
    private boolean lossHandled;     // engine thread only
    private volatile long rankKeepAliveNanos = TimeUnit.SECONDS.toNanos(1);   // set by the loader after the thread starts
    private volatile long heartbeatNanos = System.nanoTime();
    /** Until when the engine thread is in a wait with a deadline of its own (a weight group's), which liveness counts as going round. */
    private volatile long boundedUntilNanos = heartbeatNanos;
    private long lastHousekeepingNanos = System.nanoTime();
    private volatile EngineStats stats;
    private volatile RlStatus status;
    private volatile EngineInfo info;
    private final Thread thread;
    private final OutputRelay relay;

    /**
     * Work the engine thread does between steps, at most every 50 ms and whenever it is idle,
     * for state that belongs to it but that no request may come to touch again (an abandoned
     * weight-update session's staged tensors). It must return quickly.
     */
    @FunctionalInterface
    public interface Housekeeping {
        void tick(long nowNanos);
    }

    private record Queued<R>(EngineCommand<R> command, CompletableFuture<R> result) {
        @SuppressWarnings("unchecked")
        void complete(Object value) {
            result.complete((R) value);
        }

        void fail(Throwable t) {
            result.completeExceptionally(t);
        }
    }

    /** Work that waits until no sequence runs (or the engine is paused), with a deadline. */
    private record Barrier(RlState state, long deadlineNanos, Runnable whenIdle, Runnable atDeadline) {}

    /** A WAIT drain: answered once nothing runs or waits, or at its deadline with what is left. */
    private record IdleWait(long deadlineNanos, List<String> started, Queued<?> q) {
        void answer(EngineLoop loop) {
            q.complete(new DrainResult(loop.inFlight(), loop.finishedOf(started), List.of(), DrainMode.WAIT, false));
        }
    }

    /**
     * Starts the engine thread over {@code engine}, which no other thread may touch from now on.
     *
     * @param weightsHostBackup keep a host copy of the weights when they are released, and restore it on resume
     */
    public EngineLoop(LlmEngine engine, boolean weightsHostBackup, ThreadFactory threads) {
        this.engine = engine;
        this.weights = new WeightControl(engine, weightsHostBackup);
        this.memory = new MemoryOccupation(engine, weights);
        this.checker = new WeightChecker(engine, weights);
        this.info = describe(engine, weightsHostBackup);
        this.relay = new OutputRelay(threads);
        engine.observeThrough(relay);   // metrics are recorded on the relay's thread, not the engine's
        refresh();
        housekeeping.add(now -> engine.sessions().expire(now));  // sessions opened with a timeout close when idle
        housekeeping.add(this::endExpiredPause);
        housekeeping.add(this::keepRanksAlive);
        this.thread = threads.newThread(this::run);
        thread.setName("rollout-engine");
        thread.start();
    }

    private static EngineInfo describe(LlmEngine engine, boolean weightsHostBackup) {
        CausalLm model = engine.model();
        ModelConfig c = model.config();
        ParameterTable table = model.parameters();
        // the whole model's shapes, which pushes carry, whatever part of them this rank holds
        Map<String, List<Long>> shapes = new LinkedHashMap<>();
        long parameters = 0;
        for (String name : table.names()) {
            List<Long> shape = new ArrayList<>();
            long n = 1;
            for (long d : table.fullShape(name)) {
                shape.add(d);
                n *= d;
            }
            shapes.put(name, shape);
            parameters += n;
        }
        EngineConfig ec = engine.config();
        return new EngineInfo(c.architecture(), c.architecture().replace("ForCausalLM", "").toLowerCase(), parameters,
                model.weightBytes(), Torch.name(model.dtype()), ec.device(), engine.maxModelLen(), c.vocabSize(),
                engine.numKvBlocks(), ec.blockSize(), ec.maxNumSeqs(), ec.maxNumBatchedTokens(), shapes, true, weightsHostBackup,
                engine.tpSize(), engine.keepsRoutedExperts());
    }

    // ---- the engine thread -------------------------------------------------------------

    private void run() {
        try (InferenceMode guard = new InferenceMode()) {
            while (running) {
                heartbeatNanos = System.nanoTime();
                if (lostRank != null && !lossHandled) handleLostRank();
                Queued<?> q;
                while ((q = commands.poll()) != null) execute(q);
                checkBarriers();
                checkIdleWaits();
                housekeeping(false);
                if (engine.canStep()) {
                    step();
                } else {
                    q = commands.poll(IDLE_POLL_MS, TimeUnit.MILLISECONDS);
                    if (q != null) execute(q);
                    else housekeeping(true);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "the engine loop stopped", t);  // liveness reports it; nobody is left waiting
        } finally {
            running = false;  // from here submit() answers at once
            bestEffort(() -> engine.abort(RequestMatch.every(), "server shutting down"));
            if (lostRank == null) bestEffort(engine::stopRanks);  // the workers' loops end with ours
            for (Barrier b : barriers) bestEffort(b.atDeadline());
            for (IdleWait w : idleWaits) bestEffort(() -> w.answer(this));
            Queued<?> q;
            while ((q = commands.poll()) != null) {
                Queued<?> refused = q;
                bestEffort(() -> refuse(refused));
            }
        }
    }

    private static void bestEffort(Runnable cleanup) {
        try {
            cleanup.run();
        } catch (Throwable t) {
            LOG.log(Level.WARNING, "engine loop clean-up failed", t);
        }
    }

    private void step() {
        relay.hold();  // the step's snapshots go to the relay as one batch
        try {
            engine.step();
        } catch (Throwable t) {
            if (!ranksOutOfStep()) {
                LOG.log(Level.SEVERE, "engine step failed; aborting the running requests", t);
                engine.abort(RequestMatch.every(), "internal error in the engine step: " + t);
            }
        } finally {
            relay.release();
        }
        refresh();
    }

    // ---- the other tensor-parallel ranks ------------------------------------------------

    /**
     * Reports a lost tensor-parallel rank, from any thread: the engine aborts what runs and
     * waits with a 503 naming it, and runs nothing more, since a step needs every rank. Meant for
     * the precise reason (a worker process that exited, by rank and pid), which replaces a vaguer
     * one the engine may have found first (a collective that failed because of it). The first
     * exit reported stays: the ranks that fail after it (their peer is gone) are its consequence.
     */
    public synchronized void loseRank(String why) {
        if (exitReported) return;
        exitReported = true;
        lostRank = why;
    }

    /**
     * Engine thread: if the group is broken (a collective failed, missed its deadline, or rank 0
     * failed between two), the rank is lost, unless a reason is known already; returns whether.
     */
    private boolean ranksOutOfStep() {
        String broken = engine.ranksBroken();
        if (broken == null) return false;
        if (lostRank == null) lostRank = broken;
        if (!lossHandled) handleLostRank();
        return true;
    }

    private String lostMessage() {
        return "the engine lost a tensor-parallel rank and cannot run: " + lostRank;
    }

    /** Why a tensor-parallel rank is lost, or null while every rank serves. */
    public String lostRank() {
        return lostRank;
    }

    /** How often, at most, the idle engine tells the workers it is alive: well within their deadline. */
    public void setRankKeepAlive(java.time.Duration interval) {
        rankKeepAliveNanos = Math.max(TimeUnit.MILLISECONDS.toNanos(IDLE_POLL_MS), interval.toNanos());
    }

    private void keepRanksAlive(long now) {
        if (lostRank != null) return;
        try {
            engine.keepRanksAlive(now, rankKeepAliveNanos);
        } catch (RuntimeException e) {
            if (!ranksOutOfStep()) LOG.log(Level.WARNING, "the keep-alive to the other ranks failed", e);   // a failed broadcast breaks the group
        }
    }

    private void handleLostRank() {
        lossHandled = true;
        String why = lostMessage();
        LOG.severe(why + "; restart the server");
        engine.abortAll(why, 503);
        for (Barrier b : barriers) bestEffort(b.atDeadline());
        barriers.clear();
        for (IdleWait w : idleWaits) bestEffort(() -> w.answer(this));
        idleWaits.clear();
        refresh();
    }

    /** The pause watchdog: a trainer lost between pause and continue must not leave the server paused for good. */
    private void endExpiredPause(long now) {
        if (!engine.pauseExpired(now)) return;
        engine.resume();
        refresh();
        LOG.warning("generation was paused for longer than rollout.pause-timeout-seconds without continue_generation: "
                + "continuing by itself");
    }

    private void housekeeping(boolean idle) {
        long now = System.nanoTime();
        if (!idle && now - lastHousekeepingNanos < HOUSEKEEPING_NANOS) return;
        lastHousekeepingNanos = now;
        for (Housekeeping h : housekeeping) {
            try {
                h.tick(now);
            } catch (Throwable t) {
                LOG.log(Level.SEVERE, "housekeeping failed", t);
            }
        }
    }

    /** Runs one command; its future completes after the published state shows its effect. */
    private void execute(Queued<?> q) {
        Object value;
        try {
            value = run(q);
        } catch (Throwable t) {
            if (!(t instanceof IllegalArgumentException || t instanceof IllegalStateException))
                LOG.log(Level.SEVERE, "engine command " + q.command().getClass().getSimpleName() + " failed", t);
            ranksOutOfStep();   // it may have failed between collectives
            refresh();
            q.fail(t);
            return;
        }
        refresh();
        if (value != LATER) q.complete(value);
    }

    /** The command's answer, or {@link #LATER} when a barrier will give it. */
    private Object run(Queued<?> q) {
        EngineCommand<?> c = q.command();
        if (lostRank != null) {  // nothing runs any more; the HTTP layer answers 503 before it gets here
            if (c instanceof EngineCommand.Generate g) {
                for (Sequence s : g.sequences()) s.listener.onOutput(finishedBeforeStart(s, FinishReason.abort(lostMessage(), 503)));
                return 0;
            }
            if (c instanceof EngineCommand.UpdateWeights u) u.update().release();
            throw new IllegalStateException(lostMessage());
        }
        if (c instanceof EngineCommand.Generate g) {
            try {
                g.sequences().forEach(engine::checkAddable);  // all or none of a request is queued
            } catch (IllegalArgumentException e) {            // its waiters are answered, not left hanging
                for (Sequence s : g.sequences()) s.listener.onOutput(finishedBeforeStart(s, e.getMessage()));
                return 0;
            }
            return engine.admit(g);
        } else if (c instanceof EngineCommand.OpenSession o) {
            return engine.sessions().open(o.sessionId(), o.capacityTokens(), o.streaming(), o.idleTimeout(), System.nanoTime());
        } else if (c instanceof EngineCommand.CloseSession cs) {
            return engine.sessions().close(cs.sessionId());
        } else if (c instanceof EngineCommand.Abort a) {
            return engine.abort(a.match(), a.message(), a.waitingMessage());
        } else if (c instanceof EngineCommand.Pause p) {
            return engine.pause(p.mode());
        } else if (c instanceof EngineCommand.Continue) {
            boolean was = engine.paused();
            engine.resume();
            return was;
        } else if (c instanceof EngineCommand.Drain d) {
            return drain(d, q);
        } else if (c instanceof EngineCommand.UpdateWeights u) {
            return updateWeights(u, q);
        } else if (c instanceof EngineCommand.SetWeightVersion v) {
            if (v.abortAll()) engine.abort(RequestMatch.every(), "aborted by update_weight_version");
            engine.setWeightVersion(v.version());
            return v.version();
        } else if (c instanceof EngineCommand.ReleaseMemory r) {
            return memory.release(r.tags());
        } else if (c instanceof EngineCommand.ResumeMemory r) {
            return memory.resume(r.tags());
        } else if (c instanceof EngineCommand.CaptureGraphs g) {
            return engine.captureDecodeGraphs(g.contextTokens());
        } else if (c instanceof EngineCommand.FlushCache) {
            return engine.flushCache();
        } else if (c instanceof EngineCommand.ReadParameter r) {
            return weights.read(r.name(), r.rows());
        } else if (c instanceof EngineCommand.Checksums) {
            return weights.checksums();
        } else if (c instanceof EngineCommand.SnapshotWeights) {
            return checker.snapshot();
        } else if (c instanceof EngineCommand.ResetWeights r) {
            return checker.resetTensors(r.skip());
        } else if (c instanceof EngineCommand.CompareWeights cw) {
            return checker.compare(cw.skip());
        } else if (c instanceof EngineCommand.WeightGroupCall<?> g) {
            return weightGroupCall(g);
        }
        throw new IllegalArgumentException("unknown engine command " + c);
    }

    /** Every rank's part of a weight group's operation, rank 0's here; the workers' as they report them (null if abandoned). */
    private <T> dev.rollout.dist.WeightGroupOp.Outcome<T> weightGroupCall(EngineCommand.WeightGroupCall<T> g) {
        if (!g.claim()) return null;   // its caller stopped waiting for it: no rank runs it
        boundedUntilNanos = System.nanoTime() + dev.rollout.model.StepBroadcast.groupOpLimit(g.bound()).toNanos();
        try {
            dev.rollout.model.StepBroadcast channel = engine.parameterChannel();
            channel.sendGroupOp(g.op());
            return channel.perform(g.here(), g.bound());
        } finally {
            boundedUntilNanos = System.nanoTime();
        }
    }

    private Object updateWeights(EngineCommand.UpdateWeights u, Queued<?> q) {
        WeightUpdate update = u.update();
        String problem = weights.check(update);
        if (problem != null) {
            update.release();
            throw new IllegalArgumentException(problem);
        }
        if (update.abortAll()) engine.abort(RequestMatch.every(), "aborted for a weight update");
        if (engine.numRunning() == 0 || engine.paused()) {
            try {
                return weights.apply(update);
            } finally {
                update.release();
            }
        }
        barriers.add(new Barrier(RlState.UPDATING, System.nanoTime() + u.maxWait().toNanos(), () -> {
            try {
                UpdateRecord r = weights.apply(update);
                refresh();
                q.complete(r);
            } catch (Throwable t) {
                q.fail(t);
            } finally {
                update.release();
            }
        }, () -> {
            update.release();
            q.fail(new IllegalStateException("the running requests did not finish within " + u.maxWait().toSeconds()
                    + " s; the weights are unchanged (pass abort_all_requests, or pause first)"));
        }));
        return LATER;
    }

    private Object drain(EngineCommand.Drain d, Queued<?> q) {
        List<String> started = engine.runningRids();
        long deadline = System.nanoTime() + d.timeout().toNanos();
        if (d.mode() == DrainMode.WAIT) {  // SGLang's: a watch, not a barrier; it holds nothing back
            idleWaits.add(new IdleWait(deadline, started, q));
            return LATER;
        }
        PauseMode cutBy = d.mode() == DrainMode.ABORT ? PauseMode.ABORT : PauseMode.RETRACT;
        barriers.add(new Barrier(RlState.DRAINING, deadline, () -> {
            engine.pause(PauseMode.IN_PLACE);
            refresh();
            q.complete(new DrainResult(inFlight(), finishedOf(started), List.of(), d.mode(), true));
        }, () -> {
            List<SequenceOutput> cut = engine.retractRunning();
            if (cutBy == PauseMode.ABORT) {
                Set<String> ids = new HashSet<>();
                cut.forEach(o -> ids.add(o.rid()));
                engine.abort(RequestMatch.ids(ids), "cut by drain");
            }
            engine.pause(PauseMode.IN_PLACE);
            refresh();
            List<String> finished = new ArrayList<>(started);
            cut.forEach(o -> finished.remove(o.rid()));
            q.complete(new DrainResult(inFlight(), finished, cut, d.mode(), true));
        }));
        return LATER;
    }

    /** Requests (sequences) running or waiting now. */
    private int inFlight() {
        EngineStats st = engine.stats();
        return st.numRunning() + st.numWaiting();
    }

    /** Of the requests that ran when a drain began, those no longer in the engine. */
    private List<String> finishedOf(List<String> started) {
        Set<String> still = new HashSet<>(engine.activeRids());
        List<String> out = new ArrayList<>();
        for (String rid : started) if (!still.contains(rid)) out.add(rid);
        return out;
    }

    /** Answers the WAIT drains whose engine went idle or whose deadline passed. */
    private void checkIdleWaits() {
        if (idleWaits.isEmpty()) return;
        boolean idle = !engine.hasWork();
        long now = System.nanoTime();
        for (Iterator<IdleWait> it = idleWaits.iterator(); it.hasNext(); ) {
            IdleWait w = it.next();
            if (!idle && now - w.deadlineNanos() < 0) continue;
            it.remove();
            w.answer(this);
        }
    }

    private void checkBarriers() {
        for (Iterator<Barrier> it = barriers.iterator(); it.hasNext(); ) {
            Barrier b = it.next();
            Runnable due = engine.numRunning() == 0 || engine.paused() ? b.whenIdle()
                    : System.nanoTime() > b.deadlineNanos() ? b.atDeadline() : null;
            if (due == null) continue;
            it.remove();
            try {
                due.run();
            } catch (Throwable t) {
                LOG.log(Level.SEVERE, "engine barrier failed", t);
            }
            refresh();
        }
        engine.blockAdmissions(!barriers.isEmpty());
    }

    /** Publishes what other threads may read; engine thread only. */
    private void refresh() {
        engine.hold(memory.holdsEngine() || lostRank != null);
        EngineStats st = engine.stats();
        Set<MemoryTag> released = memory.released();
        RlState state = !released.isEmpty() ? RlState.RELEASED
                : !barriers.isEmpty() && barriers.stream().anyMatch(b -> b.state() == RlState.UPDATING) ? RlState.UPDATING
                : !barriers.isEmpty() ? RlState.DRAINING
                : engine.paused() ? RlState.PAUSED
                : RlState.SERVING;
        stats = st;
        status = new RlStatus(state, engine.weightVersion(), st.numRunning(), st.numWaiting(), st.totalBlocks() - st.usedBlocks(),
                st.blockSize(), released, weights.numUnpushed(), weights.heldBackupBytes(), weights.history());
        boolean resident = !released.contains(MemoryTag.WEIGHTS);
        if (info.weightsResident() != resident) info = info.withWeightsResident(resident);
    }

    private void refuse(Queued<?> q) {
        if (q.command() instanceof EngineCommand.Generate g) {
            for (Sequence s : g.sequences()) s.listener.onOutput(finishedBeforeStart(s, "server shutting down"));
            q.complete(0);
        } else {
            if (q.command() instanceof EngineCommand.UpdateWeights u) u.update().release();
            q.fail(new IllegalStateException("the engine has stopped"));
        }
    }

    private SequenceOutput finishedBeforeStart(Sequence s, String message) {
        return finishedBeforeStart(s, FinishReason.abort(message));
    }

    private SequenceOutput finishedBeforeStart(Sequence s, FinishReason reason) {
        s.finishReason = reason;
        s.finishedNanos = System.nanoTime();
        return s.snapshot(engine.weightVersion());
    }

    // ---- other threads -----------------------------------------------------------------

    /**
     * Queues a command for the engine thread. The future completes with the command's answer once
     * the published state ({@link #status()}, {@link #info()}) shows its effect, or exceptionally
     * (see {@link EngineCommand}); after {@link #close()} it fails at once.
     */
    public <R> CompletableFuture<R> submit(EngineCommand<R> command) {
        Queued<R> q = new Queued<>(command, new CompletableFuture<>());
        commands.add(q);
        if (!running && commands.remove(q)) refuse(q);  // the loop may be gone: nobody else would answer
        return q.result();
    }

    /**
     * A listener for sequences submitted here that receives their snapshots on the output relay's
     * thread instead of the engine's (for listeners that wake other threads).
     */
    public SequenceListener relaying(SequenceListener target) {
        return relay.relaying(target);
    }

    /** Runs {@code task} on the engine thread between steps from now on. */
    public void addHousekeeping(Housekeeping task) {
        housekeeping.add(task);
    }

    /** What the engine serves; published at start and after every change. */
    public EngineInfo info() {
        return info;
    }

    public EngineStats stats() {
        return stats;
    }

    public RlStatus status() {
        return status;
    }

    /**
     * Seconds since the loop last went round; a step in progress counts as busy, not dead, and so
     * does a wait with a deadline of its own, until that deadline.
     */
    public double heartbeatAgeSeconds() {
        long now = System.nanoTime(), bounded = boundedUntilNanos;
        long last = now - bounded < 0 ? now : Math.max(heartbeatNanos - bounded, 0) + bounded;   // nanoTime may wrap: compare differences
        return (now - last) / 1e9;
    }

    public boolean isAlive() {
        return thread.isAlive();
    }

    @Override
    public void close() {
        running = false;
        try {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        relay.close();  // after the engine thread: its last outputs (the shutdown aborts) are delivered
    }
}
