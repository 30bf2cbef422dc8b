package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;

/**
 * The kernel choice on a CPU, where none of our kernels can run: what the server asks for is
 * resolved to libtorch's ops with every reason stated, and a model refuses, before it allocates
 * anything, a choice that cannot run.
 */
@DisabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class KernelsTest {
    static final Device CPU = new Device("cpu");
    static final Path QWEN3 = Path.of("src/test/resources/fixtures/qwen3");  // head_dim 16, 4 heads over 2 KV heads

    static Map<Kernels.Kernel, String> reasons(Kernels k) {
        return k.notUsed().stream().collect(Collectors.toMap(Kernels.NotUsed::kernel, Kernels.NotUsed::reason));
    }

    @Test
    void everythingAskedForOnACpuResolvesToLibtorchWithEveryReason() throws Exception {
        ModelConfig c = ModelConfig.read(QWEN3);
        Kernels k = Kernels.resolve(Kernels.Wanted.of(true, true, true), c, ScalarType.Float, CPU);
        assertEquals(DecodeAttention.GATHER, k.decodeAttention());
        assertFalse(k.fusedOps() || k.denseGemv() || k.samplingKernel() || k.cudaGraphs() || k.fp32LmHead(), k.describe());
        Map<Kernels.Kernel, String> why = reasons(k);
        assertEquals(6, why.size(), k.describe());
        assertEquals("needs CUDA, bfloat16 (not float32), the native preset (not loaded)", why.get(Kernels.Kernel.DENSE_GEMV));
        // every requirement a kernel misses, not only the first
        String fused = why.get(Kernels.Kernel.FUSED_OPS);
        assertEquals("needs CUDA, bfloat16 (not float32), head_dim 64 or 128 (not 16), the native preset (not loaded)", fused);
        assertEquals(fused, why.get(Kernels.Kernel.PAGED_DECODE));
        assertEquals("needs CUDA, the native preset (not loaded)", why.get(Kernels.Kernel.SAMPLING));
        assertEquals("they need the paged decode kernel, which cannot serve this model here", why.get(Kernels.Kernel.CUDA_GRAPHS));
        assertEquals("the model computes in float32: its logits are float32 already", why.get(Kernels.Kernel.FP32_LM_HEAD));
        assertTrue(k.describe().startsWith("decode attention GATHER, fused ops off, decode matrix-vector kernels off, sampling kernel off, CUDA graphs off, "
                + "float32 LM head off; not used: fused ops: needs CUDA"), k.describe());
    }

    /** Asked for with the native kernels (ADR 0030); where they cannot run, they say what they miss. */
    @Test
    void theDecodeMatrixVectorKernelsNameWhatTheyMiss() throws Exception {
        assertTrue(Kernels.Wanted.of(true, true, false).denseGemv(), "rollout.native-kernels asks for them");
        assertFalse(Kernels.Wanted.of(false, true, false).denseGemv());
        Kernels.Wanted gemv = new Kernels.Wanted(false, true, false, false, false, false, false, false);
        Kernels k = Kernels.resolve(gemv, ModelConfig.read(QWEN3), ScalarType.Float, CPU);
        assertFalse(k.denseGemv());
        assertEquals("needs CUDA, bfloat16 (not float32), the native preset (not loaded)", reasons(k).get(Kernels.Kernel.DENSE_GEMV));
    }

    @Test
    void nothingAskedForIsLibtorchWithNothingToExplain() throws Exception {
        Kernels k = Kernels.resolve(Kernels.Wanted.of(false, false, false), ModelConfig.read(QWEN3), ScalarType.Float, CPU);
        assertEquals(Kernels.LIBTORCH, k);
        assertEquals("decode attention GATHER, fused ops off, decode matrix-vector kernels off, sampling kernel off, CUDA graphs off, "
                + "float32 LM head off", k.describe());
    }

    @Test
    void thePagedKernelTakesAtMostEightQueryHeadsPerKvHead() {
        ModelConfig c = new ModelConfig("Qwen2ForCausalLM", 1000, 24 * 128, 4096, 1, 24, 2, 128, 1e-6,
                new ModelConfig.Rope("default", 1e6, 1, 0, 0, 0), 4096, true, true, false, "bfloat16", List.of(0));
        Map<Kernels.Kernel, String> why = reasons(Kernels.resolve(Kernels.Wanted.of(true, false, false), c, ScalarType.BFloat16, CPU));
        assertEquals("needs CUDA, at most 8 query heads per KV head (not 12), the native preset (not loaded)",
                why.get(Kernels.Kernel.PAGED_DECODE));
        assertEquals("needs CUDA, the native preset (not loaded)", why.get(Kernels.Kernel.FUSED_OPS));
    }

    @Test
    void aMixtureOfExpertsGroupsItsGemmsWhereItCanAndSaysWhyNot() throws Exception {
        ModelConfig moe = ModelConfig.read(java.nio.file.Path.of("src/test/resources/fixtures/qwen3_moe"));
        Map<Kernels.Kernel, String> why = reasons(Kernels.resolve(Kernels.Wanted.of(true, true, false), moe, ScalarType.Float, CPU));
        assertEquals("needs CUDA, bfloat16 (not float32), the native preset (not loaded)", why.get(Kernels.Kernel.GROUPED_EXPERTS));
        // a dense model has no experts: the grouped GEMMs are neither used nor reported
        Kernels dense = Kernels.resolve(Kernels.Wanted.of(true, true, false), ModelConfig.read(QWEN3), ScalarType.BFloat16, CPU);
        assertFalse(dense.groupedExperts());
        assertFalse(reasons(dense).containsKey(Kernels.Kernel.GROUPED_EXPERTS));
    }

    @Test
    void graphsNeedThePagedKernelAndForAMixtureOfExpertsTheGroupedGemms() {
        Kernels.Wanted all = Kernels.Wanted.of(true, true, false);
        List<Kernels.NotUsed> why = new java.util.ArrayList<>();
        assertTrue(Kernels.graphs(all, true, false, false, why), "a dense model");
        assertEquals(List.of(), why);
        assertFalse(Kernels.graphs(all, true, true, false, why));
        assertEquals("a mixture of experts needs the grouped expert GEMMs for them, which cannot serve this model here", why.get(0).reason());
        assertFalse(Kernels.graphs(new Kernels.Wanted(true, true, true, true, true, false, false, false), true, true, false, why));
        assertEquals("a mixture of experts needs the grouped expert GEMMs for them, which were not asked for", why.get(1).reason());
        assertFalse(Kernels.graphs(all, false, false, false, why));
        assertEquals("they need the paged decode kernel, which cannot serve this model here", why.get(2).reason());
        // the grouped GEMMs leave nothing in the step that waits for the host: the step is captured
        assertTrue(Kernels.graphs(all, true, true, true, why));
        assertFalse(Kernels.graphs(Kernels.Wanted.of(true, false, false), true, true, true, why), "not asked for");
        assertEquals(3, why.size(), "graphs not asked for, or captured, need no reason");
    }

    /** libtorch's CPU backend has no bf16 GEMM with a float32 result: the probe says so, and the logits are rounded as by default. */
    @Test
    void theFloat32LmHeadIsProbedOnTheDevice() throws Exception {
        Kernels k = Kernels.resolve(Kernels.Wanted.of(false, false, true), ModelConfig.read(QWEN3), ScalarType.BFloat16, CPU);
        assertFalse(k.fp32LmHead());
        assertEquals("libtorch's mm has no float32 result for bfloat16 here: Could not run 'aten::mm.dtype' with arguments from the "
                + "'CPU' backend", reasons(k).get(Kernels.Kernel.FP32_LM_HEAD));
    }

    @Test
    void graphsWithoutThePagedKernelSayWhichWasMissing() throws Exception {
        Kernels k = Kernels.resolve(new Kernels.Wanted(false, false, false, false, true, false, false, false), ModelConfig.read(QWEN3), ScalarType.Float, CPU);
        assertEquals(List.of(new Kernels.NotUsed(Kernels.Kernel.CUDA_GRAPHS, "they need the paged decode kernel, which was not asked for")),
                k.notUsed());
    }

    @Test
    void aChoiceThatCannotHoldTogetherIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Kernels(DecodeAttention.GATHER, false, false, false, false, true, false, false, List.of()));
        assertTrue(e.getMessage().startsWith("CUDA graphs need the paged decode kernel"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Kernels.libtorch(DecodeAttention.PAGED_NATIVE));
    }

    /** The setters of old switched a built model; now the model refuses what cannot run before it allocates its weights. */
    @Test
    void aModelRefusesKernelsThatCannotServeIt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CausalLm.load(QWEN3, ScalarType.Float, CPU,
                new Kernels(DecodeAttention.PAGED_NATIVE, true, false, false, false, true, false, false, List.of())));
        assertTrue(e.getMessage().startsWith("these kernels cannot serve the model here: fused ops: needs CUDA, bfloat16 (not float32)"),
                e.getMessage());
        assertTrue(e.getMessage().contains("; paged decode kernel: needs CUDA"), e.getMessage());
        IllegalArgumentException fp32 = assertThrows(IllegalArgumentException.class, () -> CausalLm.load(QWEN3, ScalarType.Float, CPU,
                new Kernels(DecodeAttention.GATHER, false, false, true, false, false, false, false, List.of())));
        assertEquals("these kernels cannot serve the model here: float32 LM head: the model computes in float32: its logits are "
                + "float32 already", fp32.getMessage());
    }

    @Test
    void theLibtorchReferenceOfThePagedKernelRunsAnywhere() throws Exception {
        CausalLm lm = CausalLm.load(QWEN3, ScalarType.Float, CPU, Kernels.libtorch(DecodeAttention.PAGED_TORCH));
        assertEquals(DecodeAttention.PAGED_TORCH, lm.kernels().decodeAttention());
        lm.releaseWeights();
    }

    @Test
    void theDeterministicArithmeticIsLibtorchsOpsInFloat32OnTheCpuAndRefusedElsewhere() throws Exception {
        ModelConfig c = ModelConfig.read(QWEN3);
        Kernels.Wanted all = new Kernels.Wanted(true, true, true, true, true, false, true, true);
        Kernels k = Kernels.resolve(all, c, ScalarType.Float, CPU);
        assertTrue(k.deterministic(), k.describe());
        assertFalse(k.fusedOps() || k.denseGemv() || k.samplingKernel() || k.cudaGraphs() || k.groupedExperts(), k.describe());
        assertEquals(DecodeAttention.GATHER, k.decodeAttention());
        var onCuda = assertThrows(IllegalArgumentException.class, () -> Kernels.resolve(all, c, ScalarType.BFloat16, new Device("cuda")));
        assertTrue(onCuda.getMessage().startsWith("rollout.deterministic runs on the CPU only so far"), onCuda.getMessage());
        var bf16 = assertThrows(IllegalArgumentException.class, () -> Kernels.resolve(all, c, ScalarType.BFloat16, CPU));
        assertTrue(bf16.getMessage().startsWith("rollout.deterministic runs float32 on the CPU so far"), bf16.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new Kernels(DecodeAttention.PAGED_TORCH, false, false, false, false, false, false, true, List.of()), "not over a block table");
    }
}
