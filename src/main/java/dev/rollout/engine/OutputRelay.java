package dev.rollout.engine;

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
 */
public final class OutputRelay implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(OutputRelay.class.getName());
    /** How long the relay sleeps when idle before it looks again, should a wake-up be missed. */
    private static final long IDLE_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

    private record Delivery(SequenceListener to, SequenceOutput output) {}

    private final ConcurrentLinkedQueue<Delivery> queue = new ConcurrentLinkedQueue<>();
    /** Queued and not yet delivered; the thread that raises it from zero wakes the relay. */
    private final AtomicInteger pending = new AtomicInteger();
    private final Thread thread;
    private volatile boolean running = true;

    public OutputRelay(ThreadFactory threads) {
        thread = threads.newThread(this::run);
        thread.setName("rollout-output-relay");
        thread.start();
    }

    /** A listener that passes {@code target}'s snapshots through the relay (directly once it is closed). */
    public SequenceListener relaying(SequenceListener target) {
        return output -> {
            if (!running) {
                deliver(new Delivery(target, output));
                return;
            }
            queue.add(new Delivery(target, output));
            if (pending.getAndIncrement() == 0) LockSupport.unpark(thread);
        };
    }

    private void run() {
        while (running || !queue.isEmpty()) {
            Delivery d = queue.poll();
            if (d == null) {
                LockSupport.parkNanos(this, IDLE_PARK_NANOS);
                continue;
            }
            deliver(d);
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
        for (Delivery d; (d = queue.poll()) != null; ) deliver(d);  // queued as the relay stopped
    }
}
