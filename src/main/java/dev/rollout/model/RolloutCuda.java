package dev.rollout.model;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.ByRef;
import org.bytedeco.javacpp.annotation.ByVal;
import org.bytedeco.javacpp.annotation.Const;
import org.bytedeco.javacpp.annotation.Namespace;
import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.pytorch.Tensor;

/**
 * Our JavaCPP peer for {@code native-presets/include/rollout_cuda.h}. Its JNI library is built on
 * the GPU machine against the libtorch that runs the server ({@code native-presets/cppbuild.sh};
 * the distribution's start script does it once per torch version), because libtorch's C++ ABI
 * changes between versions. Where the library is absent (CPU, or no compiler there) the engine
 * goes on without it: {@link #available()} says which.
 */
@Platform(include = "rollout_cuda.h", library = "jniRolloutCuda")
@Namespace("rollout")
public final class RolloutCuda {
    private static final Throwable MISSING = load();

    private RolloutCuda() {}

    private static Throwable load() {
        try {
            Loader.load(RolloutCuda.class);
        } catch (Throwable t) {
            return t;
        }
        try {
            // Loader.load returns without the library where another class of it tried first: a
            // native call is what proves it loaded
            pagedDecodeSplits(1, 1, 64, 1, 16, 16);  // fixed partitions: no CUDA call
            return null;
        } catch (UnsatisfiedLinkError e) {
            return new UnsatisfiedLinkError("no jniRolloutCuda loaded: " + e.getMessage());
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

    /**
     * How many splits (thread blocks per sequence and KV head) {@link #pagedDecodeAttention} uses
     * for this batch on the current device: the workspaces' third dimension. With
     * {@code partitionTokens} 0 they depend on the batch and the card (enough to fill it when the
     * batch does not, and the contexts past 2,048 tokens when it does); with
     * {@code partitionTokens > 0} on the context only (partitions of that many tokens).
     */
    public static native int pagedDecodeSplits(int batch, int numKvHeads, int headDim, int maxBlocks, int blockSize,
                                               int partitionTokens);

    /*
     * Our kernels take libtorch's tensors, as the presets' own functions do (@Const @ByRef: the
     * C++ side gets the at::Tensor the Java object holds, no copy): the C++ side checks each one's
     * device, dtype, dimensions, contiguity and the sizes that must agree
     * (native-presets/include/rollout_checks.h) before a kernel touches its memory, and throws a
     * RuntimeException naming the op, the argument and what is wrong (ADR 0014). Outputs are
     * tensors the caller allocated; the kernels write them in place, on libtorch's current stream.
     */

    /**
     * Decode attention straight from the paged KV cache ({@code native-presets/src/paged_attention.cu}):
     * q and out (B, nH, D) bf16, the caches (slots, nKv, D) bf16, blockTable (B, maxBlocks) and
     * seqLens (B) int64, workspaces partM and partL (B, nH, S) and partAcc (B, nH, S, D) float32,
     * with S = {@link #pagedDecodeSplits}(B, nKv, maxBlocks, blockSize, partitionTokens), and
     * counters (B, nKv) int32, zero before the call and left zero by it. {@code partitionTokens}
     * 0 lets each sequence's context be cut by the grid's splits; a positive value cuts it into
     * partitions of that many tokens at fixed positions, so that a sequence's output does not
     * depend on the batch (deterministic mode).
     */
    public static native void pagedDecodeAttention(@Const @ByRef Tensor q, @Const @ByRef Tensor kCache,
                                                   @Const @ByRef Tensor vCache, @Const @ByRef Tensor blockTable,
                                                   @Const @ByRef Tensor seqLens, @Const @ByRef Tensor partM,
                                                   @Const @ByRef Tensor partL, @Const @ByRef Tensor partAcc,
                                                   @Const @ByRef Tensor counters, @Const @ByRef Tensor out, int blockSize,
                                                   int partitionTokens, float scale);

    /** Fused RMSNorm ({@code native-presets/src/fused_ops.cu}): x and out (rows, hidden) bf16, w (hidden); out = norm(x) * w. */
    public static native void rmsNorm(@Const @ByRef Tensor x, @Const @ByRef Tensor w, @Const @ByRef Tensor out, float eps);

    /** The residual add and the RMSNorm after it: hOut = x + delta, out = norm(hOut) * w; all (rows, hidden) bf16 but w. */
    public static native void addRmsNorm(@Const @ByRef Tensor x, @Const @ByRef Tensor delta, @Const @ByRef Tensor hOut,
                                         @Const @ByRef Tensor w, @Const @ByRef Tensor out, float eps);

    /** out (rows, inter) = silu(gateUp[:, :inter]) * gateUp[:, inter:], bf16. */
    public static native void siluAndMul(@Const @ByRef Tensor gateUp, @Const @ByRef Tensor out);

    /**
     * From the fused projection qkv (T, (nH + 2 nKv) D): optional per-head RMSNorm of q and k, RoPE
     * at each token's position (int64), q into qOut (T, nH, D), k and v into the caches
     * (slots, nKv, D) at each token's slot (int64). cos and sin are (maxPos, D) bf16; qNorm and
     * kNorm (D) are both null for models without the per-head norm.
     */
    public static native void ropeAndCache(@Const @ByRef Tensor qkv, @Const @ByRef Tensor positions,
                                           @Const @ByRef Tensor slots, @Const @ByRef Tensor cos, @Const @ByRef Tensor sin,
                                           @Const Tensor qNorm, @Const Tensor kNorm, @Const @ByRef Tensor qOut,
                                           @Const @ByRef Tensor kCache, @Const @ByRef Tensor vCache, float eps);

    /**
     * One token per row of float32 or bf16 logits (rows, vocab): the argmax where temperature is 0, else a
     * draw from softmax(logits / T) at the row's uniform in [0, 1). out (rows, 2) float32 gets
     * (token, its logprob under softmax(logits / T)). temperature and uniform are (rows) float32.
     * maskWords (T, ceil(vocab / 64)) int64 and maskRow (rows) int64, both null or neither:
     * constrained decoding's masks, row r taking only the tokens whose bits are set in
     * maskWords[maskRow[r]] (BitSet's layout), -1 for none.
     */
    public static native void sampleRows(@Const @ByRef Tensor logits, @Const @ByRef Tensor temperature,
                                         @Const @ByRef Tensor uniform, @Const @ByRef Tensor out,
                                         @Const Tensor maskWords, @Const Tensor maskRow);

    /**
     * A mixture of experts' GEMMs for all experts at once (libtorch's {@code _grouped_mm}): the rows
     * of {@code x} (T, K) in groups, group e ending at row {@code offsets[e]} ((E) int32, cumulative,
     * rows sorted by expert), each times its expert's {@code w[e]}ᵀ ({@code w} (E, N, K), as a
     * checkpoint stores a linear layer); returns (T, N). No host sync: the sizes stay on the device.
     */
    public static native @ByVal Tensor groupedMm(@Const @ByRef Tensor x, @Const @ByRef Tensor w, @Const @ByRef Tensor offsets);

    /**
     * A mixture of experts' routing ({@code native-presets/src/moe.cu}): softmax (float32) over the
     * router's logits (T, E) bf16, the top k most probable first into weights (T, k) float32 and
     * experts (T, k) int32, renormalised over the k where asked and rounded to bf16 where asked;
     * where {@code routed} (slots, k) int32 and {@code slots} (T) int64 are given (both or neither),
     * each token's experts also at its slot.
     */
    public static native void moeRoute(@Const @ByRef Tensor logits, @Const @ByRef Tensor weights, @Const @ByRef Tensor experts,
                                       @Const Tensor routed, @Const Tensor slots, boolean renormalize, boolean roundWeights);

    /**
     * The T k copies of {@code experts} (T, k) int32 sorted by expert, stably: {@code rowOf} (T k)
     * int64, each copy's row; {@code tokenOf} (T k) int64, each row's token; {@code ends} (E) int32,
     * where each expert's block of rows ends (the grouped GEMMs' offsets).
     */
    public static native void moeAlign(@Const @ByRef Tensor experts, @Const @ByRef Tensor rowOf, @Const @ByRef Tensor tokenOf,
                                       @Const @ByRef Tensor ends);

    /**
     * out (T, H) bf16 = for each token the sum over its choices j, in order, of
     * weights[t, j] * ys[rowOf[t k + j]] (ys (T k, H) bf16), in float32; each product rounded to
     * bf16 first where {@code roundProducts}.
     */
    public static native void moeCombine(@Const @ByRef Tensor ys, @Const @ByRef Tensor rowOf, @Const @ByRef Tensor weights,
                                         @Const @ByRef Tensor out, boolean roundProducts);

    /**
     * A mixture of experts' gate-up GEMM with SiLU-and-mul, as matrix-vector products for a few
     * copies ({@code native-presets/src/moe_gemv.cu}): act (N, I) bf16 = silu(x[tokenOf] gate) *
     * (x[tokenOf] up) of each sorted row's expert; x (T, H), gateUp (E, 2I, H) bf16, tokenOf (N)
     * int64 and ends (E) int32 as {@link #moeAlign} leaves them. H a multiple of 8; N at most 65535.
     */
    public static native void moeGateUp(@Const @ByRef Tensor x, @Const @ByRef Tensor tokenOf, @Const @ByRef Tensor gateUp,
                                        @Const @ByRef Tensor ends, @Const @ByRef Tensor act);

    /** The down GEMM the same way: ys (N, H) bf16 = act (N, I) down (E, H, I) of each row's expert; I a multiple of 8. */
    public static native void moeDown(@Const @ByRef Tensor act, @Const @ByRef Tensor down, @Const @ByRef Tensor ends,
                                      @Const @ByRef Tensor ys);

    /**
     * A dense projection at decode's few rows ({@code native-presets/src/dense_gemv.cu}), all bf16:
     * x (rows, K), rows 1 to {@link #gemvMaxRows()}; w (N, K). Epilogue 0: out (rows, N) = xn w^T
     * (+ bias (N)); 1: out (rows, N) += x w^T in place (the residual add); 2: out (rows, N / 2) =
     * silu(g) * u of g|u = xn w^T. xn is RMSNorm(x) * normW (K) where normW is given (epilogues 0
     * and 2), else x.
     */
    public static native void denseGemv(@Const @ByRef Tensor x, @Const Tensor normW, @Const @ByRef Tensor w, @Const Tensor bias,
                                        @Const @ByRef Tensor out, int epilogue, float eps);

    /** The most rows {@link #denseGemv} takes. */
    public static native int gemvMaxRows();

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
