package dev.rollout.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Hands sequence snapshots to their listeners on a thread of its own, so that the engine thread
 * does not. A streaming step makes one snapshot per running sequence, and handing one to a
 * waiting HTTP thread wakes that thread: a system call each, 512 a step at 512 streams, while
 * the GPU waits for the next step. Through the relay the engine thread only queues; the relay
 * thread is woken when the queue goes from empty to non-empty, and delivers in queue order, so
 * each listener sees its snapshots in the order they were made.
 *
 * <p>During a step the engine thread {@linkplain #hold() holds} its snapshots and queues them as
 * one batch when the step's outputs are all applied ({@link #release()}): one queue entry, one
 * atomic and at most one wake-up a step instead of one of each per sequence, the engine thread and
 * the relay no longer trading the queue's and the counter's cache lines 512 times a step.
 *
 * <p>The engine's metrics ride along ({@link #observing}): the observer calls a step makes (an
 * inter-token latency per streamed token, a finished sequence's counts, the step's timings) are
 * held too, and the relay makes them before it delivers the step's snapshots. Recording them into
 * MicroProfile Metrics' timers (Micrometer's percentile histograms, behind a CDI proxy) took some
 * 0.3 ms of a 0.58 ms step's host work at 256 streams on the engine thread (issue #20, R6;
 * docs/benchmarks-log.md of 2026-12-07). Before the snapshots, so that a client that has its answer
 * finds its request counted in {@code /metrics}, as when the engine thread recorded them itself.
 */
public final class OutputRelay implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(OutputRelay.class.getName());
    /** How long the relay sleeps when idle before it looks again, should a wake-up be missed. */
    private static final long IDLE_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

    /** What the relay thread does for the engine thread: deliver a snapshot, or make an observer call. */
    private sealed interface Item {
        void run();

        /** What to name when it fails. */
        String what();
    }

    private record Delivery(SequenceListener to, SequenceOutput output) implements Item {
        @Override
        public void run() {
            to.onOutput(output);
        }

        @Override
        public String what() {
            return "a listener failed on the output of " + output.rid();
        }
    }

    private record InterTokenLatency(EngineObserver to, double seconds) implements Item {
        @Override
        public void run() {
            to.onInterTokenLatency(seconds);
        }

        @Override
        public String what() {
            return "an observer failed on an inter-token latency";
        }
    }

    private record Finished(EngineObserver to, SequenceOutput output) implements Item {
        @Override
        public void run() {
            to.onFinished(output);
        }

        @Override
        public String what() {
            return "an observer failed on the end of " + output.rid();
        }
    }

    private record Step(EngineObserver to, int sequences, int tokens, int sampled, double modelSeconds, double hostSeconds)
            implements Item {
        @Override
        public void run() {
            to.onStep(sequences, tokens, sampled, modelSeconds, hostSeconds);
        }

        @Override
        public String what() {
            return "an observer failed on a step";
        }
    }

    /** Batches of items: a step's observer calls, then its deliveries, each in the order they were made. */
    private final ConcurrentLinkedQueue<List<Item>> queue = new ConcurrentLinkedQueue<>();
    /** Batches queued and not yet delivered; the thread that raises it from zero wakes the relay. */
    private final AtomicInteger pending = new AtomicInteger();
    private final Thread thread;
    private volatile boolean running = true;
    /**
     * The thread whose snapshots wait in {@link #held} until it releases them, or null. Only that
     * thread writes it and only the thread that finds itself there touches {@link #held}; any
     * other thread compares it with itself, which a stale value never equals.
     */
    private Thread holder;
    private final ArrayList<Item> held = new ArrayList<>();
    /** The holder's observer calls, which go before its snapshots. */
    private final ArrayList<Item> heldCalls = new ArrayList<>();

    public OutputRelay(ThreadFactory threads) {
        thread = threads.newThread(this::run);
        thread.setName("rollout-output-relay");
        thread.start();
    }

    /** A listener that passes {@code target}'s snapshots through the relay (directly once it is closed). */
    public SequenceListener relaying(SequenceListener target) {
        return output -> {
            Delivery d = new Delivery(target, output);
            if (Thread.currentThread() == holder) held.add(d);
            else enqueue(List.of(d));
        };
    }

    /**
     * An observer that passes the holding thread's calls to {@code target} through the relay, ahead
     * of the snapshots held with them; any other thread's calls (the engine's outside a step: an
     * abort between steps) it makes at once, as it does once the relay is closed.
     */
    public EngineObserver observing(EngineObserver target) {
        return new EngineObserver() {
            @Override
            public void onStep(int sequences, int tokens, int sampled, double modelSeconds, double hostSeconds) {
                call(new Step(target, sequences, tokens, sampled, modelSeconds, hostSeconds));
            }

            @Override
            public void onInterTokenLatency(double seconds) {
                call(new InterTokenLatency(target, seconds));
            }

            @Override
            public void onFinished(SequenceOutput output) {
                call(new Finished(target, output));
            }
        };
    }

    private void call(Item c) {
        if (Thread.currentThread() == holder) heldCalls.add(c);
        else perform(c);
    }

    /** Holds this thread's snapshots from now until {@link #release()}: the engine thread, for a step. */
    public void hold() {
        holder = Thread.currentThread();
    }

    /** Queues what this thread held, as one batch, and stops holding. */
    public void release() {
        if (holder != Thread.currentThread()) return;
        holder = null;
        if (held.isEmpty() && heldCalls.isEmpty()) return;
        List<Item> batch;
        if (heldCalls.isEmpty()) {
            batch = List.copyOf(held);
        } else {
            batch = new ArrayList<>(heldCalls.size() + held.size());
            batch.addAll(heldCalls);
            batch.addAll(held);
            heldCalls.clear();
        }
        held.clear();
        enqueue(batch);
    }

    private void enqueue(List<Item> batch) {
        if (!running) {
            batch.forEach(OutputRelay::perform);
            return;
        }
        queue.add(batch);
        if (pending.getAndIncrement() == 0) LockSupport.unpark(thread);
    }

    private void run() {
        while (running || !queue.isEmpty()) {
            List<Item> batch = queue.poll();
            if (batch == null) {
                LockSupport.parkNanos(this, IDLE_PARK_NANOS);
                continue;
            }
            for (Item item : batch) perform(item);
            pending.decrementAndGet();
        }
    }

    private static void perform(Item item) {
        try {
            item.run();
        } catch (RuntimeException e) {  // one listener's (or the metrics') failure must not stop the others' outputs
            LOG.log(Level.WARNING, item.what(), e);
        }
    }

    /** Delivers what is queued, then stops the relay thread (waiting for it up to 10 s). */
    @Override
    public void close() {
        running = false;
        LockSupport.unpark(thread);
        try {
            thread.join(TimeUnit.SECONDS.toMillis(10));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (List<Item> batch; (batch = queue.poll()) != null; ) batch.forEach(OutputRelay::perform);  // queued as the relay stopped
    }
}
