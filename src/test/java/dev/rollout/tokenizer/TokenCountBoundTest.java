package dev.rollout.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The lower bound on a text's tokens from its length, against the real Qwen3 tokenizer: never
 * above the true count (else a text that fits would be refused), and enough to refuse a
 * 12 MB prompt without tokenizing it.
 */
class TokenCountBoundTest {
    static HfTokenizer tok;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(Path.of(TokenCountBoundTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI()));
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void qwen3CoversAtMost128BytesAToken() {
        assertEquals(128, tok.bound().maxBytesPerToken(), tok.bound().toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "a", "Hello, world!", "SPACES128", "SPACES129", "SPACES100000", "DASHES5000",
            "<|im_start|>user\nhi<|im_end|>", "<|im_start|><|im_start|><|im_start|>", "日本語のテキスト 🚀🔥",
            // decomposed Hangul and a combining accent: NFC makes them shorter, the bound must follow
            "\u1100\u1161\u11a8\u1100\u1161\u11a8\u1100\u1161\u11a8", "e\u0301e\u0301e\u0301", "\ud800 unpaired", "\t\n\r\n  \n"})
    void neverAboveTheTrueCount(String spec) {
        String text = spec.startsWith("SPACES") ? " ".repeat(Integer.parseInt(spec.substring(6)))
                : spec.startsWith("DASHES") ? "-".repeat(Integer.parseInt(spec.substring(6))) : spec;
        long bound = tok.minTokens(text);
        int actual = tok.encode(text, false).length;
        assertTrue(bound <= actual, "bound " + bound + " > " + actual + " tokens for " + text.length() + " chars");
    }

    @Test
    void neverAboveTheTrueCountOnRandomText() {
        Random r = new Random(16);
        String[] pieces = {" ", "  ", "\n", "the", "ing", "日本", "🚀", "é", "e\u0301", "<|im_end|>", "0123456789", "{\"a\": [1]}", "    ", "—"};
        for (int i = 0; i < 300; i++) {
            StringBuilder b = new StringBuilder();
            int n = r.nextInt(400);
            for (int k = 0; k < n; k++) {
                if (r.nextInt(10) == 0) b.append(" ".repeat(r.nextInt(300)));
                else if (r.nextInt(7) == 0) b.appendCodePoint(r.nextInt(0x2FFFF) + 1);
                else b.append(pieces[r.nextInt(pieces.length)]);
            }
            String text = b.toString();
            assertTrue(tok.minTokens(text) <= tok.encode(text, false).length, "text " + i);
        }
    }

    @Test
    void twelveMegabytesAreBoundedWithoutTokenizing() {
        String text = "The quick brown fox jumps over the lazy dog. ".repeat(12_000_000 / 45);
        long t0 = System.nanoTime();
        long bound = tok.minTokens(text);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(bound >= 12_000_000 / 128 - 1, "bound " + bound);
        assertTrue(ms < 1000, "took " + ms + " ms");
    }
}
