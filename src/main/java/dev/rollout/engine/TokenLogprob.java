package dev.rollout.engine;

/**
 * The log-probability of one token at one position, with the alternatives that were asked for.
 * {@code logprob} is NaN for the first prompt token, which has no prediction.
 *
 * @param topIds     the top-k token ids at this position, best first (empty if not asked)
 * @param topLogprobs their logprobs
 * @param idsLogprobs logprobs of the request's {@code token_ids_logprob}, in its order (or null)
 */
public record TokenLogprob(int tokenId, float logprob, int[] topIds, float[] topLogprobs, float[] idsLogprobs) {
    public static TokenLogprob unscored(int tokenId) {
        return new TokenLogprob(tokenId, Float.NaN, new int[0], new float[0], null);
    }
}
