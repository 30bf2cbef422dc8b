package dev.rollout.engine;

/**
 * A prompt given as embeddings instead of token ids (SGLang's {@code input_embeds}): the rows the
 * model's embedding layer would have produced, one per prompt position. Held on the host, row
 * after row, and uploaded chunk by chunk as the prompt is computed; decoding then continues
 * from sampled token ids as usual.
 *
 * @param values (length * hidden) float32, row-major
 */
public record PromptEmbeds(float[] values, int length, int hidden) {
    public PromptEmbeds {
        if (length < 1 || hidden < 1 || (long) length * hidden != values.length)
            throw new IllegalArgumentException("embeddings of " + values.length + " values are not " + length + " rows of " + hidden);
    }
}
