package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.TestServer.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The duplicate-rid cases that SGLang's test_abort.py and test_scheduler_control.py both carry
 * (in their TestAbortAll and TestSchedulerControl classes): a rid may be reused once its request
 * has ended, a second request with a running rid is refused, a batch naming one rid twice is
 * refused, and the server stays healthy after either.
 */
interface DuplicateRidKit {
    TestServer server();

    private Http.Reply generateWithRid(String rid, int maxNewTokens) {
        return server().post("/generate", json("text", "The capital of France is", "sampling_params",
                new TestServer.Raw(json("temperature", 0, "max_new_tokens", maxNewTokens)), "rid", rid));
    }

    @Test
    default void testDuplicateRidSequentialOk() {
        for (int i = 0; i < 2; i++) {
            Http.Reply r = generateWithRid("dup-rid-test-sequential", 8);
            assertEquals(200, r.status(), r.body());
            assertFalse(r.object().containsKey("error"));
        }
    }

    @Test
    default void testDuplicateRidConcurrentRejected() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<Http.Reply> first = pool.submit(() -> generateWithRid("dup-rid-test-concurrent", 512));
            Thread.sleep(100);
            Future<Http.Reply> second = pool.submit(() -> generateWithRid("dup-rid-test-concurrent", 8));
            // SGLang joins both within 30 s, the time a GPU needs for the 512 tokens many times
            // over; a loaded two-core CPU may need minutes. Only the overlap matters: once the
            // second is answered, the first is aborted by its rid (a 200 with finish_reason
            // abort, if it was the one running) rather than waited for.
            Http.Reply r2 = second.get(30, TimeUnit.SECONDS);
            assertEquals(200, server().post("/abort_request", json("rid", "dup-rid-test-concurrent")).status());
            Http.Reply r1 = first.get(30, TimeUnit.SECONDS);
            assertTrue(r1.status() == 400 || r2.status() == 400, "one of the concurrent duplicate-rid requests is refused");
            Http.Reply rejected = r2.status() == 400 ? r2 : r1;
            assertTrue(rejected.object().getJsonObject("error").getString("message").contains("Duplicate request ID"), rejected.body());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    default void testDuplicateRidInBatch() {
        Http.Reply r = server().post("/generate", json("text", List.of("Hello", "World"), "sampling_params",
                new TestServer.Raw(json("temperature", 0, "max_new_tokens", 8)), "rid", List.of("dup-rid-batch", "dup-rid-batch")));
        assertEquals(400, r.status());
        assertTrue(r.object().getJsonObject("error").getString("message").contains("Duplicate request ID"), r.body());
    }

    @Test
    default void testServerHealthyAfterDuplicateRid() {
        server().post("/generate", json("text", List.of("Hello", "World"), "sampling_params",
                new TestServer.Raw(json("temperature", 0, "max_new_tokens", 8)), "rid", List.of("dup-health", "dup-health")));
        assertEquals(200, server().get("/health").status());
        Http.Reply r = generateWithRid("after-dup-health", 8);
        assertEquals(200, r.status(), r.body());
        assertTrue(r.object().containsKey("text"));
    }
}
