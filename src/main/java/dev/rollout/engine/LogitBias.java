package dev.rollout.engine;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * A request's {@code logit_bias}: a number added to chosen tokens' logits before sampling (after
 * the penalties, as SGLang adds it), so a large negative bias bans a token and a large positive one
 * forces it. Kept as two parallel arrays, sorted by token id, because the sampler copies them to
 * the device every step.
 */
public record LogitBias(int[] tokenIds, float[] biases) {
    public static final LogitBias NONE = new LogitBias(new int[0], new float[0]);
    /**
     * The largest bias kept: the sampler divides the biased logits by the temperature (down to
     * 1e-6), and a bias near float's largest overflowed there to infinity, turning the softmax
     * into NaN and the draw into an arbitrary token. 1e30 forces or bans a token as absolutely as
     * any larger bias (logits are a few dozen) and stays finite divided by 1e-6.
     */
    public static final float MAX_MAGNITUDE = 1e30f;

    public LogitBias {
        if (tokenIds.length != biases.length) throw new IllegalArgumentException("one bias per token id");
        tokenIds = tokenIds.clone();
        biases = biases.clone();
    }

    /** From token id to bias; ids are checked against the vocabulary by the caller. */
    public static LogitBias of(Map<Integer, Double> bias) {
        if (bias.isEmpty()) return NONE;
        TreeMap<Integer, Double> sorted = new TreeMap<>(bias);
        int[] ids = new int[sorted.size()];
        float[] values = new float[sorted.size()];
        int i = 0;
        for (Map.Entry<Integer, Double> e : sorted.entrySet()) {
            ids[i] = e.getKey();
            values[i++] = (float) Math.max(-MAX_MAGNITUDE, Math.min(MAX_MAGNITUDE, e.getValue()));
        }
        return new LogitBias(ids, values);
    }

    public boolean isEmpty() {
        return tokenIds.length == 0;
    }

    public int size() {
        return tokenIds.length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogitBias b && Arrays.equals(tokenIds, b.tokenIds) && Arrays.equals(biases, b.biases);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(tokenIds) + Arrays.hashCode(biases);
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("{");
        for (int i = 0; i < tokenIds.length; i++) s.append(i == 0 ? "" : ", ").append(tokenIds[i]).append('=').append(biases[i]);
        return s.append('}').toString();
    }
}
