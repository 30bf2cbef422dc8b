package dev.rollout.engine;

import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.bytedeco.pytorch.InferenceMode;

/**
 * The one thread that owns the engine. Other threads never touch engine state: they enqueue
 * commands (add, abort, flush) that run between steps. The loop never dies from a failed step:
 * it aborts what was running with the error, so no caller waits forever, and carries on.
 */
public final class EngineLoop implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(EngineLoop.class.getName());
    private static final long IDLE_POLL_MS = 50;

    private final LlmEngine engine;
    private final BlockingQueue<Runnable> commands = new LinkedBlockingQueue<>();
    private volatile boolean running = true;
    private volatile long heartbeatNanos = System.nanoTime();
    private volatile LlmEngine.EngineStats stats;
    private final Thread thread;

    public EngineLoop(LlmEngine engine, ThreadFactory threads) {
        this.engine = engine;
        this.stats = engine.stats();
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
                if (engine.hasWork()) {
                    step();
                } else {
                    stats = engine.stats();
                    cmd = commands.poll(IDLE_POLL_MS, TimeUnit.MILLISECONDS);
                    if (cmd != null) runCommand(cmd);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            engine.abort(rid -> true, "server shutting down");
        }
    }

    private void step() {
        try {
            engine.step();
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "engine step failed; aborting the running requests", t);
            engine.abort(rid -> true, "internal error in the engine step: " + t);
        }
        stats = engine.stats();
    }

    private void runCommand(Runnable cmd) {
        try {
            cmd.run();
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "engine command failed", t);
        }
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
                result.complete(f.apply(engine));
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

    public LlmEngine.EngineStats stats() {
        return stats;
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
    }

    private SequenceOutput finishedBeforeStart(Sequence s, String message) {
        s.finishReason = FinishReason.abort(message);
        s.finishedNanos = System.nanoTime();
        return s.snapshot(engine.weightVersion());
    }
}
