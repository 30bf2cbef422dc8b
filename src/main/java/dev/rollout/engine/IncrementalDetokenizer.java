package dev.rollout.engine;

/**
 * Streams text out of a growing list of token ids without ever cutting a multi-byte character
 * in half. Decoding a window that starts a few tokens back gives the tokenizer the context that
 * byte-level BPE needs; a trailing U+FFFD means the last token ends inside a character, so the
 * text waits for the next token (the method vLLM uses).
 */
public final class IncrementalDetokenizer {
    /** Prompt tokens kept as decoding context for the first output tokens. */
    public static final int CONTEXT = 5;

    private final TokenDecoder decoder;
    private final boolean skipSpecial;
    private final IntList ids;
    private final StringBuilder text = new StringBuilder();
    private int prefixOffset;
    private int readOffset;

    /** @param promptTail the last (up to {@link #CONTEXT}) prompt tokens */
    public IncrementalDetokenizer(TokenDecoder decoder, boolean skipSpecial, int[] promptTail) {
        this.decoder = decoder;
        this.skipSpecial = skipSpecial;
        this.ids = IntList.of(promptTail);
        this.readOffset = promptTail.length;
    }

    /** A fresh detokenizer like this one with another prompt tail (a session's history came first). */
    IncrementalDetokenizer withContext(int[] promptTail) {
        return new IncrementalDetokenizer(decoder, skipSpecial, promptTail);
    }

    /** Adds one token; returns the text it completes (possibly empty). */
    public String add(int tokenId) {
        ids.add(tokenId);
        String prefix = decoder.decode(ids.toArray(prefixOffset, readOffset), skipSpecial);
        String full = decoder.decode(ids.toArray(prefixOffset, ids.size()), skipSpecial);
        if (full.length() <= prefix.length() || full.endsWith("\uFFFD")) return "";
        String delta = full.substring(prefix.length());
        prefixOffset = readOffset;
        readOffset = ids.size();
        text.append(delta);
        return delta;
    }

    /** The complete text so far. */
    public String text() {
        return text.toString();
    }

    /** Flushes a dangling partial character at the end of generation. */
    public String finish() {
        if (readOffset < ids.size()) {
            String prefix = decoder.decode(ids.toArray(prefixOffset, readOffset), skipSpecial);
            String full = decoder.decode(ids.toArray(prefixOffset, ids.size()), skipSpecial);
            if (full.length() > prefix.length()) text.append(full, prefix.length(), full.length());
            readOffset = ids.size();
        }
        return text.toString();
    }

    /** Cuts the text at {@code length} (a matched stop string). */
    public void truncate(int length) {
        text.setLength(Math.min(length, text.length()));
    }
}
