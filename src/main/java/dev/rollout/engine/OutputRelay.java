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
 */
public final class OutputRelay implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(OutputRelay.class.getName());
    /** How long the relay sleeps when idle before it looks again, should a wake-up be missed. */
    private static final long IDLE_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

    private record Delivery(SequenceListener to, SequenceOutput output) {}

    /** Batches of deliveries, each in the order its snapshots were made. */
    private final ConcurrentLinkedQueue<List<Delivery>> queue = new ConcurrentLinkedQueue<>();
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
    private final ArrayList<Delivery> held = new ArrayList<>();

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

    /** Holds this thread's snapshots from now until {@link #release()}: the engine thread, for a step. */
    public void hold() {
        holder = Thread.currentThread();
    }

    /** Queues what this thread held, as one batch, and stops holding. */
    public void release() {
        if (holder != Thread.currentThread()) return;
        holder = null;
        if (held.isEmpty()) return;
        List<Delivery> batch = List.copyOf(held);
        held.clear();
        enqueue(batch);
    }

    private void enqueue(List<Delivery> batch) {
        if (!running) {
            batch.forEach(OutputRelay::deliver);
            return;
        }
        queue.add(batch);
        if (pending.getAndIncrement() == 0) LockSupport.unpark(thread);
    }

    private void run() {
        while (running || !queue.isEmpty()) {
            List<Delivery> batch = queue.poll();
            if (batch == null) {
                LockSupport.parkNanos(this, IDLE_PARK_NANOS);
                continue;
            }
            for (Delivery d : batch) deliver(d);
            pending.decrementAndGet();
        }
    }

    private static void deliver(Delivery d) {
        try {
            d.to().onOutput(d.output());
        } catch (RuntimeException e) {  // one listener's failure must not stop the others' outputs
            LOG.log(Level.WARNING, "a listener failed on the output of " + d.output().rid(), e);
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
        for (List<Delivery> batch; (batch = queue.poll()) != null; ) batch.forEach(OutputRelay::deliver);  // queued as the relay stopped
    }
}
