package dev.rollout.engine;

/** Turns token ids back into text; the engine needs it for stop strings and streamed text. */
public interface TokenDecoder {
    String decode(int[] ids, boolean skipSpecialTokens);
}
