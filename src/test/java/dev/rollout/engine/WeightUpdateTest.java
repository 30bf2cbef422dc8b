package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.Checkpoint;
import dev.rollout.model.RandomCheckpoint;
import java.nio.file.Path;
import java.time.Duration;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Weight updates, versions, pause and memory release, on the engine directly. */
class WeightUpdateTest {
    static final RandomCheckpoint.Spec SPEC = new RandomCheckpoint.Spec(512, 64, 128, 2, 4, 2, 16, 256, List.of(1), 0.15);
    static final int[] PROMPT = {5, 17, 99, 3, 250, 7};
    @TempDir
    static Path dir;
    static Path a, b;

    @BeforeAll
    static void checkpoints() throws Exception {
        a = dir.resolve("a");
        b = dir.resolve("b");
        RandomCheckpoint.write(a, SPEC, 1);
        RandomCheckpoint.write(b, SPEC, 2);
    }

    static EngineHarness engine(Path ckpt) throws Exception {
        return new EngineHarness(ckpt, EngineHarness.smallConfig(), null);
    }

    static int[] greedy(EngineHarness h, String rid) {
        h.add(rid, PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(8).ignoreEos(true).build(), LogprobOptions.NONE);
        h.runToCompletion();
        return h.finished.get(rid).outputIds();
    }

    static WeightUpdate allOf(Path ckpt, String version) throws Exception {
        Checkpoint c = Checkpoint.open(ckpt);
        Map<String, Tensor> t = new LinkedHashMap<>();
        for (String name : c.names()) t.put(name, c.load(name, c.storedType(name), new Device("cpu")));
        return new WeightUpdate(t, version, false, "test", 0);
    }

    @Test
    void aFullPushServesExactlyThePushedWeights() throws Exception {
        EngineHarness h = engine(a);
        int[] fromA = greedy(h, "a1");
        int[] fromB = greedy(engine(b), "b1");
        assertFalse(java.util.Arrays.equals(fromA, fromB), "the two checkpoints must disagree for this test to mean anything");
        String sumA = LlmEngine.combinedChecksum(h.engine.checksums());

        LlmEngine.UpdateRecord r = h.engine.applyWeights(allOf(b, "step-1"));
        assertEquals("step-1", r.version());
        assertArrayEquals(fromB, greedy(h, "a2"), "after the push the engine generates what B generates");
        assertEquals(LlmEngine.combinedChecksum(engine(b).engine.checksums()), LlmEngine.combinedChecksum(h.engine.checksums()));
        assertEquals("step-1", h.finished.get("a2").weightVersion());

        h.engine.applyWeights(allOf(a, "step-2"));
        assertArrayEquals(fromA, greedy(h, "a3"));
        assertEquals(sumA, LlmEngine.combinedChecksum(h.engine.checksums()));
    }

    @Test
    void aBadUpdateChangesNothing() throws Exception {
        EngineHarness h = engine(a);
        String before = LlmEngine.combinedChecksum(h.engine.checksums());
        WeightUpdate good = allOf(b, "never");
        Map<String, Tensor> tensors = new LinkedHashMap<>(good.tensors());
        tensors.put("model.layers.9.mlp.up_proj.weight", tensors.get("model.norm.weight"));
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> h.engine.applyWeights(new WeightUpdate(tensors, "never", false, "test", 0)));
        assertTrue(unknown.getMessage().contains("unknown parameter model.layers.9.mlp.up_proj.weight"));
        Map<String, Tensor> wrong = new LinkedHashMap<>(good.tensors());
        wrong.put("model.norm.weight", wrong.get("model.layers.0.self_attn.q_norm.weight"));
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> h.engine.applyWeights(new WeightUpdate(wrong, "never", false, "test", 0)));
        assertTrue(shape.getMessage().contains("model.norm.weight has shape [64], got [16]"), shape.getMessage());
        assertEquals(before, LlmEngine.combinedChecksum(h.engine.checksums()));
        assertEquals("default", h.engine.weightVersion());
    }

    @Test
    void anUpdateReKeysThePrefixCache() throws Exception {
        EngineHarness h = engine(a);
        int[] prompt = new int[20];
        for (int i = 0; i < prompt.length; i++) prompt[i] = 30 + i;
        SamplingParams p = SamplingParams.builder().temperature(0).maxNewTokens(1).build();
        h.add("x", prompt, p, LogprobOptions.NONE);
        h.runToCompletion();
        h.add("y", prompt, p, LogprobOptions.NONE);
        h.runToCompletion();
        assertEquals(16, h.finished.get("y").cachedTokens(), "same weights: the prompt's full blocks are reused");
        h.engine.applyWeights(allOf(b, "v2"));
        h.add("z", prompt, p, LogprobOptions.NONE);
        h.runToCompletion();
        assertEquals(0, h.finished.get("z").cachedTokens(), "KV computed under the old weights must not be served");
    }

    @Test
    void aSequenceThatStraddlesAnUpdateReportsVersionSpans() throws Exception {
        EngineHarness h = engine(a);
        h.add("s", PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(6).ignoreEos(true).build(), LogprobOptions.NONE);
        for (int i = 0; i < 3; i++) h.engine.step();   // prefill + 2 decodes: 3 tokens
        h.engine.applyWeights(allOf(b, "v2"));
        h.runToCompletion();
        List<SequenceOutput.VersionSpan> spans = h.finished.get("s").weightVersions();
        assertEquals(List.of(new SequenceOutput.VersionSpan("default", 0, 3), new SequenceOutput.VersionSpan("v2", 3, 6)), spans);
    }

    @Test
    void pauseModes() throws Exception {
        EngineHarness h = engine(a);
        SamplingParams p = SamplingParams.builder().temperature(0).maxNewTokens(20).ignoreEos(true).build();
        h.add("r", PROMPT, p, LogprobOptions.NONE);
        h.engine.step();
        h.engine.step();
        assertEquals(1, h.engine.pause(LlmEngine.PauseMode.RETRACT));
        assertFalse(h.engine.canStep());
        assertEquals(0, h.engine.step());
        h.engine.resume();
        h.runToCompletion();
        assertEquals(20, h.finished.get("r").completionTokens());
        assertEquals(1, h.finished.get("r").numRetractions());
        assertArrayEquals(greedyFor(a, 20), h.finished.get("r").outputIds(), "a retracted request recomputes to the same tokens");

        h.add("q", PROMPT, p, LogprobOptions.NONE);
        h.engine.step();
        assertEquals(1, h.engine.pause(LlmEngine.PauseMode.ABORT));
        assertEquals(FinishReason.Type.ABORT, h.finished.get("q").finishReason().type());
        assertTrue(h.finished.get("q").completionTokens() >= 1, "partial output comes back");
    }

    static int[] greedyFor(Path ckpt, int n) throws Exception {
        EngineHarness h = engine(ckpt);
        h.add("g", PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(n).ignoreEos(true).build(), LogprobOptions.NONE);
        h.runToCompletion();
        return h.finished.get("g").outputIds();
    }

    @Test
    void releaseAndResumeMemory() throws Exception {
        EngineHarness h = engine(a);
        int[] before = greedy(h, "m1");
        h.add("busy", PROMPT, SamplingParams.GREEDY, LogprobOptions.NONE);
        assertThrows(IllegalStateException.class, () -> h.engine.releaseMemory(EnumSet.allOf(LlmEngine.MemoryTag.class)));
        h.runToCompletion();
        Map<LlmEngine.MemoryTag, Long> freed = h.engine.releaseMemory(EnumSet.allOf(LlmEngine.MemoryTag.class));
        assertTrue(freed.get(LlmEngine.MemoryTag.WEIGHTS) > 0);
        assertTrue(freed.get(LlmEngine.MemoryTag.KV_CACHE) > 0);
        assertEquals(0, h.engine.model().weightBytes());
        assertThrows(IllegalArgumentException.class, () -> h.engine.applyWeights(allOf(a, "x")), "no pushing into released weights");
        assertTrue(h.engine.resumeMemory(EnumSet.allOf(LlmEngine.MemoryTag.class)), "the weights must be pushed again");
        h.add("waits", PROMPT, SamplingParams.GREEDY, LogprobOptions.NONE);
        assertFalse(h.engine.canStep(), "no generation on zeroed weights");
        h.engine.abort(r -> true, "test");
        h.engine.applyWeights(allOf(a, "again"));
        assertEquals(0, h.engine.numUnpushed());
        assertArrayEquals(before, greedy(h, "m2"));
    }

    @Test
    void anUpdateWaitsForRunningRequestsOrGivesUp() throws Exception {
        EngineHarness h = engine(a);
        CompletableFuture<SequenceOutput> done = new CompletableFuture<>();
        try (EngineLoop loop = new EngineLoop(h.engine, Executors.defaultThreadFactory())) {
            Sequence slow = new Sequence("slow", 0, PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(200).ignoreEos(true).build(),
                    LogprobOptions.NONE, null, o -> { if (o.finished()) done.complete(o); }, false, 0);
            loop.submit(List.of(slow));
            while (loop.status().running() == 0) Thread.sleep(1);
            ExecutionException gaveUp = assertThrows(ExecutionException.class,
                    () -> loop.updateWeights(allOf(b, "late"), Duration.ofMillis(1)).get(30, TimeUnit.SECONDS));
            assertTrue(gaveUp.getCause() instanceof IllegalStateException);
            LlmEngine.UpdateRecord r = loop.updateWeights(allOf(b, "after"), Duration.ofSeconds(60)).get(60, TimeUnit.SECONDS);
            assertTrue(done.isDone(), "the update applied only after the running request finished");
            assertEquals(FinishReason.Type.LENGTH, done.get().finishReason().type());
            assertEquals("after", r.version());
            assertNotEquals("late", loop.engine().weightVersion());
        }
    }
}
