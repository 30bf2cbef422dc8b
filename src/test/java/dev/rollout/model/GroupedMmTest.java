package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * On the GPU with the native preset: {@link RolloutCuda#groupedMm} against one float32 GEMM per
 * group, with groups of uneven sizes and empty ones (experts no token chose), first and last
 * included. bf16 operands, float32 accumulation on both sides: within bf16's rounding of the output.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class GroupedMmTest {

    @ParameterizedTest
    @ValueSource(strings = {"4,0,6,0,3", "0,5,0,0,8", "1,1,1,1,1", "13,0,0,0,0", "0,0,0,0,13"})
    void eachGroupIsItsExpertsGemm(String sizes) {
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        long[] n = java.util.Arrays.stream(sizes.split(",")).mapToLong(Long::parseLong).toArray();
        int experts = n.length, k = 64, out = 48;
        long rows = java.util.Arrays.stream(n).sum();
        int[] ends = new int[experts];
        for (int e = 0, at = 0; e < experts; e++) ends[e] = at += (int) n[e];
        torch.manual_seed(7);
        Tensor x = torch.randn(new long[] {rows, k}, Torch.options(ScalarType.Float, cuda)).to(ScalarType.BFloat16);         // (T, K)
        Tensor w = torch.randn(new long[] {experts, out, k}, Torch.options(ScalarType.Float, cuda)).to(ScalarType.BFloat16);  // (E, N, K)
        Tensor offsets = torch.tensor(ends).to(cuda, ScalarType.Int);                                                     // (E) int32
        Tensor y = RolloutCuda.groupedMm(x, w, offsets).to(ScalarType.Float);                                             // (T, N)
        assertArrayEquals(new long[] {rows, out}, y.sizes().vec().get());
        long at = 0;
        for (int e = 0; e < experts; e++) {
            if (n[e] == 0) continue;
            Tensor ref = torch.linear(x.narrow(0, at, n[e]).to(ScalarType.Float), w.select(0, e).to(ScalarType.Float));   // (n, N) f32
            double err = y.narrow(0, at, n[e]).sub(ref).abs().max().item_double();
            double scale = ref.abs().max().item_double();
            assertTrue(err <= 1e-2 * scale, "expert " + e + " of " + sizes + ": max error " + err + " at scale " + scale);
            at += n[e];
        }
    }

    @Test
    void shapesThatDoNotAgreeAreRefused() {
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        Tensor x = torch.zeros(new long[] {4, 64}, Torch.options(ScalarType.BFloat16, cuda));
        Tensor w = torch.zeros(new long[] {2, 48, 32}, Torch.options(ScalarType.BFloat16, cuda));   // K 32, not 64
        Tensor offsets = torch.tensor(new int[] {2, 4}).to(cuda, ScalarType.Int);
        var e = assertThrows(RuntimeException.class, () -> RolloutCuda.groupedMm(x, w, offsets));
        assertTrue(e.getMessage().contains("groupedMm"), e.getMessage());
    }
}
