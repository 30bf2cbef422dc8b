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

    /**
     * libtorch's caching allocator on the current device, in bytes: {@code which} 0 allocated to
     * tensors now, 1 the most allocated so far, 2 reserved from the device now, 3 the most reserved.
     */
    public static native long memoryStat(int which);

    /** Starts the "most so far" figures of {@link #memoryStat} again from now. */
    public static native void resetPeakMemoryStats();

    /** How many context partitions {@link #pagedDecodeAttention} uses: the workspaces' third dimension. */
    public static native int pagedDecodePartitions(int maxBlocks, int blockSize);

    /**
     * Decode attention straight from the paged KV cache, on libtorch's current stream
     * ({@code native-presets/src/paged_attention.cu}). Arguments are tensors' {@code data_ptr}s:
     * q and out (B, nH, D) bf16, the caches (slots, nKv, D) bf16, blockTable (B, maxBlocks) and
     * seqLens (B) int64, workspaces partM and partL (B, nH, P) and partAcc (B, nH, P, D) float32.
     */
    public static native void pagedDecodeAttention(long q, long kCache, long vCache, long blockTable, long seqLens,
                                                   long partM, long partL, long partAcc, long out, int batch, int numHeads,
                                                   int numKvHeads, int headDim, int blockSize, int maxBlocks, float scale);

    /**
     * Fused RMSNorm (native-presets/src/fused_ops.cu), rows of {@code hidden} bf16 values:
     * out = norm(x) * w; with {@code delta} != 0, first hOut = x + delta and out = norm(hOut) * w.
     */
    public static native void rmsNorm(long x, long delta, long hOut, long w, long out, int rows, int hidden, float eps);

    /** out (rows, inter) = silu(gateUp[:, :inter]) * gateUp[:, inter:], bf16. */
    public static native void siluAndMul(long gateUp, long out, int rows, int inter);

    /**
     * From the fused projection qkv (T, (nH + 2 nKv) D): optional per-head RMSNorm of q and k, RoPE
     * at each token's position (int64), q into qOut (T, nH, D), k and v into the caches at each
     * token's slot (int64). cos and sin are (maxPos, D) bf16; qNorm and kNorm may be 0.
     */
    public static native void ropeAndCache(long qkv, long positions, long slots, long cos, long sin, long qNorm, long kNorm,
                                           long qOut, long kCache, long vCache, int tokens, int numHeads, int numKvHeads,
                                           int headDim, float eps);

    /**
     * One token per row of float32 logits (rows, vocab): the argmax where temperature is 0, else a
     * draw from softmax(logits / T) at the row's uniform in [0, 1). out (rows, 2) float32 gets
     * (token, its logprob under softmax(logits / T)). temperature and uniform are (rows) float32.
     */
    public static native void sampleRows(long logits, long temperature, long uniform, long out, int rows, int vocab);

    /** Runs this thread's later libtorch work on the capture stream (the warm-up before a capture). */
    public static native void useCaptureStream();

    /** Back to the default stream once the capture stream's work is done. */
    public static native void useDefaultStream();

    /** Starts capturing this thread's libtorch work into a CUDA graph; returns its handle. */
    public static native long graphBegin();

    /** Ends the capture and returns to the default stream. */
    public static native void graphEnd(long graph);

    /** Replays the graph on the current stream. */
    public static native void graphReplay(long graph);

    /** Frees the graph (its memory stays in the shared pool until every graph is gone). */
    public static native void graphDestroy(long graph);

    /** A CUDA event with timing (PhaseTimer's profiles); events live as long as the process. */
    public static native long eventCreate();

    /** Records the event on the current stream. */
    public static native void eventRecord(long event);

    public static native void eventSynchronize(long event);

    /** GPU milliseconds between two recorded events. */
    public static native float eventElapsedMs(long from, long to);
}
