package dev.rollout.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.LongSupplier;
import org.bytedeco.pytorch.Tensor;

/**
 * A gloo group made and run by our preset ({@link NativeC10d}), compiled against the libtorch that
 * runs (ADR 0025). It holds the handles of its stores and of the group, and each pending
 * collective its own, each released once. A closed group's handles are gone: issuing or awaiting
 * on it throws, and closing waits for whatever is being issued or awaited (a read-write lock), so
 * that no native call ever meets a freed handle.
 */
final class NativeCollectives implements Collectives {
    private final List<Long> stores;   // the TCP store first, then each prefix
    private final long group;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private boolean closed;  // under the write lock

    private NativeCollectives(List<Long> stores, long group) {
        this.stores = stores;
        this.group = group;
    }

    static Collectives join(String host, int port, int rank, int world, List<String> keyPrefixes, List<String> glooInterfaces,
                            String loopbackHost, Duration timeout) throws C10d.JoinException {
        long ms = millis(timeout);
        List<Long> stores = new ArrayList<>();
        try {
            stores.add(NativeC10d.tcpStore(host, port, rank == 0, world, ms));
        } catch (RuntimeException e) {
            throw new C10d.JoinException(false, e);
        }
        try {
            for (String p : keyPrefixes) stores.add(NativeC10d.prefixStore(stores.get(stores.size() - 1), p));
            long group = NativeC10d.glooGroup(stores.get(stores.size() - 1), rank, world, String.join(",", glooInterfaces),
                    loopbackHost, ms);
            return new NativeCollectives(stores, group);
        } catch (RuntimeException e) {
            release(stores);
            throw new C10d.JoinException(true, e);
        }
    }

    @Override
    public Pending broadcast(Tensor t, int root, Duration timeout) {
        return issue(() -> NativeC10d.broadcast(group, t, root, millis(timeout)));
    }

    @Override
    public Pending allReduceSum(Tensor t, Duration timeout) {
        return issue(() -> NativeC10d.allReduceSum(group, t, millis(timeout)));
    }

    @Override
    public Pending allGather(Tensor out, Tensor in, Duration timeout) {
        return issue(() -> NativeC10d.allGather(group, out, in, millis(timeout)));
    }

    /** c10d counts in whole milliseconds, at least one. */
    private static long millis(Duration d) {
        return Math.max(1, d.toMillis());
    }

    private Pending issue(LongSupplier collective) {
        long work = underReadLock(collective);
        return new Pending() {
            private boolean released;

            @Override
            public boolean await(Duration timeout) {
                synchronized (this) {
                    if (released) throw new IllegalStateException("this collective was already released");
                }
                return underReadLock(() -> NativeC10d.await(work, millis(timeout)) ? 1 : 0) == 1;
            }

            @Override
            public synchronized void close() {
                if (released) return;
                released = true;
                NativeC10d.release(work);  // a work's handle holds its own reference: it outlives the group's
            }
        };
    }

    private long underReadLock(LongSupplier call) {
        lock.readLock().lock();
        try {
            if (closed) throw new IllegalStateException("the c10d group is closed");
            return call.getAsLong();
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (closed) return;
            closed = true;
            try {
                NativeC10d.release(group);
            } finally {
                release(stores);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    private static void release(List<Long> stores) {
        for (int i = stores.size() - 1; i >= 0; i--) NativeC10d.release(stores.get(i));
    }
}
