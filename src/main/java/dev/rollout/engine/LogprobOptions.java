package dev.rollout.engine;

import java.util.Objects;

/**
 * Which log-probabilities a request wants back.
 *
 * @param returnLogprob   logprobs of the generated tokens (and of prompt tokens if startLen >= 0)
 * @param startLen        first prompt position to score, or -1 for none
 * @param topLogprobsNum  how many top alternatives to return per position
 * @param tokenIds        ids whose logprobs to return at every position, or null
 * @param mode            what every one of those values is ({@link LogprobsMode}); the API fills in
 *                        the server's default where a request names none
 */
public record LogprobOptions(boolean returnLogprob, int startLen, int topLogprobsNum, int[] tokenIds, LogprobsMode mode) {
    public static final LogprobOptions NONE = new LogprobOptions(false, -1, 0, null);

    public LogprobOptions {
        Objects.requireNonNull(mode, "mode");
    }

    /** In the built-in default mode ({@link LogprobsMode#DEFAULT}, SGLang's). */
    public LogprobOptions(boolean returnLogprob, int startLen, int topLogprobsNum, int[] tokenIds) {
        this(returnLogprob, startLen, topLogprobsNum, tokenIds, LogprobsMode.DEFAULT);
    }

    public boolean wantsInput() {
        return returnLogprob && startLen >= 0;
    }
}
