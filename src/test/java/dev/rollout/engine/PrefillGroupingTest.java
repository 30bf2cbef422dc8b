package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Prompt chunks attend in padded groups; padding adds at most a quarter, or a negligible amount, to a group's work. */
class PrefillGroupingTest {
    /** A chunk: tokens computed now, and its context (cached prefix + those tokens). */
    record C(int q, int ctx) {}

    static List<List<C>> group(C... chunks) {
        return ModelRunner.groupBy(List.of(chunks), C::q, C::ctx);
    }

    @Test
    void equalPromptsFormOneGroup() {
        C[] grpo = new C[16];
        for (int i = 0; i < grpo.length; i++) grpo[i] = new C(512, 512);
        assertEquals(1, group(grpo).size());
    }

    @Test
    void aLongPromptDoesNotPadManyShortOnes() {
        List<List<C>> groups = group(new C(2000, 2000), new C(10, 10), new C(12, 12), new C(9, 40));
        assertEquals(2, groups.size());
        assertEquals(List.of(new C(2000, 2000)), groups.get(0));
        assertEquals(3, groups.get(1).size());
    }

    @Test
    void everyChunkIsInExactlyOneGroup() {
        C[] mixed = {new C(100, 300), new C(5, 5), new C(64, 64), new C(64, 900), new C(1, 2), new C(300, 300)};
        assertEquals(mixed.length, group(mixed).stream().mapToInt(List::size).sum());
    }
}
