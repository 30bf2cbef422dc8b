package dev.rollout.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.stream.Collectors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Which of our own kernels a model and the engine over it run, chosen once, before the model is
 * built, and handed to its constructor ({@link CausalLm#load(java.nio.file.Path, ScalarType, Device, Kernels)});
 * the engine takes the sampling and CUDA-graph choices from the model. Nothing switches after
 * construction.
 *
 * <p>{@link #resolve} is the server's and the benchmarks' way: every kernel that was asked for and
 * can serve the model on its device is used, and {@link #notUsed()} says why each other one is not,
 * for the log. A test names the kernels it wants with the canonical constructor or
 * {@link #libtorch}; the model refuses a choice that cannot run ({@link #requireUsable}).
 *
 * @param decodeAttention how decoding sequences attend
 * @param fusedOps        norms, q/k norm + RoPE + K/V write and SiLU-and-mul through fused_ops.cu ({@link FusedLayerOps})
 * @param denseGemv       a dense layer's projections at decode's few rows (up to {@link #GEMV_STEP_ROWS} tokens a step) as
 *                        dense_gemv.cu's matrix-vector products, the norms, the residual adds and SiLU-and-mul fused
 *                        into them: six kernels a layer with the RoPE and attention kernels, where cuBLAS's path takes ten
 * @param fp32LmHead      logits in float32 straight from the LM head's GEMM (SGLang's --enable-fp32-lm-head)
 * @param samplingKernel  rows without top-k/top-p/min-p sampled by sampling.cu
 * @param cudaGraphs      decode-only steps replayed as CUDA graphs ({@link DecodeGraphs}); needs {@link DecodeAttention#PAGED_NATIVE}
 * @param groupedExperts  a mixture of experts' GEMMs as two grouped GEMMs a layer (libtorch's {@code _grouped_mm}, through
 *                        {@link RolloutCuda#groupedMm}), each expert's rows found on the device, instead of a GEMM pair per
 *                        expert sized on the host
 * @param deterministic   every row computed by arithmetic that depends on the row alone (rollout.deterministic, ADR 0026):
 *                        GEMMs in fixed chunks of rows, one blocked attention at absolute positions for prefill and decode
 *                        ({@link BatchInvariantOps}); libtorch's ops on the CPU only, so far
 * @param notUsed         each kernel that was asked for but is not used, with the reason
 */
public record Kernels(DecodeAttention decodeAttention, boolean fusedOps, boolean denseGemv, boolean fp32LmHead, boolean samplingKernel,
                      boolean cudaGraphs, boolean groupedExperts, boolean deterministic, List<NotUsed> notUsed) {

    /** The most rows dense_gemv.cu's kernels take (its gemv_max_rows()). */
    public static final int GEMV_ROWS = 8;
    /**
     * The most tokens a step runs through {@link #denseGemv()}'s kernels; more go to cuBLAS. A
     * layer's projections with their small ops, weights read from HBM (KernelBench gemv:MODEL:B, H100,
     * 2026-12-07; docs/benchmarks.md): ours against cuBLAS's take 19.4 against 30.8 µs at 1 row of
     * 0.5B, 28.5 against 31.2 at 4 and 37.5 against 31.6 at 8; at 7B, 164 against 186 at 1, 179 against
     * 186 at 4, 221 against 189 at 8.
     */
    public static final int GEMV_STEP_ROWS = 4;

    /** libtorch's ops everywhere, decoding sequences gathered: what runs on any device and dtype. */
    public static final Kernels LIBTORCH = libtorch(DecodeAttention.GATHER);

    /** What {@link Kernels} can choose besides libtorch's ops. */
    public enum Kernel {
        FUSED_OPS("fused ops"), DENSE_GEMV("decode matrix-vector kernels"), PAGED_DECODE("paged decode kernel"), SAMPLING("sampling kernel"), CUDA_GRAPHS("CUDA graphs"),
        FP32_LM_HEAD("float32 LM head"), GROUPED_EXPERTS("grouped expert GEMMs");

        private final String label;

        Kernel(String label) {
            this.label = label;
        }

        @Override
        public String toString() {
            return label;
        }
    }

    /** A kernel that was asked for and is not used, and why. */
    public record NotUsed(Kernel kernel, String reason) {
        @Override
        public String toString() {
            return kernel + ": " + reason;
        }
    }

    /** What a configuration asks for; {@link #resolve} uses each where it can serve the model. */
    public record Wanted(boolean fusedOps, boolean denseGemv, boolean pagedDecode, boolean samplingKernel, boolean cudaGraphs, boolean fp32LmHead,
                         boolean groupedExperts, boolean deterministic) {
        /** The server's settings: {@code rollout.native-kernels} asks for our kernels and the grouped expert GEMMs. */
        public static Wanted of(boolean nativeKernels, boolean cudaGraphs, boolean fp32LmHead) {
            return of(nativeKernels, cudaGraphs, fp32LmHead, false);
        }

        /** The same, and {@code rollout.deterministic}. */
        public static Wanted of(boolean nativeKernels, boolean cudaGraphs, boolean fp32LmHead, boolean deterministic) {
            return new Wanted(nativeKernels, nativeKernels, nativeKernels, nativeKernels, cudaGraphs, fp32LmHead, nativeKernels, deterministic);
        }
    }

    public Kernels {
        Objects.requireNonNull(decodeAttention, "decodeAttention");
        if (cudaGraphs && decodeAttention != DecodeAttention.PAGED_NATIVE)
            throw new IllegalArgumentException("CUDA graphs need the paged decode kernel (decode attention PAGED_NATIVE), not "
                    + decodeAttention + ": a graph's shapes must not depend on the context length");
        if (deterministic && (fusedOps || denseGemv || cudaGraphs || groupedExperts || samplingKernel || decodeAttention != DecodeAttention.GATHER))
            throw new IllegalArgumentException("the deterministic arithmetic runs libtorch's ops over gathered context only so far "
                    + "(issue #21), not our kernels nor " + decodeAttention);
        notUsed = List.copyOf(notUsed);
    }

    /** libtorch's ops only, decoding sequences attending the given way (GATHER, or PAGED_TORCH: the paged kernel's reference). */
    public static Kernels libtorch(DecodeAttention decode) {
        if (decode == DecodeAttention.PAGED_NATIVE) throw new IllegalArgumentException("PAGED_NATIVE is our kernel, not libtorch's ops");
        return new Kernels(decode, false, false, false, false, false, false, false, List.of());
    }

    /** Every kernel in {@code wanted} that can serve a model of {@code c} in {@code dtype} on {@code device}; the reasons for the others. */
    public static Kernels resolve(Wanted wanted, ModelConfig c, ScalarType dtype, Device device) {
        if (wanted.deterministic()) return deterministic(dtype, device);
        List<NotUsed> notUsed = new ArrayList<>();
        boolean fused = wanted.fusedOps() && usable(Kernel.FUSED_OPS, c, dtype, device, notUsed);
        // a mixture's layers keep their projections on libtorch (its experts have kernels of their own): nothing to say
        boolean gemv = wanted.denseGemv() && c.moe() == null && usable(Kernel.DENSE_GEMV, c, dtype, device, notUsed);
        boolean paged = wanted.pagedDecode() && usable(Kernel.PAGED_DECODE, c, dtype, device, notUsed);
        boolean sampling = wanted.samplingKernel() && usable(Kernel.SAMPLING, c, dtype, device, notUsed);
        boolean fp32 = wanted.fp32LmHead() && usable(Kernel.FP32_LM_HEAD, c, dtype, device, notUsed);
        // a dense model has no experts to group: nothing to say about it
        boolean grouped = wanted.groupedExperts() && c.moe() != null && usable(Kernel.GROUPED_EXPERTS, c, dtype, device, notUsed);
        boolean graphs = graphs(wanted, paged, c.moe() != null, grouped, notUsed);
        return new Kernels(paged ? DecodeAttention.PAGED_NATIVE : DecodeAttention.GATHER, fused, gemv, fp32, sampling, graphs, grouped, false,
                notUsed);
    }

    /**
     * The deterministic arithmetic (ADR 0026): libtorch's ops in fixed shapes per row, and none of
     * our kernels. On the CPU in float32 only so far: a server asked for determinism elsewhere does
     * not start rather than serve numbers that move with the batch.
     */
    private static Kernels deterministic(ScalarType dtype, Device device) {
        if (device.is_cuda())
            throw new IllegalArgumentException("rollout.deterministic runs on the CPU only so far: its CUDA arithmetic "
                    + "(GEMMs without split-K, checked at start-up, and one blocked attention) is issue #21's next part");
        // bf16 and fp16 on the CPU take other vector widths and oneDNN's batched GEMMs: not yet shown invariant
        if (dtype.intern() != ScalarType.Float)
            throw new IllegalArgumentException("rollout.deterministic runs float32 on the CPU so far, not " + Torch.name(dtype)
                    + " (rollout.dtype=float32 or auto)");
        return new Kernels(DecodeAttention.GATHER, false, false, false, false, false, false, true, List.of());
    }

    /**
     * Whether decode steps are captured as CUDA graphs: asked for, with the paged decode kernel,
     * and for a mixture of experts with the grouped expert GEMMs (a GEMM pair per expert reads
     * each expert's share of the rows on the host, which a captured graph cannot); else the
     * reason joins {@code notUsed}.
     */
    static boolean graphs(Wanted wanted, boolean paged, boolean moe, boolean grouped, List<NotUsed> notUsed) {
        if (!wanted.cudaGraphs()) return false;
        if (!paged) {
            notUsed.add(new NotUsed(Kernel.CUDA_GRAPHS, "they need the paged decode kernel, which "
                    + (wanted.pagedDecode() ? "cannot serve this model here" : "was not asked for")));
            return false;
        }
        if (moe && !grouped) {
            notUsed.add(new NotUsed(Kernel.CUDA_GRAPHS, "a mixture of experts needs the grouped expert GEMMs for them, which "
                    + (wanted.groupedExperts() ? "cannot serve this model here" : "were not asked for")));
            return false;
        }
        return true;
    }

    private static boolean usable(Kernel k, ModelConfig c, ScalarType dtype, Device device, List<NotUsed> notUsed) {
        Optional<String> why = whyNot(k, c, dtype, device);
        why.ifPresent(reason -> notUsed.add(new NotUsed(k, reason)));
        return why.isEmpty();
    }

    /**
     * Throws an IllegalArgumentException naming every kernel of this choice that cannot serve a
     * model of {@code c} in {@code dtype} on {@code device}, and why.
     */
    public void requireUsable(ModelConfig c, ScalarType dtype, Device device) {
        List<String> problems = new ArrayList<>();
        List<Kernel> chosen = new ArrayList<>();
        if (fusedOps) chosen.add(Kernel.FUSED_OPS);
        if (denseGemv) chosen.add(Kernel.DENSE_GEMV);
        if (decodeAttention == DecodeAttention.PAGED_NATIVE) chosen.add(Kernel.PAGED_DECODE);
        if (samplingKernel) chosen.add(Kernel.SAMPLING);
        if (fp32LmHead) chosen.add(Kernel.FP32_LM_HEAD);
        if (groupedExperts) chosen.add(Kernel.GROUPED_EXPERTS);
        for (Kernel k : chosen) whyNot(k, c, dtype, device).ifPresent(why -> problems.add(k + ": " + why));
        if (!problems.isEmpty()) throw new IllegalArgumentException("these kernels cannot serve the model here: " + String.join("; ", problems));
    }

    /** Throws an IllegalArgumentException where our sampling kernel cannot run on {@code device}. */
    public static void requireSamplingKernel(Device device) {
        whyNot(Kernel.SAMPLING, null, null, device).ifPresent(why -> {
            throw new IllegalArgumentException(Kernel.SAMPLING + ": " + why);
        });
    }

    /**
     * Why kernel {@code k} cannot serve a model of {@code c} in {@code dtype} on {@code device}:
     * every requirement it misses, so that one look at the log says all that would have to change;
     * empty if it can.
     */
    static Optional<String> whyNot(Kernel k, ModelConfig c, ScalarType dtype, Device device) {
        if (k == Kernel.FP32_LM_HEAD) return whyNotFp32Logits(dtype, device);
        List<String> missing = new ArrayList<>();
        if (!device.is_cuda()) missing.add("CUDA");
        if (k == Kernel.FUSED_OPS || k == Kernel.PAGED_DECODE) {
            if (dtype.intern() != ScalarType.BFloat16) missing.add("bfloat16 (not " + Torch.name(dtype) + ")");
            if (c.headDim() != 64 && c.headDim() != 128) missing.add("head_dim 64 or 128 (not " + c.headDim() + ")");
        }
        if (k == Kernel.DENSE_GEMV) {
            if (dtype.intern() != ScalarType.BFloat16) missing.add("bfloat16 (not " + Torch.name(dtype) + ")");
            if (c.moe() != null) missing.add("a dense model");
            // 16-byte rows; the normed rows in shared memory; the gate-up epilogue's pairs of outputs
            else if (c.hiddenSize() % 8 != 0 || c.hiddenSize() > 8192 || c.intermediateSize() % 8 != 0
                    || c.headDim() * c.numHeads() % 8 != 0)
                missing.add("hidden and intermediate sizes that are multiples of 8, the hidden size at most 8192 (not "
                        + c.hiddenSize() + " and " + c.intermediateSize() + ")");
        }
        // the routing kernel holds a token's router probabilities in one warp's registers
        if (k == Kernel.FUSED_OPS && c.moe() != null && (c.moe().experts() > 1024 || c.moe().topK() > 32))
            missing.add("at most 1024 experts and 32 per token (not " + c.moe().experts() + " and " + c.moe().topK() + ")");
        if (k == Kernel.GROUPED_EXPERTS) {
            if (dtype.intern() != ScalarType.BFloat16) missing.add("bfloat16 (not " + Torch.name(dtype) + ")");
            if (c.moe() == null) missing.add("a mixture of experts");
            // _grouped_mm's operands need rows of whole 16-byte multiples
            else if (c.hiddenSize() % 8 != 0 || c.moe().intermediate() % 8 != 0)
                missing.add("hidden and expert sizes that are multiples of 8 (not " + c.hiddenSize() + " and " + c.moe().intermediate() + ")");
            // elsewhere libtorch's _grouped_mm falls back to a loop that reads the group sizes on the host
            if (device.is_cuda()) {
                int major = computeCapabilityMajor(device);
                if (major != 9 && major != 10) missing.add("a GPU of compute capability 9.x or 10.x (not " + major + ".x)");
            }
        }
        if (k == Kernel.PAGED_DECODE && c.queryGroupSize() > 8)
            missing.add("at most 8 query heads per KV head (not " + c.queryGroupSize() + ")");
        // why the library did not load is one long line (RolloutCuda.whyUnavailable()), logged once by whoever resolves
        if (!RolloutCuda.available()) missing.add("the native preset (not loaded)");
        return missing.isEmpty() ? Optional.empty() : Optional.of("needs " + String.join(", ", missing));
    }

    /** The compute capability's major number of a CUDA device (its index, or the current device). */
    private static int computeCapabilityMajor(Device device) {
        int[] index = {device.has_index() ? device.index() : 0}, major = new int[1];
        if (!device.has_index()) org.bytedeco.cuda.global.cudart.cudaGetDevice(index);
        int err = org.bytedeco.cuda.global.cudart.cudaDeviceGetAttribute(major, org.bytedeco.cuda.global.cudart.cudaDevAttrComputeCapabilityMajor, index[0]);
        return err == 0 ? major[0] : -1;
    }

    /** Whether this libtorch has mm with a float32 result for {@code dtype} on {@code device} (CUDA, torch 2.9 and later). */
    private static Optional<String> whyNotFp32Logits(ScalarType dtype, Device device) {
        if (dtype.intern() == ScalarType.Float) return Optional.of("the model computes in float32: its logits are float32 already");
        try (Tensor a = Torch.zeros(Torch.options(dtype, device), 2, 8); Tensor r = torch.mm(a, a.t(), ScalarType.Float)) {
            // intern(): JavaCPP returns native enums as new instances, never == a constant
            ScalarType got = r.scalar_type().intern();
            return got == ScalarType.Float ? Optional.empty() : Optional.of("libtorch's mm returned " + Torch.name(got));
        } catch (RuntimeException e) {
            // libtorch's first sentence says it ("Could not run 'aten::mm.dtype' ... from the 'CPU' backend"); the rest is a backend list
            String m = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("").split("\\. ", 2)[0];
            return Optional.of("libtorch's mm has no float32 result for " + Torch.name(dtype) + " here: " + m);
        }
    }

    /** One line for the log: what runs, and why each kernel asked for does not. */
    public String describe() {
        String chosen = "decode attention " + decodeAttention + ", fused ops " + onOff(fusedOps) + ", decode matrix-vector kernels "
                + onOff(denseGemv) + ", sampling kernel "
                + onOff(samplingKernel) + ", CUDA graphs " + onOff(cudaGraphs) + ", float32 LM head " + onOff(fp32LmHead)
                + (groupedExperts ? ", grouped expert GEMMs on" : "") + (deterministic ? ", deterministic arithmetic (ADR 0026)" : "");
        return notUsed.isEmpty() ? chosen
                : chosen + "; not used: " + notUsed.stream().map(NotUsed::toString).collect(Collectors.joining("; "));
    }

    private static String onOff(boolean on) {
        return on ? "on" : "off";
    }
}
