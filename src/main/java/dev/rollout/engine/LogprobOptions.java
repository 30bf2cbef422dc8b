package dev.rollout.engine;

/**
 * Which log-probabilities a request wants back.
 *
 * @param returnLogprob   logprobs of the generated tokens (and of prompt tokens if startLen >= 0)
 * @param startLen        first prompt position to score, or -1 for none
 * @param topLogprobsNum  how many top alternatives to return per position
 * @param tokenIds        ids whose logprobs to return at every position, or null
 */
public record LogprobOptions(boolean returnLogprob, int startLen, int topLogprobsNum, int[] tokenIds) {
    public static final LogprobOptions NONE = new LogprobOptions(false, -1, 0, null);

    public boolean wantsInput() {
        return returnLogprob && startLen >= 0;
    }
}
