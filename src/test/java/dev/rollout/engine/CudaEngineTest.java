package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.CausalLm;
import dev.rollout.model.RandomCheckpoint;
import java.nio.file.Path;
import java.util.List;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine in bfloat16 on a GPU with a Qwen3-sized vocabulary: 64 concurrent sequences all
 * finish. Runs only where tools/gpu/run-tests.sh sets rollout.test.device=cuda; CI has no GPU.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class CudaEngineTest {
    @TempDir
    Path dir;

    @Test
    void bf16BatchOnCuda() throws Exception {
        RandomCheckpoint.write(dir, new RandomCheckpoint.Spec(151936, 896, 4864, 24, 14, 2, 64, 4096, List.of(151645), 0.02), 1);
        Device cuda = new Device(EngineHarness.DEVICE);
        CausalLm lm = CausalLm.load(dir, ScalarType.BFloat16, cuda);  // outside any PointerScope: the weights live on
        LlmEngine engine = new LlmEngine(lm, new EngineConfig(EngineHarness.DEVICE, "bfloat16", 16, 4096, 256, 4096, 0, 0.8), null, null);
        int[] done = {0};
        for (int i = 0; i < 64; i++) {
            int[] prompt = new int[128];
            for (int j = 0; j < prompt.length; j++) prompt[j] = (i * 131 + j * 7) % 150000;
            engine.add(new Sequence("g" + i, 0, prompt, SamplingParams.builder().temperature(1.0).maxNewTokens(128).ignoreEos(true).build(),
                    LogprobOptions.NONE, null, o -> { if (o.finished()) done[0]++; }, false, i));
        }
        long t0 = System.nanoTime();
        int steps = 0, maxBatch = 0;
        while (engine.hasWork()) {
            maxBatch = Math.max(maxBatch, engine.step());
            steps++;
        }
        double s = (System.nanoTime() - t0) / 1e9;
        System.out.printf("cuda bf16 (0.5B-sized Qwen3, random weights): 64 x (128 prompt + 128 new) in %.2f s, %d steps, "
                + "%.0f output tok/s, max batch %d%n", s, steps, 64 * 128 / s, maxBatch);
        assertEquals(64, done[0]);
        assertTrue(maxBatch == 64);
    }
}
