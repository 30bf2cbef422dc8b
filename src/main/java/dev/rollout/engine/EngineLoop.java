package dev.rollout.engine;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.bytedeco.pytorch.InferenceMode;

/**
 * The one thread that owns the engine. Other threads never touch engine state: they enqueue
 * commands (add, abort, flush, weight updates, pause) that run between steps. The loop never
 * dies from a failed step: it aborts what was running with the error, so no caller waits
 * forever, and carries on.
 *
 * <p>Operations that must wait for the running sequences to finish (a weight update that does
 * not abort them, a drain) are barriers: while one is pending no new sequence is admitted, and
 * each has a deadline after which it gives up (update) or cuts what still runs (drain).
 */
public final class EngineLoop implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(EngineLoop.class.getName());
    private static final long IDLE_POLL_MS = 50;

    private final LlmEngine engine;
    private final BlockingQueue<Runnable> commands = new LinkedBlockingQueue<>();
    private final List<Barrier> barriers = new ArrayList<>();   // engine thread only
    private volatile boolean running = true;
    private volatile long heartbeatNanos = System.nanoTime();
    private volatile LlmEngine.EngineStats stats;
    private volatile RlStatus status;
    private final Thread thread;
    private final OutputRelay relay;

    /** Work that waits until no sequence runs (or the engine is paused), with a deadline. */
    private record Barrier(RlState state, long deadlineNanos, Consumer<LlmEngine> whenIdle, Consumer<LlmEngine> atDeadline) {}

    /** What /rl/state shows; refreshed by the loop between steps. */
    public record RlStatus(RlState state, String weightVersion, int running, int waiting, int freeBlocks, int blockSize,
                           Set<LlmEngine.MemoryTag> released, int unpushedParameters, LlmEngine.UpdateRecord lastUpdate) {}

    public EngineLoop(LlmEngine engine, ThreadFactory threads) {
        this.engine = engine;
        this.relay = new OutputRelay(threads);
        refresh();
        this.thread = threads.newThread(this::run);
        thread.setName("rollout-engine");
        thread.start();
    }

    private void run() {
        try (InferenceMode guard = new InferenceMode()) {
            while (running) {
                heartbeatNanos = System.nanoTime();
                Runnable cmd;
                while ((cmd = commands.poll()) != null) runCommand(cmd);
                checkBarriers();
                if (engine.canStep()) {
                    step();
                } else {
                    refresh();
                    cmd = commands.poll(IDLE_POLL_MS, TimeUnit.MILLISECONDS);
                    if (cmd != null) runCommand(cmd);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            engine.abort(rid -> true, "server shutting down");
            for (Barrier b : barriers) b.atDeadline().accept(engine);
        }
    }

    private void step() {
        try {
            engine.step();
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "engine step failed; aborting the running requests", t);
            engine.abort(rid -> true, "internal error in the engine step: " + t);
        }
        refresh();
    }

    private void checkBarriers() {
        for (Iterator<Barrier> it = barriers.iterator(); it.hasNext(); ) {
            Barrier b = it.next();
            if (engine.numRunning() == 0 || engine.paused()) {
                it.remove();
                runCommand(() -> b.whenIdle().accept(engine));
            } else if (System.nanoTime() > b.deadlineNanos()) {
                it.remove();
                runCommand(() -> b.atDeadline().accept(engine));
            }
        }
        engine.blockAdmissions(!barriers.isEmpty());
    }

    private void refresh() {
        stats = engine.stats();
        RlState state = !engine.released().isEmpty() ? RlState.RELEASED
                : barriers.stream().anyMatch(b -> b.state() == RlState.UPDATING) ? RlState.UPDATING
                : !barriers.isEmpty() ? RlState.DRAINING
                : engine.paused() ? RlState.PAUSED
                : RlState.SERVING;
        status = new RlStatus(state, engine.weightVersion(), stats.numRunning(), stats.numWaiting(),
                stats.totalBlocks() - stats.usedBlocks(), stats.blockSize(), engine.released(), engine.numUnpushed(),
                engine.lastUpdate());
    }

    private void runCommand(Runnable cmd) {
        try {
            cmd.run();
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "engine command failed", t);
        }
        refresh();
    }

    /**
     * A listener for sequences submitted here that receives their snapshots on the output relay's
     * thread instead of the engine's (for listeners that wake other threads).
     */
    public SequenceListener relaying(SequenceListener target) {
        return relay.relaying(target);
    }

    /** Queues sequences for generation. */
    public void submit(List<Sequence> seqs) {
        if (!running) {
            seqs.forEach(s -> s.listener.onOutput(finishedBeforeStart(s, "server shutting down")));
            return;
        }
        commands.add(() -> seqs.forEach(engine::add));
    }

    /** Runs {@code f} on the engine thread between steps. */
    public <T> CompletableFuture<T> call(Function<LlmEngine, T> f) {
        CompletableFuture<T> result = new CompletableFuture<>();
        commands.add(() -> {
            try {
                T value = f.apply(engine);
                refresh();  // the caller must see the state its call produced
                result.complete(value);
            } catch (Throwable t) {
                result.completeExceptionally(t);
            }
        });
        return result;
    }

    /** Aborts asynchronously; SGLang's abort_request is fire-and-forget too. */
    public void abort(Predicate<String> rids, String message) {
        commands.add(() -> engine.abort(rids, message));
    }

    /**
     * Applies new weights between steps. With {@code abortAll} the running requests are aborted
     * first; when the engine is paused the update applies at once (the requests resume on the new
     * weights); otherwise it waits, admitting nothing new, until the running requests finish, for
     * at most {@code wait}. Fails with IllegalArgumentException for a bad update (weights
     * untouched) and IllegalStateException when the wait runs out.
     */
    public CompletableFuture<LlmEngine.UpdateRecord> updateWeights(WeightUpdate update, Duration wait) {
        CompletableFuture<LlmEngine.UpdateRecord> result = new CompletableFuture<>();
        commands.add(() -> {
            String problem = engine.checkUpdate(update);
            if (problem != null) {
                update.release();
                result.completeExceptionally(new IllegalArgumentException(problem));
                return;
            }
            if (update.abortAll()) engine.abort(rid -> true, "aborted for a weight update");
            Consumer<LlmEngine> apply = e -> {
                try {
                    LlmEngine.UpdateRecord r = e.applyWeights(update);
                    refresh();
                    result.complete(r);
                } catch (Throwable t) {
                    result.completeExceptionally(t);
                } finally {
                    update.release();
                }
            };
            if (engine.numRunning() == 0 || engine.paused()) {
                apply.accept(engine);
            } else {
                barriers.add(new Barrier(RlState.UPDATING, System.nanoTime() + wait.toNanos(), apply, e -> {
                    update.release();
                    result.completeExceptionally(new IllegalStateException("the running requests did not finish within "
                            + wait.toSeconds() + " s; the weights are unchanged (pass abort_all_requests, or pause first)"));
                }));
            }
        });
        return result;
    }

    /** What a drain did: the requests that finished in time, and the partial outputs of those it cut. */
    public record DrainResult(List<String> finished, List<SequenceOutput> cut, String cutMode) {}

    /**
     * Lets the running requests finish, admitting nothing new, for at most {@code timeout}; then
     * aborts or retracts the rest. Leaves the engine paused (continue_generation resumes).
     */
    public CompletableFuture<DrainResult> drain(Duration timeout, LlmEngine.PauseMode cutMode) {
        CompletableFuture<DrainResult> result = new CompletableFuture<>();
        commands.add(() -> {
            List<String> started = engine.runningRids();
            barriers.add(new Barrier(RlState.DRAINING, System.nanoTime() + timeout.toNanos(), e -> {
                e.pause(LlmEngine.PauseMode.IN_PLACE);
                refresh();
                result.complete(new DrainResult(started, List.of(), cutMode.name().toLowerCase()));
            }, e -> {
                List<SequenceOutput> cut = e.retractRunning();
                if (cutMode == LlmEngine.PauseMode.ABORT) {
                    Set<String> ids = new HashSet<>();
                    cut.forEach(o -> ids.add(o.rid()));
                    e.abort(ids::contains, "cut by drain");
                }
                e.pause(LlmEngine.PauseMode.IN_PLACE);
                refresh();
                List<String> finished = new ArrayList<>(started);
                cut.forEach(o -> finished.remove(o.rid()));
                result.complete(new DrainResult(finished, cut, cutMode.name().toLowerCase()));
            }));
        });
        return result;
    }

    public LlmEngine.EngineStats stats() {
        return stats;
    }

    public RlStatus status() {
        return status;
    }

    public LlmEngine engine() {
        return engine;
    }

    /** Seconds since the loop last went round; a step in progress counts as busy, not dead. */
    public double heartbeatAgeSeconds() {
        return (System.nanoTime() - heartbeatNanos) / 1e9;
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

    private SequenceOutput finishedBeforeStart(Sequence s, String message) {
        s.finishReason = FinishReason.abort(message);
        s.finishedNanos = System.nanoTime();
        return s.snapshot(engine.weightVersion());
    }
}
