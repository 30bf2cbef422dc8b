package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.RandomCheckpoint;
import dev.rollout.model.Torch;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Updates while the weights are released, AReaL's colocated order (rl_trainer.py: offload after
 * generating, train, update_weights_from_disk, onload): the update lands in host memory (the
 * host backup when one is held, else copies of its own), its version is the one served, and the
 * resume brings it to the device. SGLang's memory saver (torch_memory_saver) gives the physical
 * memory back and keeps only the virtual addresses, so a load there has nothing to write into;
 * without it (AReaL's default) its release leaves the weights in place. Here the release frees
 * them, and the update waits in host memory, which is what AReaL's order needs.
 */
class UpdateWhileReleasedTest {
    @TempDir
    static Path dir;
    static Path a, b;
    static int[] fromB;
    static String sumB;

    @BeforeAll
    static void checkpoints() throws Exception {
        a = dir.resolve("a");
        b = dir.resolve("b");
        RandomCheckpoint.write(a, WeightUpdateTest.SPEC, 1);
        RandomCheckpoint.write(b, WeightUpdateTest.SPEC, 2);
        EngineHarness ref = WeightUpdateTest.engine(b);
        fromB = WeightUpdateTest.greedy(ref, "ref");
        sumB = ref.checksum();
    }

    @Test
    void withoutAHostCopyTheUpdateWaitsInHostMemoryForTheResume() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        assertFalse(java.util.Arrays.equals(fromB, WeightUpdateTest.greedy(h, "a")), "the two checkpoints must disagree");
        long modelBytes = h.engine.model().parameterCount() * 4;  // float32
        h.memory.release(EnumSet.allOf(MemoryTag.class));
        UpdateRecord r = h.weights.apply(WeightUpdateTest.allOf(b, "step-1"));
        assertEquals("step-1", r.version());
        assertEquals("step-1", h.engine.weightVersion(), "the version served from the resume on");
        assertEquals(modelBytes, h.weights.heldBackupBytes(), "the update, in host memory until the resume");
        assertEquals(0, h.engine.model().weightBytes(), "nothing allocated on the device while released");
        ResumeReport resumed = h.memory.resume(EnumSet.allOf(MemoryTag.class));
        assertFalse(resumed.weightsRestored(), "no host copy of the old weights was kept");
        assertEquals(0, resumed.parametersToPush(), "the update covered every parameter");
        assertEquals(modelBytes, resumed.restoredBytes());
        assertEquals(0, h.weights.heldBackupBytes(), "given back at the resume");
        h.settle();
        assertArrayEquals(fromB, WeightUpdateTest.greedy(h, "b"), "serves the update, exactly");
        assertEquals(sumB, h.checksum());
        assertEquals("step-1", h.finished.get("b").weightVersion());
    }

    @Test
    void aPartialUpdateLeavesTheRestToPushAndALaterOneWins() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        h.memory.release(EnumSet.of(MemoryTag.WEIGHTS));
        h.weights.apply(WeightCheckerTest.without(WeightUpdateTest.allOf(a, "old"), "model.norm.weight"));
        h.weights.apply(WeightCheckerTest.without(WeightUpdateTest.allOf(b, "new"), "model.norm.weight"));  // replaces the first
        Map<String, Tensor> withUnknown = new LinkedHashMap<>(WeightUpdateTest.allOf(b, null).tensors());
        withUnknown.put("model.nope", Torch.zeros(Torch.options(ScalarType.Float), 4));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> h.weights.apply(new WeightUpdate(withUnknown, "bad", false, "test", 0)));
        assertTrue(bad.getMessage().contains("unknown parameter model.nope"), "checked against the shapes while released: " + bad.getMessage());
        assertEquals("new", h.engine.weightVersion(), "a refused update changes nothing");
        ResumeReport resumed = h.memory.resume(EnumSet.of(MemoryTag.WEIGHTS));
        assertEquals(1, resumed.parametersToPush(), "the parameter no update carried");
        h.settle();
        assertTrue(h.memory.holdsEngine());
        Map<String, Tensor> norm = new LinkedHashMap<>(WeightUpdateTest.allOf(b, null).tensors());
        norm.keySet().retainAll(Set.of("model.norm.weight"));
        h.weights.apply(new WeightUpdate(norm, null, false, "test", 0));
        h.settle();
        assertArrayEquals(fromB, WeightUpdateTest.greedy(h, "b"), "the later update won, the last parameter pushed after");
    }

    @Test
    void withAHostCopyTheUpdateLandsInTheCopy() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        WeightControl weights = new WeightControl(h.engine, true);
        MemoryOccupation memory = new MemoryOccupation(h.engine, weights);
        ReleaseReport released = memory.release(EnumSet.allOf(MemoryTag.class));
        weights.apply(WeightUpdateTest.allOf(b, "step-2"));
        assertEquals(released.backupBytes(), weights.heldBackupBytes(), "into the copy: no second one");
        assertEquals(sumB, weights.checksums().combined(), "read-back while released reads the updated copy");
        ResumeReport resumed = memory.resume(EnumSet.allOf(MemoryTag.class));
        assertTrue(resumed.weightsRestored());
        assertEquals(0, resumed.parametersToPush());
        h.engine.hold(memory.holdsEngine());
        assertArrayEquals(fromB, WeightUpdateTest.greedy(h, "b"));
        assertEquals("step-2", h.finished.get("b").weightVersion());
    }

    /** Through the loop, as update_weights_from_disk with abort_all_requests sends it after a release. */
    @Test
    void theLoopAppliesAnUpdateWhileReleased() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        try (EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory())) {
            loop.submit(new EngineCommand.ReleaseMemory(Set.of())).get(30, TimeUnit.SECONDS);
            WeightUpdate u = WeightUpdateTest.allOf(b, null);
            UpdateRecord r = loop.submit(new EngineCommand.UpdateWeights(new WeightUpdate(u.tensors(), "v7", true, "disk", 0),
                    java.time.Duration.ofSeconds(5))).get(30, TimeUnit.SECONDS);
            assertEquals("v7", r.version());
            assertEquals(RlState.RELEASED, loop.status().state(), "still released: the update does not allocate");
            assertEquals("v7", loop.status().weightVersion());
            ResumeReport resumed = loop.submit(new EngineCommand.ResumeMemory(Set.of())).get(30, TimeUnit.SECONDS);
            assertEquals(0, resumed.parametersToPush());
            assertEquals(RlState.SERVING, loop.status().state());
            assertEquals(sumB, loop.submit(new EngineCommand.Checksums()).get(30, TimeUnit.SECONDS).combined());
        }
    }
}
