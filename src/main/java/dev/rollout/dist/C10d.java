package dev.rollout.dist;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/**
 * How this project forms c10d groups, in one place: the rendezvous store, the keys' prefixes,
 * gloo's devices, and which build of libtorch's c10d makes them. A weight-update group
 * ({@link WeightSyncGroup}), a tensor-parallel group ({@code model.C10dTpGroup}) and a trainer's
 * group ({@code trainer.TrainerGroup}) differ in their keys and deadlines, not in these.
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
     * Meets the other ranks and forms a group: the rendezvous store at {@code host:port}, hosted
     * by rank 0 and joined by the others, with torch's rendezvous options ({@code numWorkers} the
     * world, {@code waitWorkers} on every rank, so that each client counts itself in and rank 0
     * waits for all); the group's keys under {@code prefixes}, outermost first, each as torch's
     * {@code PrefixStore} names them; then the group, once all {@code world} ranks have connected.
     * Each stage is bounded by {@code timeout}.
     *
     * <p>A gloo group is made by our preset where its library is loaded (the GPU build, ADR 0025):
     * it was compiled against the libtorch that runs, the presets' glue against another. Elsewhere,
     * and for NCCL (whose headers the node may lack), the presets make it.
     *
     * @throws JoinException naming whether the store was reached
     */
    public static Collectives join(Backend backend, String host, int port, int rank, int world, List<String> prefixes,
                                   Duration timeout) throws JoinException {
        if (world < 1 || rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " of a world of " + world);
        if (port < 1 || port > 65535) throw new IllegalArgumentException("port " + port + " is not a TCP port");
        if (backend == Backend.GLOO && NativeC10d.available())
            return NativeCollectives.join(host, port, rank, world, prefixes, glooInterfaces(), loopback(host) ? host : "", timeout);
        // on a CUDA build the presets' gloo classes do not match the libtorch that runs: forming one there
        // crashed the process (ADR 0025), so without our preset the group is refused, with the reason
        if (backend == Backend.GLOO && org.bytedeco.pytorch.global.torch.cuda_is_available())
            throw new JoinException(false, new IllegalStateException("gloo groups on a CUDA build need our native preset, which did not load ("
                    + NativeC10d.whyUnavailable() + "; docs/gpu.md says how start.sh builds it)"));
        return PresetCollectives.join(backend, host, port, rank, world, prefixes, glooInterfaces(), loopback(host), timeout);
    }

    /** Why a group did not form, and whether the ranks had met at the store before it failed. */
    public static final class JoinException extends Exception {
        private final boolean storeReached;

        JoinException(boolean storeReached, Throwable cause) {
            super(firstLine(cause), cause);
            this.storeReached = storeReached;
        }

        /** False when the store was not reached (no master there, or not all ranks came in time). */
        public boolean storeReached() {
            return storeReached;
        }
    }

    /**
     * The interfaces {@code GLOO_SOCKET_IFNAME} names, as torch's Python binding reads it. Without
     * them a group's device is, for a loopback master (one host), the loopback device; else the
     * host's default device: a rank on another node must not bind to the master's address.
     */
    static List<String> glooInterfaces() {
        String names = System.getenv("GLOO_SOCKET_IFNAME");
        if (names == null || names.isBlank()) return List.of();
        return Arrays.stream(names.split(",")).map(String::trim).filter(n -> !n.isEmpty()).toList();
    }

    static boolean loopback(String host) {
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            return false;
        }
    }

    /** libtorch's messages carry a C++ stack after their first line: the first line is the reason. */
    public static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
