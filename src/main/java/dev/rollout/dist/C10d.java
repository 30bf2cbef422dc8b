package dev.rollout.dist;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import org.bytedeco.javacpp.SizeTPointer;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.GlooDeviceVector;
import org.bytedeco.pytorch.ProcessGroupGloo;
import org.bytedeco.pytorch.Store;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.TCPStoreOptions;

/**
 * How this project forms c10d groups from the presets, in one place: the rendezvous store, gloo's
 * devices, NCCL's constructor. A weight-update group ({@link WeightSyncGroup}) and a
 * tensor-parallel group ({@code model.C10dTpGroup}) differ in their keys and deadlines, not in these.
 */
public final class C10d {
    private C10d() {}

    /** The collective backends: gloo for host tensors, NCCL for CUDA tensors. */
    public enum Backend {
        GLOO, NCCL;

        /** SGLang's and torch's spelling ("gloo", "nccl"), case-insensitive. */
        public static Backend parse(String name) {
            return switch (name.toLowerCase(java.util.Locale.ROOT)) {
                case "gloo" -> GLOO;
                case "nccl" -> NCCL;
                default -> throw new IllegalArgumentException("backend '" + name + "' is not supported: use 'nccl' or 'gloo'");
            };
        }

        /** The device prefix torch puts in front of the backend's store keys. */
        public String device() {
            return this == GLOO ? "cpu" : "cuda";
        }
    }

    /**
     * The rendezvous store at {@code host:port}: hosted by rank 0, joined by the others, with
     * torch's rendezvous options ({@code numWorkers} the world, {@code waitWorkers} on every rank,
     * so that each client counts itself in and rank 0 waits for all). Throws libtorch's
     * RuntimeException if the ranks do not meet within {@code timeout}.
     */
    public static TCPStore store(String host, int port, int rank, int world, Duration timeout) {
        if (port < 1 || port > 65535) throw new IllegalArgumentException("port " + port + " is not a TCP port");
        TCPStoreOptions o = new TCPStoreOptions();
        o.port((short) port);  // a u16 in C++: the cast keeps the bits
        o.isServer(rank == 0);
        o.numWorkers(new SizeTPointer(1).put(world));
        o.waitWorkers(true);
        o.timeout(new Milliseconds(timeout.toMillis()));
        return new TCPStore(host, o);
    }

    /** A gloo group over {@code keys}, every operation bounded by {@code timeout}. */
    public static org.bytedeco.pytorch.Backend gloo(Store keys, int rank, int world, String host, Duration timeout) {
        ProcessGroupGloo.Options go = ProcessGroupGloo.Options.create(new Milliseconds(timeout.toMillis()));
        go.devices(glooDevices(host));
        return new ProcessGroupGloo(keys, rank, world, go);
    }

    /**
     * The interfaces {@code GLOO_SOCKET_IFNAME} names, as torch's Python binding reads it; else,
     * for a loopback master (one host), the loopback device; else the host's default device. A
     * rank on another node must not bind to the master's address.
     */
    static GlooDeviceVector glooDevices(String host) {
        GlooDeviceVector devices = new GlooDeviceVector();
        String ifnames = System.getenv("GLOO_SOCKET_IFNAME");
        if (ifnames != null && !ifnames.isBlank()) {
            for (String iface : ifnames.split(",")) devices.push_back(ProcessGroupGloo.createDeviceForInterface(iface.trim()));
        } else if (loopback(host)) {
            devices.push_back(ProcessGroupGloo.createDeviceForHostname(host));
        } else {
            devices.push_back(ProcessGroupGloo.createDefaultDevice());
        }
        return devices;
    }

    private static boolean loopback(String host) {
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            return false;
        }
    }

    /**
     * An NCCL group over {@code keys}. NCCL lives in the presets' GPU build only: on the CPU build
     * its JNI library is absent and this throws a LinkageError.
     */
    public static org.bytedeco.pytorch.Backend nccl(Store keys, int rank, int world, Duration timeout) {
        org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options o = org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options.create();
        o.timeout(new Milliseconds(timeout.toMillis()));
        return new org.bytedeco.pytorch.nccl.ProcessGroupNCCL(keys, rank, world, o);
    }

    /** libtorch's messages carry a C++ stack after their first line: the first line is the reason. */
    public static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
