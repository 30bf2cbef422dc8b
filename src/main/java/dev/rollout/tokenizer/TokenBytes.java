package dev.rollout.tokenizer;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * What each token id adds to the decoded output, as bytes, read from a byte-level BPE
 * tokenizer.json (GPT-2's scheme: Qwen2/3, Llama 3). A vocabulary entry spells each byte as one
 * character of GPT-2's byte-to-unicode table, so {@code "Ġthe"} is the bytes {@code " the"}, and an
 * entry may be part of a character's UTF-8 encoding (Qwen splits rare CJK characters and emoji
 * across tokens): the decoder concatenates bytes and only then decodes UTF-8, which is why
 * constraints walk bytes. Added tokens decode to their content; special ones (skipped when
 * decoding, and never part of constrained text) have no bytes here.
 */
public final class TokenBytes {
    private TokenBytes() {}

    /** Each id's bytes, null for special tokens and ids without an entry; the array is as long as the highest id + 1. */
    public static byte[][] of(Path tokenizerJson) throws IOException {
        JsonObject root;
        try (Reader in = Files.newBufferedReader(tokenizerJson, StandardCharsets.UTF_8)) {
            root = JsonParser.parseReader(in).getAsJsonObject();
        }
        JsonElement decoder = root.get("decoder");
        JsonObject model = root.getAsJsonObject("model");
        if (decoder == null || !decoder.isJsonObject() || !"ByteLevel".equals(decoder.getAsJsonObject().get("type").getAsString())
                || !"BPE".equals(model.get("type").getAsString()))
            throw new UnsupportedOperationException("constrained decoding needs a byte-level BPE tokenizer (ByteLevel decoder), not " + decoder);
        int[] byteOf = unicodeToByte();
        int max = -1;
        JsonObject vocab = model.getAsJsonObject("vocab");
        for (Map.Entry<String, JsonElement> e : vocab.entrySet()) max = Math.max(max, e.getValue().getAsInt());
        for (JsonElement a : root.getAsJsonArray("added_tokens")) max = Math.max(max, a.getAsJsonObject().get("id").getAsInt());
        byte[][] out = new byte[max + 1][];
        for (Map.Entry<String, JsonElement> e : vocab.entrySet()) {
            String s = e.getKey();
            byte[] b = new byte[s.length()];
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c >= byteOf.length || byteOf[c] < 0) throw new UnsupportedOperationException("vocabulary entry '" + s + "' is not byte-level");
                b[i] = (byte) byteOf[c];
            }
            out[e.getValue().getAsInt()] = b;
        }
        for (JsonElement a : root.getAsJsonArray("added_tokens")) {
            JsonObject t = a.getAsJsonObject();
            int id = t.get("id").getAsInt();
            out[id] = t.get("special").getAsBoolean() ? null : t.get("content").getAsString().getBytes(StandardCharsets.UTF_8);
        }
        return out;
    }

    /** GPT-2's bytes_to_unicode, inverted: printable Latin-1 bytes stand for themselves, the rest for 256 + n. */
    static int[] unicodeToByte() {
        int[] inv = new int[512];
        java.util.Arrays.fill(inv, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            inv[printable ? b : 256 + n++] = b;
        }
        return inv;
    }
}
