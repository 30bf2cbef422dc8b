package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.rollout.tokenizer.HfTokenizer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The text decoded from snapshots off the engine thread is the engine's own, with the real Qwen3 tokenizer. */
class OutputTextTest {
    static HfTokenizer tok;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(Path.of(OutputTextTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI()));
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void decodesWhatTheEngineWouldFromSnapshotsAtAnyInterval() {
        int[] prompt = tok.encode("Translate:");
        int[] out = tok.encode(" héllo wörld, 世界 🎉🎉 done");
        // what the engine's detokenizer makes, token by token
        IncrementalDetokenizer engine = new IncrementalDetokenizer(tok, true,
                Arrays.copyOfRange(prompt, Math.max(0, prompt.length - IncrementalDetokenizer.CONTEXT), prompt.length));
        for (int id : out) engine.add(id);
        String expected = engine.finish();
        assertEquals(" héllo wörld, 世界 🎉🎉 done", expected);

        for (int interval : new int[] {1, 3, 7, out.length}) {
            OutputText text = new OutputText(tok, true, prompt);
            SequenceOutput last = null;
            for (int n = interval; ; n += interval) {
                int upTo = Math.min(n, out.length);
                boolean end = upTo == out.length;
                last = text.apply(snapshot(Arrays.copyOf(out, upTo), end ? FinishReason.length(out.length) : null));
                // a snapshot never shows half a character, nor text the next one takes back
                assertEquals(false, last.text().contains("\uFFFD"), last.text());
                if (end) break;
            }
            assertEquals(expected, last.text(), "stream interval " + interval);
        }
    }

    @Test
    void passesTheEnginesOwnTextThrough() {
        SequenceOutput decoded = snapshot(new int[] {1, 2}, null).withText("from the engine");
        assertSame(decoded, new OutputText(tok, true, new int[0]).apply(decoded));
    }

    private static SequenceOutput snapshot(int[] ids, FinishReason reason) {
        return new SequenceOutput("r", 0, ids, null, reason, 3, 0, 0, List.of(), List.of(), "v", List.of(), 0.1, 0.05);
    }
}
