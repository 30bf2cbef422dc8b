package dev.rollout.tokenizer;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;

/**
 * A lower bound on how many tokens a text becomes, from its length alone, so that a text that
 * cannot fit the context is refused before it is tokenized: tokenizing a 12 MB prompt took 16 s
 * (56 s under load) only to refuse it afterwards.
 *
 * <p>The bound is rigorous for byte-level BPE tokenizers (GPT-2's scheme: Qwen2/3, Llama 3),
 * which cover every byte of the normalized text with tokens: a vocabulary entry is written one
 * character per byte, so no token covers more bytes than the longest entry has characters, and
 * an added token (matched in the text as it is) no more than its content's UTF-8 bytes. So a
 * text of B bytes (after the tokenizer's NFC, where it has one) is at least ceil(B / L) tokens,
 * L being the longest of all these (128 bytes for Qwen3: a run of spaces). Special tokens the
 * post-processor adds only add to that.
 *
 * <p>Where tokenizer.json is anything else (another normalizer, a pre-tokenizer that drops
 * whitespace, added tokens that strip the whitespace beside them, SentencePiece models), no
 * bound is claimed: {@link #atLeast} answers 0 and the text is tokenized as before.
 */
public final class TokenCountBound {
    /** No bound: every text may be short enough. */
    static final TokenCountBound NONE = new TokenCountBound(0, false, "not a byte-level BPE tokenizer");

    private final int maxBytesPerToken;  // 0: no bound
    private final boolean nfc;
    private final String why;

    private TokenCountBound(int maxBytesPerToken, boolean nfc, String why) {
        this.maxBytesPerToken = maxBytesPerToken;
        this.nfc = nfc;
        this.why = why;
    }

    /** The bound for a tokenizer.json, read once (streamed: the vocabulary's values are skipped). */
    public static TokenCountBound of(Path tokenizerJson) throws IOException {
        String modelType = null;
        int longestEntry = 0;
        JsonElement normalizer = null, preTokenizer = null, added = null;
        try (Reader in = Files.newBufferedReader(tokenizerJson, StandardCharsets.UTF_8); JsonReader r = new JsonReader(in)) {
            r.beginObject();
            while (r.hasNext()) {
                switch (r.nextName()) {
                    case "normalizer" -> normalizer = JsonParser.parseReader(r);
                    case "pre_tokenizer" -> preTokenizer = JsonParser.parseReader(r);
                    case "added_tokens" -> added = JsonParser.parseReader(r);
                    case "model" -> {
                        r.beginObject();
                        while (r.hasNext()) {
                            String key = r.nextName();
                            if (key.equals("type") && r.peek() == JsonToken.STRING) {
                                modelType = r.nextString();
                            } else if (key.equals("vocab") && r.peek() == JsonToken.BEGIN_OBJECT) {
                                r.beginObject();
                                while (r.hasNext()) {
                                    longestEntry = Math.max(longestEntry, r.nextName().length());
                                    r.skipValue();
                                }
                                r.endObject();
                            } else {
                                r.skipValue();
                            }
                        }
                        r.endObject();
                    }
                    default -> r.skipValue();
                }
            }
        } catch (RuntimeException e) {
            return new TokenCountBound(0, false, "tokenizer.json not understood: " + e.getMessage());
        }
        if (!"BPE".equals(modelType) || !byteLevel(preTokenizer)) return NONE;
        Boolean nfc = nfcOrNothing(normalizer);
        if (nfc == null) return new TokenCountBound(0, false, "a normalizer other than NFC");
        int longest = longestEntry;
        if (added != null && added.isJsonArray()) {
            for (JsonElement e : added.getAsJsonArray()) {
                JsonObject t = e.getAsJsonObject();
                // lstrip/rstrip: the token takes the whitespace beside it, however long
                if (flag(t, "lstrip") || flag(t, "rstrip")) return new TokenCountBound(0, false, "added tokens that strip whitespace");
                longest = Math.max(longest, t.get("content").getAsString().getBytes(StandardCharsets.UTF_8).length);
            }
        }
        return longest == 0 ? NONE : new TokenCountBound(longest, nfc, "byte-level BPE, at most " + longest + " bytes a token");
    }

    /** At least how many tokens {@code text} becomes; 0 where no bound is known. Linear in the text, no tokenizing. */
    public long atLeast(String text) {
        if (maxBytesPerToken == 0 || text.isEmpty()) return 0;
        String t = nfc && !Normalizer.isNormalized(text, Normalizer.Form.NFC) ? Normalizer.normalize(text, Normalizer.Form.NFC) : text;
        return (utf8Bytes(t) + maxBytesPerToken - 1) / maxBytesPerToken;
    }

    /** The most bytes of text one token covers; 0 where no bound is known. */
    public int maxBytesPerToken() {
        return maxBytesPerToken;
    }

    @Override
    public String toString() {
        return why;
    }

    /** UTF-8 length; an unpaired surrogate counts 1 (it becomes at least one byte, so the bound stays a lower one). */
    static long utf8Bytes(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) n += 1;
            else if (c < 0x800) n += 2;
            else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else if (Character.isSurrogate(c)) n += 1;
            else n += 3;
        }
        return n;
    }

    private static boolean byteLevel(JsonElement pre) {
        if (pre == null || !pre.isJsonObject()) return false;
        JsonObject o = pre.getAsJsonObject();
        String type = o.has("type") ? o.get("type").getAsString() : "";
        if (type.equals("ByteLevel")) return true;
        if (!type.equals("Sequence") || !o.has("pretokenizers")) return false;
        // every step must keep the text's bytes: Split (isolating, not removing) and ByteLevel
        boolean seen = false;
        for (JsonElement step : o.getAsJsonArray("pretokenizers")) {
            String t = step.getAsJsonObject().get("type").getAsString();
            if (t.equals("ByteLevel")) seen = true;
            else if (!(t.equals("Split") && !"Removed".equals(string(step.getAsJsonObject(), "behavior")))) return false;
        }
        return seen;
    }

    /** true for NFC, false for no normalizer, null for anything else. */
    private static Boolean nfcOrNothing(JsonElement n) {
        if (n == null || n.isJsonNull()) return false;
        JsonObject o = n.getAsJsonObject();
        String type = string(o, "type");
        if ("NFC".equals(type)) return true;
        if ("Sequence".equals(type) && o.has("normalizers") && o.getAsJsonArray("normalizers").size() == 1)
            return nfcOrNothing(o.getAsJsonArray("normalizers").get(0));
        return null;
    }

    private static String string(JsonObject o, String key) {
        return o.has(key) && o.get(key).isJsonPrimitive() ? o.get(key).getAsString() : null;
    }

    private static boolean flag(JsonObject o, String key) {
        return o.has(key) && o.get(key).isJsonPrimitive() && o.get(key).getAsBoolean();
    }
}
