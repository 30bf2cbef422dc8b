package dev.rollout.bench;

/**
 * Benchmark prompts as token ids from SplitMix64, so that {@code bench/hf_cb.py} feeds transformers
 * exactly the same ids (it implements the same generator) without a file between the two.
 */
public final class Prompts {
    private Prompts() {}

    /**
     * {@code count} prompts of {@code length} ids from {@code seed}: in [1000, 151000) for a real
     * vocabulary (no special tokens), in [0, vocab) for a test model's small one.
     */
    public static int[][] make(int count, int length, long seed, int vocab) {
        int lo = vocab > 2000 ? 1000 : 0, hi = Math.min(vocab, 151000);
        long state = seed;
        int[][] out = new int[count][length];
        for (int p = 0; p < count; p++) {
            for (int j = 0; j < length; j++) {
                state += 0x9E3779B97F4A7C15L;
                long z = state;
                z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
                z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
                z ^= z >>> 31;
                out[p][j] = lo + (int) Long.remainderUnsigned(z, hi - lo);
            }
        }
        return out;
    }
}
