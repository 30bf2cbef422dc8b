package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * SGLang's waiting and running timeouts on the engine (the small random Qwen3): checked once per
 * step, a sequence past its deadline is aborted with SGLang's message and the configured status,
 * and the others go on.
 */
class RequestTimeoutsTest {
    static EngineHarness oneAtATime() throws Exception {
        // one running sequence at a time, as SGLang's test runs with --max-running-requests=1
        return new EngineHarness(java.nio.file.Path.of("src/test/resources/fixtures/qwen3"),
                new EngineConfig(EngineHarness.DEVICE, "float32", 4, 64, 1, 16, 0, 0.8), null);
    }

    static SamplingParams tokens(int n) {
        return SamplingParams.builder().temperature(0).maxNewTokens(n).ignoreEos(true).build();
    }

    @Test
    void aSequenceThatWaitsTooLongIsAbortedWithTheStatusAndTheRunningOneGoesOn() throws Exception {
        EngineHarness h = oneAtATime();
        h.engine.setTimeouts(new RequestTimeouts(0.05, -1, 504));
        h.add("first", new int[] {5, 6, 7}, tokens(20), LogprobOptions.NONE);
        h.engine.step();  // admitted at once
        h.add("second", new int[] {5, 6, 8}, tokens(20), LogprobOptions.NONE);
        Thread.sleep(80);
        h.runToCompletion();
        SequenceOutput second = h.finished.get("second");
        assertEquals(FinishReason.abort("Request waiting timeout reached.", 504), second.finishReason());
        assertEquals(0, second.outputIds().length);
        assertEquals(FinishReason.Type.LENGTH, h.finished.get("first").finishReason().type(), "the running one is untouched");
        assertEquals(20, h.finished.get("first").outputIds().length);
    }

    @Test
    void aSequenceThatRunsTooLongIsAbortedWithItsPartialOutput() throws Exception {
        EngineHarness h = oneAtATime();
        h.engine.setTimeouts(new RequestTimeouts(-1, 0.05, 503));
        h.add("long", new int[] {5, 6, 7}, tokens(100_000 / 100), LogprobOptions.NONE);
        long t0 = System.nanoTime();
        h.runToCompletion();
        SequenceOutput out = h.finished.get("long");
        assertEquals(FinishReason.abort("Request running timeout reached.", 503), out.finishReason());
        assertTrue(out.outputIds().length >= 1 && out.outputIds().length < 1000, "partial: " + out.outputIds().length);
        assertTrue((System.nanoTime() - t0) / 1e9 < 30);
    }

    @Test
    void offByDefault() throws Exception {
        EngineHarness h = oneAtATime();
        h.add("a", new int[] {5, 6, 7}, tokens(3), LogprobOptions.NONE);
        h.add("b", new int[] {5, 6, 9}, tokens(3), LogprobOptions.NONE);
        Thread.sleep(20);
        h.runToCompletion();
        assertEquals(FinishReason.Type.LENGTH, h.finished.get("b").finishReason().type(), "no timeout unless one is set");
    }

    @Test
    void aTimedOutStatusMustBeAnHttpError() {
        assertThrows(IllegalArgumentException.class, () -> new RequestTimeouts(1, 1, 200));
        assertTrue(!RequestTimeouts.NONE.any());
    }
}
