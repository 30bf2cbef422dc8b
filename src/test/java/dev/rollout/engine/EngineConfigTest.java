package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.rollout.model.CausalLm;
import java.nio.file.Path;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/** The engine's static settings: what is refused, and how an unset KV size is filled in. */
class EngineConfigTest {
    @Test
    void refusesNonsense() {
        assertThrows(IllegalArgumentException.class, () -> new EngineConfig("cpu", "auto", 16, -1, 8, 16, 0, 0.8));
        assertThrows(IllegalArgumentException.class, () -> new EngineConfig("cpu", "auto", 16, 0, 8, 16, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new EngineConfig("cpu", "auto", 16, 0, 8, 16, 0, 1.5));
        assertThrows(IllegalArgumentException.class, () -> new EngineConfig("tpu", "auto", 16, 0, 8, 16, 0, 0.8));
    }

    @Test
    void unsetKvSizeOnCpuIsTheCpuDefault() throws Exception {
        Device cpu = new Device("cpu");
        CausalLm lm = CausalLm.load(Path.of("src/test/resources/fixtures/qwen3"), ScalarType.Float, cpu);
        LlmEngine engine = new LlmEngine(lm, new EngineConfig("cpu", "float32", 16, 0, 8, 64, 0, 0.8), null, null);
        assertEquals(EngineConfig.CPU_AUTO_KV_BLOCKS, engine.numKvBlocks());
        assertEquals(EngineConfig.CPU_AUTO_KV_BLOCKS, engine.stats().totalBlocks());
        LlmEngine fixed = new LlmEngine(lm, new EngineConfig("cpu", "float32", 16, 7, 8, 64, 0, 0.8), null, null);
        assertEquals(7, fixed.numKvBlocks());
        assertEquals(0, fixed.stats().usedBlocks());
    }
}
