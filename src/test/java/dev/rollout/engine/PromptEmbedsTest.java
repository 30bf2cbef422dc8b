package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Prompts given as embeddings (SGLang's {@code input_embeds}): the embedding table's own rows
 * must give exactly what the token ids give, through chunked prefill and shared samples, and
 * their KV must never be found by a token prompt whose ids happen to equal the placeholders.
 */
class PromptEmbedsTest {
    /** 21 positions: more than one step's budget (16 tokens), so the prompt is computed in two chunks. */
    static final int[] PROMPT = {5, 17, 99, 3, 250, 7, 42, 42, 8, 300, 11, 12, 13, 14, 15, 16, 2, 480, 9, 77, 31};
    static final SamplingParams GREEDY = SamplingParams.builder().temperature(0).maxNewTokens(8).ignoreEos(true).build();
    static EngineHarness h;
    static float[] table;
    static int hidden;

    @BeforeAll
    static void engine() throws Exception {
        h = EngineHarness.fixture("qwen3", EngineHarness.smallConfig());
        ParameterValues embed = h.weights.read("model.embed_tokens.weight", Integer.MAX_VALUE);  // (vocab, hidden)
        table = embed.values();
        hidden = embed.shape().get(1).intValue();
    }

    /** The rows the embedding layer gives for {@code ids}. */
    static PromptEmbeds rowsOf(int[] ids) {
        float[] v = new float[ids.length * hidden];
        for (int i = 0; i < ids.length; i++) System.arraycopy(table, ids[i] * hidden, v, i * hidden, hidden);
        return new PromptEmbeds(v, ids.length, hidden);
    }

    static SequenceOutput run(String rid, int[] ids, PromptEmbeds embeds) {
        Sequence s = new Sequence(rid, 0, ids, GREEDY, LogprobOptions.NONE, null, out -> {
            if (out.finished()) h.finished.put(out.rid(), out);
        }, false, 1);
        if (embeds != null) s.withPromptEmbeds(embeds, 0x5EED_0000L + rid.hashCode());
        h.engine.add(s);
        h.runToCompletion();
        return h.finished.get(rid);
    }

    @Test
    void theEmbeddingRowsOfAPromptGiveWhatItsTokensGive() {
        SequenceOutput byIds = run("ids", PROMPT, null);
        SequenceOutput byEmbeds = run("embeds", new int[PROMPT.length], rowsOf(PROMPT));
        assertArrayEquals(byIds.outputIds(), byEmbeds.outputIds());
        assertEquals(PROMPT.length, byEmbeds.promptTokens());
        assertEquals(0, byEmbeds.cachedTokens(), "an embeddings prompt finds nothing of the token prompt's cache");
    }

    @Test
    void aOnePositionPromptRunsAsItsEmbeddingNotAsADecodeOfItsPlaceholder() {
        int[] one = {PROMPT[4]};
        assertArrayEquals(run("one-id", one, null).outputIds(), run("one-embeds", new int[1], rowsOf(one)).outputIds());
    }

    @Test
    void samplesOfOneEmbeddingsRequestShareItsPromptAndATokenPromptDoesNot() {
        int[] zeros = new int[PROMPT.length];
        SequenceOutput fresh = run("zeros-first", zeros, null);  // the placeholders as a real token prompt

        PromptEmbeds rows = rowsOf(PROMPT);
        long namespace = 0xC0FFEEL;
        Sequence leader = new Sequence("pair_0", 0, zeros, GREEDY, LogprobOptions.NONE, null, out -> {
            if (out.finished()) h.finished.put(out.rid(), out);
        }, false, 1).withPromptEmbeds(rows, namespace);
        Sequence sibling = new Sequence("pair_1", 1, zeros, GREEDY, LogprobOptions.NONE, null, out -> {
            if (out.finished()) h.finished.put(out.rid(), out);
        }, false, 2).withPromptEmbeds(rows, namespace);
        sibling.sharePrefixWith(leader);
        h.engine.add(leader);
        h.engine.add(sibling);
        h.runToCompletion();
        assertArrayEquals(h.finished.get("pair_0").outputIds(), h.finished.get("pair_1").outputIds());
        assertEquals(20, h.finished.get("pair_1").cachedTokens(), "the sibling reuses the leader's full prompt blocks");

        // the embeddings prompt's blocks hold the embeddings' KV: a token prompt of the placeholder ids must not find them
        SequenceOutput again = run("zeros-again", zeros, null);
        assertArrayEquals(fresh.outputIds(), again.outputIds());
        assertEquals(20, again.cachedTokens(), "it finds its own earlier blocks, not the embeddings'");
        assertEquals(false, Arrays.equals(fresh.outputIds(), h.finished.get("pair_0").outputIds()),
                "the embeddings prompt is not the placeholder ids' prompt");
    }

    @Test
    void embeddingsOfAnotherWidthAreRefusedBeforeAnythingIsQueued() {
        Sequence s = new Sequence("narrow", 0, new int[2], GREEDY, LogprobOptions.NONE, null, out -> {}, false, 1)
                .withPromptEmbeds(new PromptEmbeds(new float[2 * (hidden - 1)], 2, hidden - 1), 7);
        assertThrows(IllegalArgumentException.class, () -> h.engine.add(s));
        assertEquals(false, h.engine.hasWork());
        assertThrows(IllegalArgumentException.class, () -> new Sequence("short", 0, new int[3], GREEDY, LogprobOptions.NONE, null,
                out -> {}, false, 1).withPromptEmbeds(new PromptEmbeds(new float[2 * hidden], 2, hidden), 7));
    }
}
