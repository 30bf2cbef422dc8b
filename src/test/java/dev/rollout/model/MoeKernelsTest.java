package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A mixture's routing, sorting and combining kernels (native-presets/src/moe.cu, {@link FusedLayerOps})
 * against libtorch's ops ({@link TorchLayerOps}) on the same logits and expert outputs: the same
 * experts chosen in the same order, the same stable sort (every row, token and block end), the
 * same routed-experts record, weights within float32's rounding, and the combined output within
 * one bf16 rounding (the two sum a token's k products in other orders). On the GPU with the native
 * preset built (bench/gpu-bench.sh test).
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class MoeKernelsTest {
    static final int HIDDEN = 256, SLOTS = 4096;

    @ParameterizedTest(name = "T={0} E={1} k={2} renormalise={3} Qwen={4}")
    @CsvSource({
        "1, 128, 8, true, true",          // Qwen3-30B-A3B's router at batch 1
        "64, 128, 8, true, true",
        "512, 128, 8, true, true",
        "7, 60, 4, false, true",          // Qwen2-MoE's: not renormalised, 60 experts (not a multiple of 32)
        "33, 8, 2, true, false",          // Mixtral's: float32 weights
        "3000, 64, 6, true, true",        // a prefill: more copies than one pass of the align kernel's warps
        "5, 1024, 32, false, false",      // the kernels' limits
    })
    void theKernelsRouteSortAndCombineAsLibtorchsOpsDo(int tokens, int experts, int k, boolean renormalise, boolean qwen) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        ModelConfig c = config(experts, k, renormalise, !qwen);
        LayerOps ours = new FusedLayerOps(c, null), reference = new TorchLayerOps(c, ScalarType.BFloat16, null);
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(tokens * 31L + experts);
            // each row a random order of 0, -1/4, -2/4, ...: no ties among its top k, which the two may break differently
            Tensor logits = torch.rand(new long[] {tokens, experts}, Torch.options(ScalarType.Float, cuda)).argsort(false, 1, false)
                    .sub(new Scalar(experts - 1)).mul(new Scalar(0.25)).to(ScalarType.BFloat16);            // (T, E)
            Tensor slots = torch.randperm(SLOTS, Torch.options(ScalarType.Long, cuda)).narrow(0, 0, tokens);   // (T) distinct
            // one layer of a (slots, layers, k) record, as the KV cache keeps it: rows 3 k apart
            Tensor routedOurs = Torch.zeros(Torch.options(ScalarType.Int, cuda), SLOTS, 3, k).select(1, 1);
            Tensor routedRef = Torch.zeros(Torch.options(ScalarType.Int, cuda), SLOTS, 3, k).select(1, 1);
            ExpertRouting a = ours.route(logits, routedOurs, slots), b = reference.route(logits, routedRef, slots);

            String at = "T=" + tokens + " E=" + experts + " k=" + k;
            assertArrayEquals(Torch.toLongs(routedRef.to(ScalarType.Long).reshape(-1)), Torch.toLongs(routedOurs.to(ScalarType.Long).reshape(-1)),
                    at + ": the experts chosen, most probable first, in the routed-experts record");
            assertArrayEquals(Torch.toLongs(b.ends().to(ScalarType.Long)), Torch.toLongs(a.ends().to(ScalarType.Long)), at + ": the blocks' ends");
            assertArrayEquals(Torch.toLongs(b.rowOf()), Torch.toLongs(a.rowOf()), at + ": each copy's row (a stable sort)");
            assertArrayEquals(Torch.toLongs(b.tokenOf()), Torch.toLongs(a.tokenOf()), at + ": each row's token");
            double weights = a.weights().sub(b.weights().to(ScalarType.Float)).abs().max().item_double();
            assertTrue(weights <= (qwen ? 0x1p-8 : 1e-6), at + ": the weights differ by " + weights);

            Tensor ys = torch.randn(new long[] {(long) tokens * k, HIDDEN}, Torch.options(ScalarType.BFloat16, cuda));
            Tensor outA = ours.combine(ys, a).to(ScalarType.Float), outB = reference.combine(ys, b).to(ScalarType.Float);
            // one bf16 rounding of the largest sum apart, at most
            double diff = outA.sub(outB).abs().max().item_double(), scale = outB.abs().max().item_double();
            assertTrue(diff <= scale * 0x1p-7, at + ": the combined outputs differ by " + diff + " (largest " + scale + ")");
        }
    }

    /**
     * The experts' GEMMs as our matrix-vector kernels (moe_gemv.cu) against libtorch's grouped
     * GEMMs and SiLU-and-mul on the same routing: each output within a bf16 rounding or two of the
     * largest (the two sum each dot in other orders, and the gate's rounding passes through SiLU).
     */
    @ParameterizedTest(name = "T={0} E={1} k={2} hidden={3} inter={4}")
    @CsvSource({
        "1, 128, 8, 2048, 768",           // Qwen3-30B-A3B at batch 1: eight experts of one row each
        "8, 128, 8, 2048, 768",           // batch 8: some experts take two or three rows
        "16, 8, 2, 512, 88",              // Mixtral-like: runs of more rows than one block dots at once
        "3, 60, 4, 256, 40",              // Qwen2-MoE's 60 experts, a small slice of each
    })
    void theMatrixVectorKernelsComputeWhatTheGroupedGemmsDo(int tokens, int experts, int k, int hidden, int inter) {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        var bf16 = Torch.options(ScalarType.BFloat16, cuda);
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(tokens * 131L + experts);
            ExpertRouting r = new FusedLayerOps(config(experts, k, true, false), null)
                    .route(torch.randn(new long[] {tokens, experts}, bf16), null, null);
            Tensor x = torch.randn(new long[] {tokens, hidden}, bf16);                                        // (T, hidden)
            Tensor gateUp = torch.randn(new long[] {experts, 2L * inter, hidden}, bf16).mul_(new Scalar(0.05));  // (E, 2 inter, hidden)
            Tensor down = torch.randn(new long[] {experts, hidden, inter}, bf16).mul_(new Scalar(0.05));         // (E, hidden, inter)
            long copies = (long) tokens * k;
            Tensor actRef = NativeOps.siluAndMul(RolloutCuda.groupedMm(x.index_select(0, r.tokenOf()), gateUp, r.ends()), inter);
            Tensor act = Torch.empty(bf16, copies, inter);                                                    // (T k, inter)
            RolloutCuda.moeGateUp(x, r.tokenOf(), gateUp, r.ends(), act);
            String at = "T=" + tokens + " E=" + experts + " k=" + k;
            within(act, actRef, 0x1p-6, at + ": silu(gate) * up");
            Tensor ys = Torch.empty(bf16, copies, hidden);                                                    // (T k, hidden)
            RolloutCuda.moeDown(actRef, down, r.ends(), ys);
            within(ys, RolloutCuda.groupedMm(actRef, down, r.ends()), 0x1p-7, at + ": down");
        }
    }

    private static void within(Tensor got, Tensor want, double relative, String what) {
        double diff = got.to(ScalarType.Float).sub(want.to(ScalarType.Float)).abs().max().item_double();
        double scale = want.to(ScalarType.Float).abs().max().item_double();
        assertTrue(scale > 0 && diff <= scale * relative, what + " differs by " + diff + " (largest " + scale + ")");
    }

    /** A row of NaN or of −∞ (a broken checkpoint, a pushed weight gone wrong) still picks k real experts, as torch.topk does. */
    @Test
    void rowsOfNanOrMinusInfinityStillRouteToRealExperts() {
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        ModelConfig c = config(64, 8, true, false);
        try (PointerScope scope = new PointerScope()) {
            Tensor logits = torch.randn(new long[] {3, 64}, Torch.options(ScalarType.BFloat16, cuda));
            logits.select(0, 0).fill_(new Scalar(Double.NaN));
            logits.select(0, 1).fill_(new Scalar(Double.NEGATIVE_INFINITY));
            ExpertRouting r = new FusedLayerOps(c, null).route(logits, null, null);
            long[] ends = Torch.toLongs(r.ends().to(ScalarType.Long));
            assertEquals(24, ends[63], "all 3 x 8 copies sorted into the experts' blocks");
            for (long row : Torch.toLongs(r.rowOf())) assertTrue(row >= 0 && row < 24, "row " + row);
            for (long token : Torch.toLongs(r.tokenOf())) assertTrue(token >= 0 && token < 3, "token " + token);
            torch.randn(new long[] {4}, Torch.options(ScalarType.Float, cuda)).sum().item_double();   // the device is still healthy
        }
    }

    @Test
    void nothingToRouteIsNoWork() {
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        ModelConfig c = config(16, 4, true, false);
        try (PointerScope scope = new PointerScope()) {
            ExpertRouting r = new FusedLayerOps(c, null).route(Torch.zeros(Torch.options(ScalarType.BFloat16, cuda), 0, 16), null, null);
            assertEquals(0, r.rowOf().size(0));
            assertArrayEquals(new long[16], Torch.toLongs(r.ends().to(ScalarType.Long)), "every block empty");
        }
    }

    private static ModelConfig config(int experts, int k, boolean renormalise, boolean mixtral) {
        return new ModelConfig(mixtral ? "MixtralForCausalLM" : "Qwen3MoeForCausalLM", 1000, HIDDEN, 512, 1, 4, 2, 64, 1e-6,
                new ModelConfig.Rope("default", 1e6, 1, 0, 0, 0), 4096, false, false, !mixtral, "bfloat16", List.of(0),
                new ModelConfig.Moe(experts, k, 128, renormalise, 0, 1, List.of(), mixtral));
    }
}
