package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.EngineStats;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The /v1/loads document from engine stats, in the shape of SGLang's v1_loads.py (sgl-project/sglang
 * at 5b49fe62): what slime's server_control.num_requests_from_load reads (running + waiting of
 * each rank, or num_total_reqs) and the checks of the query.
 */
class LoadsTest {
    /** 3 running and 2 waiting, 100 of 400 blocks of 16 in use. */
    static final EngineStats BUSY = new EngineStats(3, 2, 100, 400, 16, 7, 0);

    @Test
    void coreFieldsComeFromTheEngineStats() {
        Loads.Load l = Loads.load(BUSY, 256, 123.456, 0.123456);
        assertEquals(0, l.dpRank());
        assertEquals(3, l.numRunningReqs());
        assertEquals(2, l.numWaitingReqs());
        assertEquals(5, l.numTotalReqs(), "slime sums running and waiting until they reach 0");
        assertEquals(1600, l.numUsedTokens());
        assertEquals(6400, l.maxTotalNumTokens());
        assertEquals(0.25, l.tokenUsage());
        assertEquals(123.46, l.genThroughput(), "rounded as SGLang rounds it");
        assertEquals(0.1235, l.cacheHitRate());
        assertEquals(0.2778, l.utilization(), "token_usage / 0.9 outweighs 3 of 256 running");
        assertEquals(256, l.maxRunningRequests());
        assertEquals(1.0, Loads.load(new EngineStats(4, 0, 0, 400, 16, 0, 0), 4, 0, 0).utilization(), "every slot running");
    }

    @Test
    void documentSumsTheRanksAndFiltersByRank() {
        Loads.Load l = Loads.load(BUSY, 256, 10, 0);
        Loads.Document all = Loads.document(List.of(l), null, "0.1.0", Instant.parse("2026-12-06T20:00:00Z"));
        assertEquals("2026-12-06T20:00:00Z", all.timestamp());
        assertEquals(1, all.dpRankCount());
        assertEquals(new Loads.Aggregate(3, 2, 5, 0.25, 10, l.utilization()), all.aggregate());
        assertEquals(1, Loads.document(List.of(l), 0, "0.1.0", Instant.now()).loads().size());
        Loads.Document none = Loads.document(List.of(l), 1, "0.1.0", Instant.now());
        assertEquals(0, none.dpRankCount(), "SGLang filters by dp_rank: a rank we do not have gives no loads");
        assertEquals(new Loads.Aggregate(0, 0, 0, 0, 0, 0), none.aggregate());
    }

    @Test
    void queryIsCheckedByName() {
        Loads.checkInclude(null);
        Loads.checkInclude("");
        Loads.checkInclude("core");
        Loads.checkInclude("core, memory,spec,lora,disagg,queues,all");
        ApiException e = assertThrows(ApiException.class, () -> Loads.checkInclude("core,bogus"));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains("bogus"), e.getMessage());
        assertFalse(e.getMessage().contains("[core"), "only the unknown names are named as invalid: " + e.getMessage());

        assertEquals(null, Loads.dpRank(null));
        assertEquals(0, Loads.dpRank("0"));
        assertEquals(400, assertThrows(ApiException.class, () -> Loads.dpRank("first")).status());

        assertFalse(Loads.prometheusFormat(null));
        assertFalse(Loads.prometheusFormat("json"));
        assertTrue(Loads.prometheusFormat("prometheus"));
        assertEquals(400, assertThrows(ApiException.class, () -> Loads.prometheusFormat("xml")).status());
    }

    @Test
    void prometheusTextHasAGaugePerField() {
        String text = Loads.prometheus(List.of(Loads.load(BUSY, 256, 0, 0)));
        assertTrue(text.contains("# TYPE sglang_num_running_reqs gauge\nsglang_num_running_reqs{dp_rank=\"0\"} 3\n"), text);
        assertTrue(text.contains("sglang_num_waiting_reqs{dp_rank=\"0\"} 2\n"), text);
        assertTrue(text.contains("sglang_token_usage{dp_rank=\"0\"} 0.25\n"), text);
        assertFalse(text.contains("sglang_dp_rank"), "the rank is a label, not a gauge");
    }
}
