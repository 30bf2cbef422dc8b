package dev.rollout.dist;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.ByRef;
import org.bytedeco.javacpp.annotation.Const;
import org.bytedeco.javacpp.annotation.Namespace;
import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.StdString;
import org.bytedeco.pytorch.Tensor;

/**
 * Our JavaCPP peer for {@code native-presets/include/rollout_c10d.h}: gloo groups made and used by
 * C++ compiled against the node's libtorch, in the same JNI library as the kernels
 * ({@code model.RolloutCuda}), built where it runs. The presets' own JNI glue was compiled against
 * another libtorch, and the c10d objects it allocates or whose fields it writes have another layout
 * there (ADR 0025). Every object is an opaque handle, released once by {@link #release}. Where the
 * library is absent (the CPU build: there the presets' libtorch is theirs) {@link #available()} is
 * false and {@link C10d} uses the presets.
 */
@Platform(include = "rollout_c10d.h", library = "jniRolloutCuda")
@Namespace("rollout::c10d")
final class NativeC10d {
    private static final Throwable MISSING = load();

    private NativeC10d() {}

    private static Throwable load() {
        try {
            Loader.load(NativeC10d.class);
        } catch (Throwable t) {
            return t;
        }
        try {
            // Loader.load returns without the library where another class of it tried first: a
            // native call is what proves it loaded
            release(0);
            return null;
        } catch (UnsatisfiedLinkError e) {
            return new UnsatisfiedLinkError("no jniRolloutCuda loaded: " + e.getMessage());
        }
    }

    /** True when the JNI library loaded. */
    static boolean available() {
        return MISSING == null;
    }

    /** Why the library did not load, or null. */
    static String whyUnavailable() {
        return MISSING == null ? null : MISSING.toString();
    }

    /** torch's rendezvous store, hosted by rank 0 and joined by the others; a store handle. */
    static native long tcpStore(@StdString String host, int port, boolean isServer, int world, long timeoutMs);

    /** The keys of {@code store} under {@code prefix}; a store handle. */
    static native long prefixStore(long store, @StdString String prefix);

    /**
     * A gloo group over {@code store}, its device on each interface of {@code ifnames}
     * (comma-separated) if any, else on {@code hostname}'s address if not empty, else gloo's
     * default; a group handle.
     */
    static native long glooGroup(long store, int rank, int size, @StdString String ifnames, @StdString String hostname,
                                 long timeoutMs);

    /** A broadcast from {@code root} into every rank's {@code t}; a handle of the pending work. */
    static native long broadcast(long group, @Const @ByRef Tensor t, int root, long timeoutMs);

    /** The sum over the ranks into every rank's {@code t}; a handle of the pending work. */
    static native long allReduceSum(long group, @Const @ByRef Tensor t, long timeoutMs);

    /** Every rank's {@code in}, concatenated along dim 0 into {@code out}; a handle of the pending work. */
    static native long allGather(long group, @Const @ByRef Tensor out, @Const @ByRef Tensor in, long timeoutMs);

    /** True once the work completed; false or a RuntimeException when the deadline passed first. */
    static native boolean await(long work, long timeoutMs);

    /** Lets the handle's object go. */
    static native void release(long handle);
}
