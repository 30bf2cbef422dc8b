package dev.rollout.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import dev.rollout.engine.TokenDecoder;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json} through DJL's binding of the Rust tokenizers library:
 * the same pre-tokenizer, model and decoder as transformers, with no truncation or padding.
 * Thread-safe: encoding runs on HTTP threads, decoding on the engine thread.
 */
public final class HfTokenizer implements TokenDecoder, AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final TokenCountBound bound;
    private final Path tokenizerJson;

    private HfTokenizer(HuggingFaceTokenizer tokenizer, TokenCountBound bound, Path tokenizerJson) {
        this.tokenizer = tokenizer;
        this.bound = bound;
        this.tokenizerJson = tokenizerJson;
    }

    public static HfTokenizer load(Path tokenizerJson) throws IOException {
        return new HfTokenizer(HuggingFaceTokenizer.newInstance(tokenizerJson, Map.of(
                "addSpecialTokens", "true", "truncation", "false", "padding", "false", "modelMaxLength", "100000000")),
                TokenCountBound.of(tokenizerJson), tokenizerJson);
    }

    /**
     * Each token id's bytes in the decoded output, for constrained decoding ({@link TokenBytes});
     * read from tokenizer.json on each call, which the caller does once per model.
     */
    public byte[][] tokenBytes() throws IOException {
        return TokenBytes.of(tokenizerJson);
    }

    /**
     * At least how many tokens {@link #encode} makes of {@code text}, from its length alone
     * (0 where this tokenizer allows no bound): {@link TokenCountBound}.
     */
    public long minTokens(String text) {
        return bound.atLeast(text);
    }

    /** The bound {@link #minTokens} uses, for logs and docs. */
    public TokenCountBound bound() {
        return bound;
    }

    /** Encodes text as the model's tokenizer does by default (special tokens per its post-processor). */
    public int[] encode(String text) {
        return encode(text, true);
    }

    /** Encodes text, with or without the special tokens its post-processor adds (BOS and the like). */
    public int[] encode(String text, boolean addSpecialTokens) {
        long[] ids = tokenizer.encode(text, addSpecialTokens, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = (int) ids[i];
        return out;
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) l[i] = ids[i];
        return tokenizer.decode(l, skipSpecialTokens);
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
