package dev.rollout.ranks;

import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.ModelConfig;
import dev.rollout.model.TpGroup;
import java.io.IOException;
import java.nio.file.Path;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * What every rank loads, and how: the server's model settings, which rank 0 hands to the workers
 * it starts, so that each rank resolves the same kernels and reads (or draws) the same weights
 * and keeps its shard. The kernels decide the layout of a step's tensors (paged block tables or
 * gathered slots), so a rank that chose other kernels could not run rank 0's steps.
 *
 * @param device     "cpu", "cuda" or "cuda:N"; at several ranks on CUDA, the node's rank i takes
 *                   the i-th card from N (0 by default)
 * @param loadFormat    "auto" (the checkpoint) or "dummy" (random weights from {@code dummySeed})
 * @param deterministic rollout.deterministic: the arithmetic of ADR 0026, in place of every kernel choice
 */
public record ModelSpec(Path modelDir, String loadFormat, long dummySeed, String device, String dtype, boolean nativeKernels,
                        boolean cudaGraphs, boolean fp32LmHead, boolean deterministic) {
    /** The spread of dummy weights: transformers' usual initializer_range. */
    public static final double DUMMY_STD = 0.02;

    public ModelSpec {
        if (!loadFormat.equals("auto") && !loadFormat.equals("dummy"))
            throw new IllegalArgumentException("rollout.load-format must be auto or dummy, not " + loadFormat);
    }

    /** The device of the node's {@code localRank}-th rank. */
    public Device device(int localRank) {
        if (!device.startsWith("cuda") || localRank == 0) return new Device(device);
        int first = device.contains(":") ? Integer.parseInt(device.substring(device.indexOf(':') + 1)) : 0;
        return new Device("cuda:" + (first + localRank));
    }

    /** The weights' dtype: "auto" is float32 on a CPU and bfloat16 on CUDA. */
    public ScalarType scalarType() {
        return switch (dtype) {
            case "float32" -> ScalarType.Float;
            case "bfloat16" -> ScalarType.BFloat16;
            case "float16" -> ScalarType.Half;
            case "auto" -> device.startsWith("cuda") ? ScalarType.BFloat16 : ScalarType.Float;
            default -> throw new IllegalArgumentException("rollout.dtype must be auto, float32, bfloat16 or float16, not " + dtype);
        };
    }

    /**
     * Our kernels for the model at {@code tpSize} ranks, the same on every rank. CUDA graphs are
     * left out at several ranks: a captured decode step cannot hold the host's wait on each
     * all-reduce's deadline (see C10dTpGroup).
     */
    public Kernels kernels(int tpSize, Device device) throws IOException {
        return Kernels.resolve(Kernels.Wanted.of(nativeKernels, cudaGraphs && tpSize == 1, fp32LmHead, deterministic), ModelConfig.read(modelDir),
                scalarType(), device);
    }

    /** This rank's shard of the model, on {@code device}, running {@code kernels}. */
    public CausalLm load(TpGroup tp, Device device, Kernels kernels) throws IOException {
        return loadFormat.equals("dummy")
                ? CausalLm.random(modelDir, scalarType(), device, dummySeed, DUMMY_STD, kernels, tp)
                : CausalLm.load(modelDir, scalarType(), device, kernels, tp);
    }
}
