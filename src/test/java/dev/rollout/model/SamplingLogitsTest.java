package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * The sampling logits written into a caller's buffer (what every CUDA graph of decode steps does
 * with one shared buffer, DecodeGraphs): the same GEMM as the logits made fresh, so the same bits,
 * in the rows of the buffer asked for; refused where the logits are not the LM head's bf16 output.
 * On the GPU (the sampling kernel needs CUDA and the native preset: bench/gpu-bench.sh test).
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class SamplingLogitsTest {
    static final Device CUDA = new Device(System.getProperty("rollout.test.device", "cuda"));

    @Test
    void logitsWrittenIntoABufferAreTheBitsOfFreshOnes(@TempDir Path dir) throws Exception {
        Files.copy(Path.of("src/test/resources/fixtures/qwen3/config.json"), dir.resolve("config.json"));
        Kernels sampling = new Kernels(DecodeAttention.GATHER, false, false, false, true, false, false, false, List.of());
        CausalLm lm = CausalLm.random(dir, ScalarType.BFloat16, CUDA, 3, 0.02, sampling);
        assertTrue(lm.bf16SamplingLogits());
        torch.manual_seed(5);
        Tensor hidden = torch.randn(new long[] {5, lm.config().hiddenSize()}).to(CUDA, ScalarType.BFloat16);   // (5, hidden)
        Tensor fresh = lm.samplingLogits(hidden);                                                         // (5, vocab) bf16
        Tensor buffer = Torch.zeros(Torch.options(ScalarType.BFloat16, CUDA), 8, lm.samplingLogitsWidth()); // a larger bucket's rows
        Tensor written = lm.samplingLogits(hidden, buffer.narrow(0, 0, 5));
        assertEquals(buffer.data_ptr_long(), written.data_ptr_long(), "the buffer's own rows, not a copy");
        assertTrue(torch.equal(fresh, written), "the same GEMM, the same bits");
        assertTrue(torch.equal(fresh, buffer.narrow(0, 0, 5)));
        assertEquals(0.0, buffer.narrow(0, 5, 3).abs().sum().item_double(), "the rows past the step's untouched");

        CausalLm float32 = CausalLm.random(dir, ScalarType.Float, CUDA, 3, 0.02);   // libtorch's sampling: float32 logits
        assertFalse(float32.bf16SamplingLogits(), "libtorch's sampling takes float32 logits");
        assertThrows(IllegalStateException.class, () -> float32.samplingLogits(hidden.to(ScalarType.Float), buffer.narrow(0, 0, 5)));
    }
}
