package dev.rollout.model;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Namespace;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * Our JavaCPP peer for {@code native-presets/include/rollout_cuda.h}. Its JNI library is built on
 * the GPU machine against the libtorch that runs the server ({@code native-presets/cppbuild.sh};
 * the distribution's start script does it once per torch version), because libtorch's C++ ABI
 * changes between versions. Where the library is absent (CPU, or no compiler there) the engine
 * goes on without it: {@link #available()} says which.
 */
@Platform(include = "rollout_cuda.h")
@Namespace("rollout")
public final class RolloutCuda {
    private static final Throwable MISSING = load();

    private RolloutCuda() {}

    private static Throwable load() {
        try {
            Loader.load(RolloutCuda.class);
            return null;
        } catch (Throwable t) {
            return t;
        }
    }

    /** True when the JNI library loaded. */
    public static boolean available() {
        return MISSING == null;
    }

    /** Why the library did not load, or null. */
    public static String whyUnavailable() {
        return MISSING == null ? null : MISSING.toString();
    }

    /** Waits for the device, then gives libtorch's cached free blocks back to it. */
    public static native void emptyCache();
}
