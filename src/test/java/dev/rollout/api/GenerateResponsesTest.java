package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.FinishReason;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.engine.TokenLogprob;
import jakarta.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Incremental streaming (SGLang's --incremental-streaming-output): the chunks add up to the whole answer. */
class GenerateResponsesTest {
    final GenerateResponses responses = new GenerateResponses(null, false);
    final GenerateRequest.Item item = new GenerateRequest.Item("r", new int[] {1, 2, 3},
            SamplingParams.builder().maxNewTokens(4).build(), new LogprobOptions(true, 1, 0, null));

    @Test
    void incrementalChunksAddUpToTheCumulativeAnswer() {
        int[] ids = {5, 6, 7, 8};
        String[] texts = {"a", "ab", "abc", "abcd"};
        List<TokenLogprob> lps = new ArrayList<>();
        List<Integer> gotIds = new ArrayList<>();
        List<Double> gotLps = new ArrayList<>();
        StringBuilder gotText = new StringBuilder();
        GenerateResponses.Sent sent = GenerateResponses.Sent.NOTHING;
        int inputChunks = 0;
        for (int n = 1; n <= ids.length; n += (n == 1 ? 2 : 1)) {  // snapshots after 1, 3 and 4 tokens
            while (lps.size() < n) lps.add(new TokenLogprob(ids[lps.size()], -0.5f * lps.size(), new int[0], new float[0], null));
            SequenceOutput out = snapshot(java.util.Arrays.copyOf(ids, n), texts[n - 1], n == ids.length, lps);
            JsonObject chunk = responses.toJson(out, item, 0, false, sent);
            sent = GenerateResponses.Sent.after(out);
            chunk.getJsonArray("output_ids").forEach(v -> gotIds.add(((jakarta.json.JsonNumber) v).intValue()));
            gotText.append(chunk.getString("text"));
            JsonObject meta = chunk.getJsonObject("meta_info");
            meta.getJsonArray("output_token_logprobs").forEach(t -> gotLps.add(t.asJsonArray().getJsonNumber(0).doubleValue()));
            assertEquals(n, meta.getInt("completion_tokens"), "counts stay totals");
            if (meta.containsKey("input_token_logprobs")) inputChunks++;
        }
        assertEquals(List.of(5, 6, 7, 8), gotIds);
        assertEquals("abcd", gotText.toString());
        assertEquals(List.of(0.0, -0.5, -1.0, -1.5), gotLps);
        assertEquals(1, inputChunks, "input logprobs go out once, in the first chunk");
    }

    /** JSON has no infinities or NaN: a processed mode's dropped token (-inf) and a logits mode's +inf logit go out as numbers. */
    @Test
    void infiniteValuesGoOutAsNumbers() {
        List<TokenLogprob> lps = List.of(new TokenLogprob(5, Float.NEGATIVE_INFINITY, new int[0], new float[0], null),
                new TokenLogprob(6, Float.POSITIVE_INFINITY, new int[0], new float[0], null),
                new TokenLogprob(7, Float.NaN, new int[0], new float[0], null));
        JsonObject meta = responses.toJson(snapshot(new int[] {5, 6, 7}, "abc", true, lps), item, 0, false).getJsonObject("meta_info");
        var out = meta.getJsonArray("output_token_logprobs");
        assertEquals(-1e30, out.getJsonArray(0).getJsonNumber(0).doubleValue());
        assertEquals(1e30, out.getJsonArray(1).getJsonNumber(0).doubleValue());
        assertTrue(out.getJsonArray(2).isNull(0), "NaN as null");
        assertEquals(-9999.0, OpenAi.finite(Float.NEGATIVE_INFINITY));
        assertEquals(9999.0, OpenAi.finite(Float.POSITIVE_INFINITY));
        assertEquals(-9999.0, OpenAi.finite(Float.NaN));
    }

    @Test
    void aStopStringCutAfterItsStartWentOutGivesNoNegativeText() {
        List<TokenLogprob> none = List.of();
        GenerateResponses.Sent sent = GenerateResponses.Sent.after(snapshot(new int[] {5, 6}, "ab STO", false, none));
        JsonObject last = responses.toJson(snapshot(new int[] {5, 6, 7}, "ab ", true, none), item, 0, false, sent);
        assertEquals("", last.getString("text"));
        assertEquals(1, last.getJsonArray("output_ids").size());
        JsonObject whole = responses.toJson(snapshot(new int[] {5, 6, 7}, "ab ", true, none), item, 0, false);
        assertEquals("ab ", whole.getString("text"), "without a stream state the answer is cumulative");
        assertTrue(whole.getJsonObject("meta_info").containsKey("input_token_logprobs"));
        assertFalse(last.getJsonObject("meta_info").containsKey("input_token_logprobs"));
    }

    /** SGLang's test_weight_version_spans test_11: stream chunks before the last carry the version, not the spans. */
    @Test
    void spansGoOutOnTheFinishingSnapshotOnly() {
        JsonObject running = responses.toJson(snapshot(new int[] {5}, "a", false, List.of()), item, 0, false).getJsonObject("meta_info");
        assertEquals("v", running.getString("weight_version"));
        assertFalse(running.containsKey("weight_versions"));
        assertFalse(running.containsKey("weight_version_start"));
        JsonObject last = responses.toJson(snapshot(new int[] {5, 6}, "ab", true, List.of()), item, 0, false).getJsonObject("meta_info");
        assertEquals(1, last.getJsonArray("weight_versions").size());
        assertEquals(2, last.getJsonArray("weight_versions").getJsonObject(0).getInt("end"));
        assertEquals("v", last.getString("weight_version_start"));
        assertEquals("v", last.getString("weight_version_end"));
    }

    /** SGLang's test_10: a request aborted before its first token reports [{version, 0, 0}], not []. */
    @Test
    void anAbortBeforeTheFirstTokenReportsOneEmptySpan() {
        SequenceOutput aborted = new SequenceOutput("r", 0, new int[0], "", FinishReason.abort("aborted"), 3, 0, 0, List.of(), List.of(),
                "step-3", List.of(), 0.1, Double.NaN);
        JsonObject meta = responses.toJson(aborted, item, 0, false).getJsonObject("meta_info");
        JsonObject span = meta.getJsonArray("weight_versions").getJsonObject(0);
        assertEquals(1, meta.getJsonArray("weight_versions").size());
        assertEquals("step-3", span.getString("version"));
        assertEquals(0, span.getInt("start"));
        assertEquals(0, span.getInt("end"));
        assertEquals("step-3", meta.getString("weight_version"));
    }

    /** Two updates during one request: start and end name the first and the last span's versions. */
    @Test
    void startAndEndNameTheFirstAndLastSpans() {
        SequenceOutput out = new SequenceOutput("r", 0, new int[] {5, 6, 7}, "abc", FinishReason.length(3), 3, 0, 0, List.of(), List.of(), "c",
                List.of(new SequenceOutput.VersionSpan("a", 0, 1), new SequenceOutput.VersionSpan("b", 1, 2),
                        new SequenceOutput.VersionSpan("c", 2, 3)), 0.1, 0.05);
        JsonObject meta = responses.toJson(out, item, 0, false).getJsonObject("meta_info");
        assertEquals("a", meta.getString("weight_version_start"));
        assertEquals("c", meta.getString("weight_version_end"));
        assertEquals(3, meta.getJsonArray("weight_versions").size());
    }

    private static SequenceOutput snapshot(int[] ids, String text, boolean done, List<TokenLogprob> lps) {
        return new SequenceOutput("r", 0, ids, text, done ? FinishReason.length(ids.length) : null, 3, 0, 0, List.copyOf(lps),
                List.of(TokenLogprob.unscored(2), new TokenLogprob(3, -1f, new int[0], new float[0], null)), "v",
                List.of(new SequenceOutput.VersionSpan("v", 0, ids.length)), 0.1, 0.05);
    }
}
