package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.RandomCheckpoint;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prompt logprobs of a long prompt: scored a slice of {@link ModelRunner#SCORE_SLICE} positions
 * at a time (the logits of every position at once took 1.8 GB for 3,000 positions of Qwen's
 * vocabulary), they must be what a prefill in small chunks gives, position by position.
 */
class PromptScoringTest {
    @TempDir
    static Path dir;

    @Test
    void aPromptScoredInSlicesMatchesOneScoredChunkByChunk() throws Exception {
        RandomCheckpoint.write(dir, new RandomCheckpoint.Spec(512, 64, 128, 2, 4, 2, 16, 1024, List.of(1), 0.15), 5);
        int n = ModelRunner.SCORE_SLICE * 2 + 89;  // three slices, the last a partial one
        int[] prompt = new SplittableRandom(11).ints(n, 2, 512).toArray();
        LogprobOptions all = new LogprobOptions(true, 0, 2, null);
        SamplingParams one = SamplingParams.builder().temperature(0).maxNewTokens(1).build();

        // the whole prompt in one step: every position scored through the slices
        EngineHarness whole = new EngineHarness(dir, new EngineConfig(EngineHarness.DEVICE, "float32", 16, 64, 4, 1024, 0, 0.8), null);
        whole.add("whole", prompt, one, all);
        whole.runToCompletion();
        // 16 tokens a step: no step scores more than 16 positions
        EngineHarness chunked = new EngineHarness(dir, new EngineConfig(EngineHarness.DEVICE, "float32", 16, 64, 4, 16, 0, 0.8), null);
        chunked.add("chunked", prompt, one, all);
        chunked.runToCompletion();

        List<TokenLogprob> a = whole.finished.get("whole").inputLogprobs(), b = chunked.finished.get("chunked").inputLogprobs();
        assertEquals(n, a.size());
        assertEquals(n, b.size());
        assertTrue(Float.isNaN(a.get(0).logprob()), "nothing predicts the first token");
        for (int i = 1; i < n; i++) {
            assertEquals(prompt[i], a.get(i).tokenId());
            assertEquals(b.get(i).tokenId(), a.get(i).tokenId());
            assertEquals(b.get(i).logprob(), a.get(i).logprob(), 1e-4, "position " + i);
            assertTrue(a.get(i).logprob() <= 0);
        }
        assertEquals(whole.finished.get("whole").outputIds()[0], chunked.finished.get("chunked").outputIds()[0]);
    }
}
