package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.CausalLm;
import dev.rollout.model.RandomCheckpoint;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * slime's --check-weight-update-equal and AReaL's update while released, on a GPU in bf16 (the
 * CPU tests run float32): noise from uniform_ on the device, the bit-for-bit compare across the
 * bus, and an update held in host memory while the weights are released, copied onto freshly
 * allocated device memory at resume. Runs only where the GPU tests set rollout.test.device=cuda.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class CudaWeightCheckerTest {
    @TempDir
    Path dir;

    @Test
    void snapshotResetReleaseUpdateResumeCompare() throws Exception {
        RandomCheckpoint.write(dir, WeightUpdateTest.SPEC, 1);
        Device cuda = new Device(EngineHarness.DEVICE);
        CausalLm lm = CausalLm.load(dir, ScalarType.BFloat16, cuda);
        LlmEngine engine = new LlmEngine(lm, new EngineConfig(EngineHarness.DEVICE, "bfloat16", 4, 64, 8, 16, 0, 0.8), null, null);
        WeightControl weights = new WeightControl(engine, false);
        MemoryOccupation memory = new MemoryOccupation(engine, weights);
        WeightChecker checker = new WeightChecker(engine, weights);
        int[] before = greedy(engine, "g0");
        String served = weights.checksums().combined();
        long weightBytes = lm.weightBytes();

        assertEquals(weightBytes, checker.snapshot().snapshotBytes(), "bf16: the model's bytes, once");
        checker.resetTensors(List.of());
        assertFalse(checker.compare(List.of()).equal(), "noise on the device differs from the snapshot");
        memory.release(EnumSet.allOf(MemoryTag.class));
        // the checkpoint's own weights, read to the host; the copy rounds them to bf16 as the load did
        weights.apply(WeightUpdateTest.allOf(dir, "1"));
        assertEquals(0, lm.weightBytes(), "nothing allocated on the device while released");
        ResumeReport resumed = memory.resume(EnumSet.allOf(MemoryTag.class));
        assertEquals(0, resumed.parametersToPush());
        engine.hold(memory.holdsEngine());
        assertTrue(checker.compare(List.of()).equal(), "bit for bit after the round trip through host memory");
        assertEquals(served, weights.checksums().combined());
        assertArrayEquals(before, greedy(engine, "g1"));
    }

    static int[] greedy(LlmEngine engine, String rid) {
        int[][] out = new int[1][];
        engine.add(new Sequence(rid, 0, WeightUpdateTest.PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(8).ignoreEos(true).build(),
                LogprobOptions.NONE, null, o -> { if (o.finished()) out[0] = o.outputIds(); }, false, 0));
        while (engine.hasWork()) engine.step();
        return out[0];
    }
}
