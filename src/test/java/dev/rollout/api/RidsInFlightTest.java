package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** A rid runs once at a time, as in SGLang; a refused claim leaves nothing claimed. */
class RidsInFlightTest {
    final RidsInFlight rids = new RidsInFlight();

    @Test
    void aRunningRidIsRefusedUntilReleased() {
        rids.claim(List.of("a"));
        ApiException e = assertThrows(ApiException.class, () -> rids.claim(List.of("a")));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains("'a'"), e.getMessage());
        rids.release(List.of("a"));
        rids.claim(List.of("a"));
        assertEquals(1, rids.size());
    }

    @Test
    void aClaimIsAllOrNothing() {
        rids.claim(List.of("b"));
        assertThrows(ApiException.class, () -> rids.claim(List.of("x", "y", "b", "z")));
        assertEquals(1, rids.size(), "x and y were given back when b was refused");
        rids.claim(List.of("x", "y", "z"));
        assertEquals(4, rids.size());
    }
}
