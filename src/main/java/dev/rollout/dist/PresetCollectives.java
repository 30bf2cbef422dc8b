package dev.rollout.dist;

import dev.rollout.dist.C10d.Backend;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.SizeTPointer;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.AllgatherOptions;
import org.bytedeco.pytorch.AllreduceOptions;
import org.bytedeco.pytorch.BroadcastOptions;
import org.bytedeco.pytorch.GlooDeviceVector;
import org.bytedeco.pytorch.PrefixStore;
import org.bytedeco.pytorch.ProcessGroupGloo;
import org.bytedeco.pytorch.Store;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.TCPStoreOptions;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.Work;

/**
 * A c10d group made by the PyTorch presets' own classes: right where their libtorch is the one that
 * runs (the CPU build), and for NCCL (ADR 0025).
 */
final class PresetCollectives implements Collectives {
    private final TCPStore store;
    private final List<PrefixStore> prefixes;   // outermost first
    private final org.bytedeco.pytorch.Backend group;
    private volatile boolean closed;

    private PresetCollectives(TCPStore store, List<PrefixStore> prefixes, org.bytedeco.pytorch.Backend group) {
        this.store = store;
        this.prefixes = prefixes;
        this.group = group;
    }

    static Collectives join(Backend backend, String host, int port, int rank, int world, List<String> keyPrefixes,
                            List<String> glooInterfaces, boolean loopback, Duration timeout) throws C10d.JoinException {
        TCPStore store;
        try {
            TCPStoreOptions o = new TCPStoreOptions();
            o.port((short) port);  // a u16 in C++: the cast keeps the bits
            o.isServer(rank == 0);
            o.numWorkers(new SizeTPointer(1).put(world));
            o.waitWorkers(true);
            o.timeout(new Milliseconds(timeout.toMillis()));
            store = new TCPStore(host, o);
        } catch (RuntimeException e) {
            throw new C10d.JoinException(false, e);
        }
        List<PrefixStore> prefixes = new ArrayList<>();
        try {
            Store keys = store;
            for (String p : keyPrefixes) {
                PrefixStore prefixed = new PrefixStore(p, keys);
                prefixes.add(prefixed);
                keys = prefixed;
            }
            org.bytedeco.pytorch.Backend group = switch (backend) {
                case GLOO -> gloo(keys, rank, world, glooInterfaces, host, loopback, timeout);
                case NCCL -> nccl(keys, rank, world, timeout);
            };
            return new PresetCollectives(store, prefixes, group);
        } catch (RuntimeException | LinkageError e) {  // NCCL's JNI library is absent from the CPU build
            closeStores(store, prefixes);
            throw new C10d.JoinException(true, e);
        }
    }

    private static org.bytedeco.pytorch.Backend gloo(Store keys, int rank, int world, List<String> interfaces, String host,
                                                     boolean loopback, Duration timeout) {
        ProcessGroupGloo.Options go = ProcessGroupGloo.Options.create(new Milliseconds(timeout.toMillis()));
        GlooDeviceVector devices = new GlooDeviceVector();
        for (String iface : interfaces) devices.push_back(ProcessGroupGloo.createDeviceForInterface(iface));
        if (interfaces.isEmpty())
            devices.push_back(loopback ? ProcessGroupGloo.createDeviceForHostname(host) : ProcessGroupGloo.createDefaultDevice());
        go.devices(devices);
        return new ProcessGroupGloo(keys, rank, world, go);
    }

    private static org.bytedeco.pytorch.Backend nccl(Store keys, int rank, int world, Duration timeout) {
        org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options o = org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options.create();
        o.timeout(new Milliseconds(timeout.toMillis()));
        return new org.bytedeco.pytorch.nccl.ProcessGroupNCCL(keys, rank, world, o);
    }

    @Override
    public Pending broadcast(Tensor t, int root, Duration timeout) {
        requireOpen();
        BroadcastOptions o = new BroadcastOptions();
        o.rootRank(root);
        o.rootTensor(0);
        o.timeout(new Milliseconds(timeout.toMillis()));
        TensorVector v = new TensorVector(t);
        return pending(() -> group.broadcast(v, o), o, v);
    }

    @Override
    public Pending allReduceSum(Tensor t, Duration timeout) {
        requireOpen();
        AllreduceOptions o = new AllreduceOptions();
        o.timeout(new Milliseconds(timeout.toMillis()));
        TensorVector v = new TensorVector(t);
        return pending(() -> group.allreduce(v, o), o, v);
    }

    @Override
    public Pending allGather(Tensor out, Tensor in, Duration timeout) {
        requireOpen();
        AllgatherOptions o = new AllgatherOptions();
        o.timeout(new Milliseconds(timeout.toMillis()));
        return pending(() -> group._allgather_base(out, in, o), o);
    }

    private void requireOpen() {
        if (closed) throw new IllegalStateException("the c10d group is closed");
    }

    /** Issues the collective; its options and tensor list live as long as the pending work. */
    private static Pending pending(java.util.function.Supplier<Work> issue, Pointer... keep) {
        Work work;
        try {
            work = issue.get();
        } catch (RuntimeException e) {
            for (Pointer p : keep) p.close();
            throw e;
        }
        return new Pending() {
            @Override
            public boolean await(Duration timeout) {
                return work._wait(new Milliseconds(timeout.toMillis()));
            }

            @Override
            public void close() {
                work.close();
                for (Pointer p : keep) p.close();
            }
        };
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            group.close();
        } finally {
            closeStores(store, prefixes);
        }
    }

    private static void closeStores(TCPStore store, List<PrefixStore> prefixes) {
        for (int i = prefixes.size() - 1; i >= 0; i--) prefixes.get(i).close();
        store.close();
    }
}
