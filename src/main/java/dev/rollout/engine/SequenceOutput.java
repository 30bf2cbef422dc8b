package dev.rollout.engine;

import java.util.List;

/**
 * An immutable snapshot of a sequence, handed to its listener from the engine thread: while it
 * streams (finishReason null) and once when it ends.
 *
 * @param text            detokenized output, or null when the engine runs without a tokenizer
 * @param inputLogprobs   one per scored prompt position (from logprob_start_len), first may be unscored
 * @param e2eLatency      seconds from arrival to the end (or to this snapshot while running)
 * @param timeToFirstToken seconds from arrival to the first generated token, NaN before it
 */
public record SequenceOutput(
        String rid,
        int index,
        int[] outputIds,
        String text,
        FinishReason finishReason,
        int promptTokens,
        int cachedTokens,
        int numRetractions,
        List<TokenLogprob> outputLogprobs,
        List<TokenLogprob> inputLogprobs,
        String weightVersion,
        double e2eLatency,
        double timeToFirstToken) {

    public boolean finished() {
        return finishReason != null;
    }

    public int completionTokens() {
        return outputIds.length;
    }
}
