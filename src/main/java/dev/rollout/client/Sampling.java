package dev.rollout.client;

/**
 * SGLang's {@code sampling_params} for one generation.
 *
 * @param maxNewTokens  tokens to generate at most
 * @param temperature   0 for greedy
 * @param topP          nucleus, 1 for the whole vocabulary
 * @param topK          -1 for no limit
 * @param seed          per-request seed for reproducible sampling, or null
 * @param ignoreEos     keep generating past the end-of-sequence token (fixed-length rollouts)
 */
public record Sampling(int maxNewTokens, double temperature, double topP, int topK, Long seed, boolean ignoreEos) {
    public Sampling {
        if (maxNewTokens < 0) throw new IllegalArgumentException("maxNewTokens must be >= 0, not " + maxNewTokens);
        if (temperature < 0) throw new IllegalArgumentException("temperature must be >= 0, not " + temperature);
    }

    /** Greedy decoding of up to {@code maxNewTokens}. */
    public static Sampling greedy(int maxNewTokens) {
        return new Sampling(maxNewTokens, 0, 1, -1, null, false);
    }

    /** Plain sampling at {@code temperature} from the whole vocabulary, as RL rollouts do. */
    public static Sampling sample(int maxNewTokens, double temperature, Long seed) {
        return new Sampling(maxNewTokens, temperature, 1, -1, seed, false);
    }
}
