package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import java.util.Set;
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

/** Weight updates, versions, pause and memory release: on the engine and its controls directly, and through the loop. */
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
        String sumA = h.checksum();

        UpdateRecord r = h.weights.apply(allOf(b, "step-1"));
        assertEquals("step-1", r.version());
        assertArrayEquals(fromB, greedy(h, "a2"), "after the push the engine generates what B generates");
        assertEquals(engine(b).checksum(), h.checksum());
        assertEquals("step-1", h.finished.get("a2").weightVersion());

        h.weights.apply(allOf(a, "step-2"));
        assertArrayEquals(fromA, greedy(h, "a3"));
        assertEquals(sumA, h.checksum());
    }

    /** A trainer's full state_dict of a tied model holds lm_head.weight too: skipped, as SGLang's loaders skip it. */
    @Test
    void aTiedHeadAndRotaryBuffersInAPushAreSkipped() throws Exception {
        EngineHarness h = engine(a);
        String sumB = engine(b).checksum();
        WeightUpdate fromB = allOf(b, "state-dict");
        Map<String, Tensor> stateDict = new LinkedHashMap<>(fromB.tensors());
        stateDict.put("lm_head.weight", stateDict.get("model.embed_tokens.weight"));
        stateDict.put("model.layers.0.self_attn.rotary_emb.inv_freq", stateDict.get("model.norm.weight"));
        h.weights.apply(new WeightUpdate(stateDict, "state-dict", false, "test", 0));
        assertEquals(sumB, h.checksum(), "the embedding (and so the tied head) is B's; nothing else was written");
        assertEquals("state-dict", h.engine.weightVersion());
    }

    @Test
    void aBadUpdateChangesNothing() throws Exception {
        EngineHarness h = engine(a);
        String before = h.checksum();
        WeightUpdate good = allOf(b, "never");
        Map<String, Tensor> tensors = new LinkedHashMap<>(good.tensors());
        tensors.put("model.layers.9.mlp.up_proj.weight", tensors.get("model.norm.weight"));
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> h.weights.apply(new WeightUpdate(tensors, "never", false, "test", 0)));
        assertTrue(unknown.getMessage().contains("unknown parameter model.layers.9.mlp.up_proj.weight"));
        Map<String, Tensor> wrong = new LinkedHashMap<>(good.tensors());
        wrong.put("model.norm.weight", wrong.get("model.layers.0.self_attn.q_norm.weight"));
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> h.weights.apply(new WeightUpdate(wrong, "never", false, "test", 0)));
        assertTrue(shape.getMessage().contains("model.norm.weight has shape [64], got [16]"), shape.getMessage());
        assertEquals(before, h.checksum());
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
        h.weights.apply(allOf(b, "v2"));
        h.add("z", prompt, p, LogprobOptions.NONE);
        h.runToCompletion();
        assertEquals(0, h.finished.get("z").cachedTokens(), "KV computed under the old weights must not be served");
    }

    @Test
    void aSequenceThatStraddlesAnUpdateReportsVersionSpans() throws Exception {
        EngineHarness h = engine(a);
        h.add("s", PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(6).ignoreEos(true).build(), LogprobOptions.NONE);
        for (int i = 0; i < 3; i++) h.engine.step();   // prefill + 2 decodes: 3 tokens
        h.weights.apply(allOf(b, "v2"));
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
        assertEquals(1, h.engine.pause(PauseMode.RETRACT));
        assertFalse(h.engine.canStep());
        assertEquals(0, h.engine.step());
        h.engine.resume();
        h.runToCompletion();
        assertEquals(20, h.finished.get("r").completionTokens());
        assertEquals(1, h.finished.get("r").numRetractions());
        assertArrayEquals(greedyFor(a, 20), h.finished.get("r").outputIds(), "a retracted request recomputes to the same tokens");

        h.add("q", PROMPT, p, LogprobOptions.NONE);
        h.engine.step();
        assertEquals(1, h.engine.pause(PauseMode.ABORT));
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
        assertThrows(IllegalStateException.class, () -> h.memory.release(EnumSet.allOf(MemoryTag.class)));
        h.runToCompletion();
        ReleaseReport freed = h.memory.release(EnumSet.allOf(MemoryTag.class));
        assertTrue(freed.freedBytes().get(MemoryTag.WEIGHTS) > 0);
        assertTrue(freed.freedBytes().get(MemoryTag.KV_CACHE) > 0);
        assertFalse(freed.weightsKept(), "no host copy unless rollout.weights-host-backup is on");
        assertEquals(0, h.engine.model().weightBytes());
        assertThrows(IllegalStateException.class, () -> h.weights.checksums(), "nothing to read: no host copy was kept");
        ResumeReport resumed = h.memory.resume(EnumSet.allOf(MemoryTag.class));
        assertFalse(resumed.weightsRestored());
        assertTrue(resumed.parametersToPush() > 0, "the weights must be pushed again");
        h.settle();
        h.add("waits", PROMPT, SamplingParams.GREEDY, LogprobOptions.NONE);
        assertFalse(h.engine.canStep(), "no generation on zeroed weights");
        h.engine.abort(RequestMatch.every(), "test");
        h.weights.apply(allOf(a, "again"));
        assertEquals(0, h.weights.numUnpushed());
        h.settle();
        assertArrayEquals(before, greedy(h, "m2"));
    }

    @Test
    void aHostBackupRestoresTheWeightsBitForBit() throws Exception {
        EngineHarness h = engine(a);
        WeightControl weights = new WeightControl(h.engine, true);
        MemoryOccupation memory = new MemoryOccupation(h.engine, weights);
        weights.apply(allOf(b, "pushed"));   // what comes back must be what was served, not what was loaded
        String served = weights.checksums().combined();
        int[] before = greedy(h, "k1");
        long parameters = h.engine.model().parameterCount();
        for (int cycle = 0; cycle < 2; cycle++) {   // the second cycle reuses the host copies
            ReleaseReport released = memory.release(EnumSet.of(MemoryTag.WEIGHTS, MemoryTag.KV_CACHE));
            assertTrue(released.weightsKept());
            assertEquals(parameters * 4, released.backupBytes(), "float32: every parameter, once");
            assertEquals(0, h.engine.model().weightBytes(), "the weights' memory is given back");
            assertEquals(released.backupBytes(), weights.heldBackupBytes());
            IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> memory.release(EnumSet.of(MemoryTag.WEIGHTS)),
                    "released again: refused, as in SGLang");
            assertTrue(again.getMessage().contains("[weights] that are already released"), again.getMessage());
            assertEquals(released.backupBytes(), weights.heldBackupBytes(), "the refusal keeps the copy");
            IllegalArgumentException notReleased = assertThrows(IllegalArgumentException.class,
                    () -> memory.resume(EnumSet.of(MemoryTag.WEIGHTS, MemoryTag.CUDA_GRAPH)));
            assertTrue(notReleased.getMessage().contains("[cuda_graph] that are not currently released"), notReleased.getMessage());
            assertEquals(served, weights.checksums().combined(), "while released, read-back reads the host copy");
            ResumeReport resumed = memory.resume(EnumSet.of(MemoryTag.WEIGHTS, MemoryTag.KV_CACHE));
            assertTrue(resumed.weightsRestored());
            assertEquals(released.backupBytes(), resumed.restoredBytes());
            assertEquals(0, resumed.parametersToPush());
            assertFalse(memory.holdsEngine(), "serves again without a push");
            assertEquals(served, weights.checksums().combined(), "cycle " + cycle + ": bit for bit");
            assertEquals(0, weights.heldBackupBytes(), "nothing is held for a resume once resumed");
            assertArrayEquals(before, greedy(h, "k2-" + cycle));
        }
    }

    @Test
    void theLoopRunsTypedCommandsAndPublishesTheirEffect() throws Exception {
        EngineHarness h = engine(a);
        try (EngineLoop loop = new EngineLoop(h.engine, true, Executors.defaultThreadFactory())) {
            EngineInfo info = loop.info();
            assertEquals(h.engine.model().parameterCount(), info.parameterCount());
            assertEquals(List.of(64L), info.parameterShapes().get("model.norm.weight"));
            assertTrue(info.weightsHostBackup());
            String served = loop.submit(new EngineCommand.Checksums()).get(30, TimeUnit.SECONDS).combined();
            ReleaseReport r = loop.submit(new EngineCommand.ReleaseMemory(Set.of(MemoryTag.WEIGHTS))).get(30, TimeUnit.SECONDS);
            assertTrue(r.weightsKept());
            assertEquals(RlState.RELEASED, loop.status().state(), "published before the future completes");
            assertFalse(loop.info().weightsResident());
            assertEquals(info.parameterCount(), loop.info().parameterCount(), "what the engine is does not depend on residency");
            assertEquals(r.backupBytes(), loop.status().hostBackupBytes());
            assertEquals(served, loop.submit(new EngineCommand.Checksums()).get(30, TimeUnit.SECONDS).combined(),
                    "released with a host copy: the checksums are the copy's");
            ResumeReport resumed = loop.submit(new EngineCommand.ResumeMemory(Set.of(MemoryTag.WEIGHTS))).get(30, TimeUnit.SECONDS);
            assertTrue(resumed.weightsRestored());
            assertEquals(RlState.SERVING, loop.status().state());
            assertTrue(loop.info().weightsResident());
            ParameterValues norm = loop.submit(new EngineCommand.ReadParameter("model.norm.weight", 5)).get(30, TimeUnit.SECONDS);
            assertEquals(List.of(64L), norm.shape());
            assertEquals(5, norm.values().length);
            List<Long> embedShape = info.parameterShapes().get("model.embed_tokens.weight");
            ParameterValues rows = loop.submit(new EngineCommand.ReadParameter("model.embed_tokens.weight", 3)).get(30, TimeUnit.SECONDS);
            assertEquals(3 * embedShape.get(1), rows.values().length, "SGLang's [:truncate_size] of a 2-D weight: whole rows");
            assertEquals(embedShape.get(1), rows.rowSize());
            ExecutionException unknown = assertThrows(ExecutionException.class,
                    () -> loop.submit(new EngineCommand.ReadParameter("no.such.weight", 5)).get(30, TimeUnit.SECONDS));
            assertTrue(unknown.getCause() instanceof IllegalArgumentException);
            assertEquals("v9", loop.submit(new EngineCommand.SetWeightVersion("v9", false)).get(30, TimeUnit.SECONDS));
            assertEquals("v9", loop.status().weightVersion());
        }
    }

    @Test
    void sglangsDrainWatchesForIdleAndHoldsNothingBack() throws Exception {
        EngineHarness h = engine(a);
        CompletableFuture<SequenceOutput> slowDone = new CompletableFuture<>(), lateDone = new CompletableFuture<>();
        try (EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory())) {
            DrainResult idle = loop.submit(new EngineCommand.Drain(Duration.ofSeconds(5), DrainMode.WAIT)).get(30, TimeUnit.SECONDS);
            assertTrue(idle.success());
            assertEquals(0, idle.remaining());
            assertFalse(idle.paused());
            loop.submit(new EngineCommand.Generate(List.of(new Sequence("slow", 0, PROMPT,
                    SamplingParams.builder().temperature(0).maxNewTokens(200).ignoreEos(true).build(), LogprobOptions.NONE, null,
                    o -> { if (o.finished()) slowDone.complete(o); }, false, 0))));
            while (loop.status().running() == 0) Thread.sleep(1);
            DrainResult short_ = loop.submit(new EngineCommand.Drain(Duration.ZERO, DrainMode.WAIT)).get(30, TimeUnit.SECONDS);
            assertFalse(short_.success(), "the slow request still runs at the deadline");
            assertEquals(1, short_.remaining());
            assertEquals(List.of(), short_.finished());
            assertEquals(RlState.SERVING, loop.status().state(), "a watch is no state of the engine");
            CompletableFuture<DrainResult> waiting = loop.submit(new EngineCommand.Drain(Duration.ofSeconds(60), DrainMode.WAIT));
            loop.submit(new EngineCommand.Generate(List.of(new Sequence("late", 0, PROMPT,
                    SamplingParams.builder().temperature(0).maxNewTokens(4).ignoreEos(true).build(), LogprobOptions.NONE, null,
                    o -> { if (o.finished()) lateDone.complete(o); }, false, 0))));
            DrainResult drained = waiting.get(60, TimeUnit.SECONDS);
            assertTrue(drained.success());
            assertEquals(List.of("slow"), drained.finished());
            assertTrue(slowDone.isDone() && lateDone.isDone(), "a request sent during the drain is admitted and counted");
            assertEquals(FinishReason.Type.LENGTH, slowDone.get().finishReason().type(), "nothing was cut");
            assertFalse(h.engine.paused());
        }
    }

    @Test
    void housekeepingRunsOnTheEngineThreadWithoutARequest() throws Exception {
        EngineHarness h = engine(a);
        CompletableFuture<Thread> ran = new CompletableFuture<>();
        try (EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory())) {
            loop.addHousekeeping(now -> ran.complete(Thread.currentThread()));
            assertEquals("rollout-engine", ran.get(5, TimeUnit.SECONDS).getName());
        }
    }

    /**
     * SGLang's pause watchdog (rl/test_weight_version_kv_isolation.py, test_z): a pause that no
     * continue_generation ends, ends by itself after the pause timeout, and what it held runs.
     */
    @Test
    void aPauseLongerThanThePauseTimeoutEndsByItself() throws Exception {
        EngineHarness h = engine(a);
        h.engine.setPauseTimeout(0.3);
        CompletableFuture<SequenceOutput> done = new CompletableFuture<>();
        try (EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory())) {
            loop.submit(new EngineCommand.Pause(PauseMode.IN_PLACE)).get(5, TimeUnit.SECONDS);
            long pausedAt = System.nanoTime();
            assertEquals(RlState.PAUSED, loop.status().state());
            loop.submit(new EngineCommand.Generate(List.of(new Sequence("held", 0, PROMPT, SamplingParams.builder().temperature(0)
                    .maxNewTokens(4).build(), LogprobOptions.NONE, null, o -> { if (o.finished()) done.complete(o); }, false, 0))));
            assertEquals(FinishReason.Type.LENGTH, done.get(30, TimeUnit.SECONDS).finishReason().type());
            assertTrue((System.nanoTime() - pausedAt) / 1e9 >= 0.3, "not before the timeout");
            assertEquals(RlState.SERVING, loop.status().state());
        }
    }

    @Test
    void anUpdateWaitsForRunningRequestsOrGivesUp() throws Exception {
        EngineHarness h = engine(a);
        CompletableFuture<SequenceOutput> done = new CompletableFuture<>();
        try (EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory())) {
            Sequence slow = new Sequence("slow", 0, PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(200).ignoreEos(true).build(),
                    LogprobOptions.NONE, null, o -> { if (o.finished()) done.complete(o); }, false, 0);
            loop.submit(new EngineCommand.Generate(List.of(slow)));
            while (loop.status().running() == 0) Thread.sleep(1);
            ExecutionException gaveUp = assertThrows(ExecutionException.class,
                    () -> loop.submit(new EngineCommand.UpdateWeights(allOf(b, "late"), Duration.ofMillis(1))).get(30, TimeUnit.SECONDS));
            assertTrue(gaveUp.getCause() instanceof IllegalStateException);
            UpdateRecord r = loop.submit(new EngineCommand.UpdateWeights(allOf(b, "after"), Duration.ofSeconds(60))).get(60, TimeUnit.SECONDS);
            assertTrue(done.isDone(), "the update applied only after the running request finished");
            assertEquals(FinishReason.Type.LENGTH, done.get().finishReason().type());
            assertEquals("after", r.version());
            assertEquals("after", loop.status().weightVersion());
        }
    }

    @Test
    void aClosedLoopRefusesCommandsAtOnce() throws Exception {
        EngineHarness h = engine(a);
        EngineLoop loop = new EngineLoop(h.engine, false, Executors.defaultThreadFactory());
        loop.close();
        CompletableFuture<SequenceOutput> out = new CompletableFuture<>();
        Sequence late = new Sequence("late", 0, PROMPT, SamplingParams.GREEDY, LogprobOptions.NONE, null, out::complete, false, 0);
        assertEquals(0, loop.submit(new EngineCommand.Generate(List.of(late))).get(5, TimeUnit.SECONDS));
        assertEquals(FinishReason.Type.ABORT, out.get(5, TimeUnit.SECONDS).finishReason().type());
        ExecutionException e = assertThrows(ExecutionException.class, () -> loop.submit(new EngineCommand.FlushCache()).get(5, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof IllegalStateException);
    }
}
