package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** One nesting and number limit for every JSON body, whichever parser reads it. */
class JsonLimitsTest {
    static String nested(int levels) {
        return "{\"a\": " + "[".repeat(levels - 1) + "]".repeat(levels - 1) + "}";
    }

    static ApiException refusal(String body) {
        return assertThrows(ApiException.class, () -> JsonBodies.object(new ByteArrayInputStream(body.getBytes(StandardCharsets.UTF_8)), 1 << 24));
    }

    @Test
    void theLimitItselfPassesAndOneLevelMoreIsA400NamingIt() {
        assertDoesNotThrow(() -> JsonLimits.check(nested(JsonLimits.MAX_DEPTH).getBytes(StandardCharsets.UTF_8)));
        ApiException e = refusal(nested(JsonLimits.MAX_DEPTH + 1));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains("more than 64 levels deep"), e.getMessage());
    }

    @Test
    void depthBombsOfAnySizeAreA400NotParsson500() {
        for (int levels : new int[] {999, 1001, 100_000}) {
            ApiException e = refusal(nested(levels));
            assertTrue(e.getMessage().contains("levels deep"), levels + ": " + e.getMessage());
        }
        // unclosed: the scan stops at the limit, the parser never runs
        assertTrue(refusal("[".repeat(1_000_000)).getMessage().contains("levels deep"));
    }

    @Test
    void bracketsInsideStringsDoNotCount() {
        String s = "{\"text\": \"" + "[{".repeat(500) + "\\\"]}" + "\", \"b\": [[1]]}";
        assertDoesNotThrow(() -> JsonLimits.check(s.getBytes(StandardCharsets.UTF_8)));
        assertEquals("[{[{", JsonBodies.object(new ByteArrayInputStream(s.getBytes(StandardCharsets.UTF_8)), 1 << 20).getString("text").substring(0, 4));
    }

    @Test
    void numbersPastAThousandCharactersAreRefusedBeforeBigDecimalSeesThem() {
        long t0 = System.nanoTime();
        ApiException e = refusal("{\"max_new_tokens\": " + "9".repeat(1_000_000) + "}");
        assertTrue(e.getMessage().contains("number longer than 1000"), e.getMessage());
        assertTrue(System.nanoTime() - t0 < 2_000_000_000L, "refused without parsing");
        assertDoesNotThrow(() -> JsonLimits.check(("[" + "1".repeat(1000) + "]").getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void longStringsAndKeywordsAreNotNumbers() {
        assertDoesNotThrow(() -> JsonLimits.check(("{\"t\": \"" + "9".repeat(5000) + "\", \"x\": [true, false, null]}").getBytes(StandardCharsets.UTF_8)));
    }
}
