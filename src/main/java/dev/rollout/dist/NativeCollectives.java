package dev.rollout.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.Tensor;

/**
 * A gloo group made and run by our preset ({@link NativeC10d}), compiled against the libtorch that
 * runs (ADR 0025). It holds the handles of its stores and of the group, and each pending
 * collective its own, each released once.
 */
final class NativeCollectives implements Collectives {
    private final List<Long> stores;   // the TCP store first, then each prefix
    private final long group;
    private boolean closed;

    private NativeCollectives(List<Long> stores, long group) {
        this.stores = stores;
        this.group = group;
    }

    static Collectives join(String host, int port, int rank, int world, List<String> keyPrefixes, List<String> glooInterfaces,
                            String loopbackHost, Duration timeout) throws C10d.JoinException {
        long ms = timeout.toMillis();
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
        return pending(NativeC10d.broadcast(group, t, root, timeout.toMillis()));
    }

    @Override
    public Pending allReduceSum(Tensor t, Duration timeout) {
        return pending(NativeC10d.allReduceSum(group, t, timeout.toMillis()));
    }

    @Override
    public Pending allGather(Tensor out, Tensor in, Duration timeout) {
        return pending(NativeC10d.allGather(group, out, in, timeout.toMillis()));
    }

    private static Pending pending(long work) {
        return new Pending() {
            private boolean released;

            @Override
            public boolean await(Duration timeout) {
                return NativeC10d.await(work, Math.max(1, timeout.toMillis()));
            }

            @Override
            public synchronized void close() {
                if (released) return;
                released = true;
                NativeC10d.release(work);
            }
        };
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            NativeC10d.release(group);
        } finally {
            release(stores);
        }
    }

    private static void release(List<Long> stores) {
        for (int i = stores.size() - 1; i >= 0; i--) NativeC10d.release(stores.get(i));
    }
}
