package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.regex.PatternSyntaxException;
import org.junit.jupiter.api.Test;

/**
 * {@code stop_regex}: the search itself (its window and its budget), then through the engine with
 * the small random Qwen3 and a decoder of our own (one letter per token), with {@code logit_bias}
 * forcing the letters, so that what the model writes, and so where it stops, is known.
 */
class StopRegexTest {
    /** Token t decodes to the letter 'a' + t % 26, so forcing token 23 writes "x". */
    static final TokenDecoder LETTERS = (ids, skip) -> {
        StringBuilder s = new StringBuilder();
        for (int id : ids) s.append((char) ('a' + id % 26));
        return s.toString();
    };

    @Test
    void findsThePatternInTheTailAndReportsItAsWritten() {
        StopRegex r = StopRegex.compile(List.of("and|or", "[.!?]\\s*$"));
        assertEquals("and|or", r.find("this and that"));
        assertEquals("[.!?]\\s*$", r.find("Done. "));
        assertNull(r.find("Done. Next"), "$ is the end of the output");
        assertNull(StopRegex.compile(List.of("^x")).find("a".repeat(2000) + "x"), "^ is the output's start, not the window's");
        assertEquals("(?<=a{3})x", StopRegex.compile(List.of("(?<=a{3})x")).find("a".repeat(2000) + "x"), "lookbehind sees the whole text");
    }

    @Test
    void onlyTheLastWindowIsSearched() {
        StopRegex r = StopRegex.compile(List.of("needle"));
        String far = "needle" + "-".repeat(StopRegex.WINDOW_CHARS);
        assertNull(r.find(far), "a match that starts before the window is not searched again");
        assertEquals("needle", r.find("needle" + "-".repeat(StopRegex.WINDOW_CHARS - 6)));
    }

    @Test
    void aPatternThatBacktracksCatastrophicallyRunsOutOfBudgetNamingItself() {
        // java.util.regex survives (a+)+b; this one took 44 s on 30 a's without the budget
        StopRegex r = StopRegex.compile(List.of("ok", "(.*a){20}b"));
        long t0 = System.nanoTime();
        StopRegex.Overrun e = assertThrows(StopRegex.Overrun.class, () -> r.find("a".repeat(30)));
        assertTrue((System.nanoTime() - t0) / 1e9 < 2, "stopped by the budget, not after 2^40 steps");
        assertEquals("(.*a){20}b", e.pattern);
    }

    @Test
    void aBadPatternIsRefusedWhenCompiled() {
        assertThrows(PatternSyntaxException.class, () -> StopRegex.compile(List.of("(unclosed")));
    }

    static EngineHarness letters() throws Exception {
        return new EngineHarness(java.nio.file.Path.of("src/test/resources/fixtures/qwen3"), EngineHarness.smallConfig(), LETTERS);
    }

    /** Greedy, ignoring EOS, with token 23 ("x") forced from the start. */
    static SamplingParams.Builder writingX(int max) {
        return SamplingParams.builder().temperature(0).maxNewTokens(max).ignoreEos(true).logitBias(LogitBias.of(Map.of(23, 100.0)));
    }

    @Test
    void theEngineStopsWhenThePatternMatchesAndSaysWhichPattern() throws Exception {
        EngineHarness h = letters();
        h.add("q", new int[] {5, 6, 7}, writingX(40).stopRegex(StopRegex.compile(List.of("zz", "x{3}"))).build(), LogprobOptions.NONE);
        h.add("literal", new int[] {5, 6, 7}, writingX(40).stopRegex(StopRegex.compile(List.of("xx"))).build(), LogprobOptions.NONE);
        h.add("kept", new int[] {5, 6, 7}, writingX(40).stopRegex(StopRegex.compile(List.of("xx"))).noStopTrim(true).build(),
                LogprobOptions.NONE);
        h.add("never", new int[] {5, 6, 7}, writingX(6).stopRegex(StopRegex.compile(List.of("y"))).build(), LogprobOptions.NONE);
        h.runToCompletion();
        SequenceOutput q = h.finished.get("q");
        assertEquals(FinishReason.stopRegex("x{3}"), q.finishReason(), "SGLang reports the pattern, not the text it matched");
        assertEquals(3, q.outputIds().length, "stopped on the token that completed the match");
        assertEquals("xxx", q.text(), "the pattern's own text is not in the output, so nothing is trimmed (as SGLang)");
        SequenceOutput literal = h.finished.get("literal");
        assertEquals(2, literal.outputIds().length);
        assertEquals("", literal.text(), "a pattern that is its own text is trimmed as SGLang trims a matched stop");
        assertEquals("xx", h.finished.get("kept").text(), "no_stop_trim keeps it");
        assertEquals(FinishReason.Type.LENGTH, h.finished.get("never").finishReason().type());
        assertEquals("xxxxxx", h.finished.get("never").text());
    }

    @Test
    void aPatternThatStallsEndsOnlyItsOwnRequest() throws Exception {
        EngineHarness h = letters();
        // token 0 is "a": "(.*a){20}b" backtracks exponentially on a run of a's
        SamplingParams stalls = SamplingParams.builder().temperature(0).maxNewTokens(60).ignoreEos(true)
                .logitBias(LogitBias.of(Map.of(0, 100.0))).stopRegex(StopRegex.compile(List.of("(.*a){20}b"))).build();
        h.add("stalls", new int[] {5, 6, 7}, stalls, LogprobOptions.NONE);
        h.add("fine", new int[] {5, 6, 8}, writingX(30).build(), LogprobOptions.NONE);
        long t0 = System.nanoTime();
        h.runToCompletion();
        assertTrue((System.nanoTime() - t0) / 1e9 < 60, "the engine thread was not stalled");
        SequenceOutput s = h.finished.get("stalls");
        assertEquals(FinishReason.Type.ABORT, s.finishReason().type());
        assertTrue(s.finishReason().message().contains("(.*a){20}b"), s.finishReason().message());
        assertTrue(s.outputIds().length < 60);
        assertEquals(30, h.finished.get("fine").outputIds().length, "the other request ran to its end");
    }
}
