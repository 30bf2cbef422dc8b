package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.RandomCheckpoint;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * weights_checker's snapshot, reset_tensors and compare, as SGLang's WeightChecker
 * (python/sglang/srt/utils/weight_checker.py at 05bed317) does them and slime's
 * --check-weight-update-equal calls them: snapshot, reset_tensors, the trainer's push, compare.
 * Ours also holds the engine after reset_tensors until every parameter is pushed again (SGLang
 * serves the noise), and keeps that hold across a release and resume with a host copy.
 */
class WeightCheckerTest {
    @TempDir
    static Path dir;
    static Path a, b;

    @BeforeAll
    static void checkpoints() throws Exception {
        a = dir.resolve("a");
        b = dir.resolve("b");
        RandomCheckpoint.write(a, WeightUpdateTest.SPEC, 1);
        RandomCheckpoint.write(b, WeightUpdateTest.SPEC, 2);
    }

    /** The update without the named parameters: a push that misses them. */
    static WeightUpdate without(WeightUpdate all, String... missing) {
        Map<String, Tensor> kept = new LinkedHashMap<>(all.tensors());
        for (String m : missing) kept.remove(m).close();
        return new WeightUpdate(kept, all.version(), false, "test", 0);
    }

    @Test
    void snapshotResetPushCompareFindsEveryParameterThePushMissed() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        WeightChecker checker = new WeightChecker(h.engine, h.weights);
        int[] before = WeightUpdateTest.greedy(h, "before");
        String served = h.checksum();
        int parameters = h.engine.model().parameters().names().size();

        WeightCheck snap = checker.snapshot();
        assertEquals(parameters, snap.numParameters());
        assertEquals(h.engine.model().parameterCount() * 4, snap.snapshotBytes(), "float32: the model's bytes, once");
        assertTrue(checker.compare(List.of()).equal(), "nothing changed yet");

        checker.resetTensors(List.of());
        assertNotEquals(served, h.checksum(), "the parameters hold noise now");
        assertEquals(parameters, h.weights.numUnpushed(), "and none of them may be served");
        h.settle();
        h.add("held", WeightUpdateTest.PROMPT, SamplingParams.GREEDY, LogprobOptions.NONE);
        assertFalse(h.engine.canStep(), "no generation from noise");
        h.engine.abort(RequestMatch.every(), "test");
        WeightCheck noisy = checker.compare(List.of());
        assertEquals(parameters, noisy.differences().size(), "every parameter differs from the snapshot");
        WeightCheck.Difference d = noisy.differences().get(0);
        assertTrue(d.numDiffering() > 0 && d.numDiffering() <= d.numel() && d.maxAbsErr() > 0 && d.meanAbsErr() > 0, d.toString());

        String missed = "model.norm.weight";
        h.weights.apply(without(WeightUpdateTest.allOf(a, "step-1"), missed));
        assertEquals(1, h.weights.numUnpushed(), "the missed parameter still holds the engine");
        h.settle();
        WeightCheck partial = checker.compare(List.of());
        assertEquals(List.of(missed), partial.differences().stream().map(WeightCheck.Difference::name).toList(),
                "compare names exactly the parameter the push missed");

        h.weights.apply(WeightUpdateTest.allOf(a, "step-2"));
        assertEquals(0, h.weights.numUnpushed());
        assertTrue(checker.compare(List.of()).equal(), "the same weights pushed back: equal bit for bit");
        assertEquals(served, h.checksum());
        h.settle();
        assertArrayEquals(before, WeightUpdateTest.greedy(h, "after"), "serves again, exactly as before");
    }

    @Test
    void compareFindsOtherWeightsAndASecondSnapshotReplacesTheFirst() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        WeightChecker checker = new WeightChecker(h.engine, h.weights);
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> checker.compare(List.of()));
        assertTrue(none.getMessage().contains("action 'snapshot' first"), none.getMessage());
        long bytes = checker.snapshot().snapshotBytes();
        h.weights.apply(WeightUpdateTest.allOf(b, "b"));
        assertFalse(checker.compare(List.of()).equal(), "other weights than the snapshot's");
        assertEquals(bytes, checker.snapshot().snapshotBytes(), "the second snapshot reuses the first one's memory");
        assertTrue(checker.compare(List.of()).equal());
    }

    /**
     * SGLang's skip_tensor_list (newer slime and miles send it): what a trainer never pushes is
     * neither reset nor compared, so that the engine is not left waiting for a push that never comes.
     */
    @Test
    void skippedParametersAreNeitherResetNorCompared() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        WeightChecker checker = new WeightChecker(h.engine, h.weights);
        int parameters = h.engine.model().parameters().names().size();
        List<String> skip = List.of("model.norm.");
        checker.snapshot();
        assertEquals(parameters - 1, checker.resetTensors(skip).numParameters());
        assertEquals(parameters - 1, h.weights.numUnpushed(), "the skipped one keeps its values and may be served");
        h.weights.apply(without(WeightUpdateTest.allOf(a, "1"), "model.norm.weight"));  // the trainer's push leaves it out
        assertFalse(h.memory.holdsEngine());
        WeightCheck check = checker.compare(skip);
        assertTrue(check.equal());
        assertEquals(parameters - 1, check.numParameters());
        assertTrue(checker.compare(List.of()).equal(), "it was left alone, so it equals its snapshot too");
    }

    @Test
    void resetIsRefusedWhileRequestsRunOrTheWeightsAreReleased() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        WeightChecker checker = new WeightChecker(h.engine, h.weights);
        String served = h.checksum();
        h.add("busy", WeightUpdateTest.PROMPT, SamplingParams.GREEDY, LogprobOptions.NONE);
        h.engine.step();
        IllegalStateException busy = assertThrows(IllegalStateException.class, () -> checker.resetTensors(List.of()));
        assertTrue(busy.getMessage().contains("pause or abort them first"), busy.getMessage());
        assertEquals(served, h.checksum(), "a refused reset leaves the weights alone");
        h.runToCompletion();
        h.memory.release(EnumSet.of(MemoryTag.WEIGHTS));
        assertThrows(IllegalStateException.class, () -> checker.resetTensors(List.of()));
        assertThrows(IllegalStateException.class, checker::snapshot, "released without a host copy: nothing to copy");
    }

    /**
     * slime's order with --offload-rollout: snapshot and reset_tensors, then the offload (release
     * with a host copy: of the noise), the onload (resume from that copy), the push, compare.
     * Restoring the copy must not make the noise servable.
     */
    @Test
    void aResumeFromTheHostCopyKeepsTheResetParametersHeld() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        WeightControl weights = new WeightControl(h.engine, true);
        MemoryOccupation memory = new MemoryOccupation(h.engine, weights);
        WeightChecker checker = new WeightChecker(h.engine, weights);
        int parameters = h.engine.model().parameters().names().size();
        checker.snapshot();
        checker.resetTensors(List.of());
        memory.release(EnumSet.allOf(MemoryTag.class));
        ResumeReport resumed = memory.resume(EnumSet.of(MemoryTag.WEIGHTS));
        assertTrue(resumed.weightsRestored());
        assertEquals(parameters, resumed.parametersToPush(), "the copy was noise: still to be pushed");
        memory.resume(EnumSet.of(MemoryTag.KV_CACHE, MemoryTag.CUDA_GRAPH));
        assertTrue(memory.holdsEngine());
        weights.apply(WeightUpdateTest.allOf(a, "1"));
        assertFalse(memory.holdsEngine());
        assertTrue(checker.compare(List.of()).equal());
    }

    @Test
    void theLoopRunsTheActionsAsTypedCommands() throws Exception {
        EngineHarness h = WeightUpdateTest.engine(a);
        try (EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory())) {
            ExecutionException none = assertThrows(ExecutionException.class,
                    () -> loop.submit(new EngineCommand.CompareWeights(List.of())).get(30, TimeUnit.SECONDS));
            assertTrue(none.getCause() instanceof IllegalArgumentException, "no snapshot: the caller's mistake (SGLang: 400)");
            assertTrue(loop.submit(new EngineCommand.SnapshotWeights()).get(30, TimeUnit.SECONDS).snapshotBytes() > 0);
            loop.submit(new EngineCommand.ResetWeights(List.of())).get(30, TimeUnit.SECONDS);
            assertEquals(loop.info().parameterShapes().size(), loop.status().unpushedParameters(), "published with the answer");
            assertFalse(loop.submit(new EngineCommand.CompareWeights(List.of())).get(30, TimeUnit.SECONDS).equal());
        }
    }
}
