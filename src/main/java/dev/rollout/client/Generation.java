package dev.rollout.client;

/**
 * One finished generation: what a trainer keeps of it.
 *
 * @param outputIds       the generated token ids
 * @param outputLogprobs  each generated token's logprob under the weights that produced it
 * @param text            the decoded text, or null when the server has no tokenizer
 * @param finishReason    "length", "stop" or "abort"
 * @param weightVersion   the weight version the server stamped on the answer
 * @param promptTokens    prompt length in tokens
 */
public record Generation(int[] outputIds, float[] outputLogprobs, String text, String finishReason, String weightVersion,
                         int promptTokens) {}
