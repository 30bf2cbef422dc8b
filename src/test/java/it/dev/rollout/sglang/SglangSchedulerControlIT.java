package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.TestServer.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Port of SGLang's {@code test/registered/scheduler/test_scheduler_control.py} (sgl-project/sglang
 * at 00e86683f4d77778c6592eb8b5bc5b457b8cd440), one nested class per SGLang class. Most of its
 * classes repeat {@code test_abort.py}'s and run the same checks ({@link SglangAbortIT}, whose
 * javadoc maps SGLang's settings to ours); {@code TestSchedulerControl} adds pausing in place
 * ({@link PauseGenerationKit}) to abort-all and the duplicate-rid cases, on the build's IT server.
 */
class SglangSchedulerControlIT {
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbort {
        @Test
        void testMemoryLeak() throws Exception {
            SglangAbortIT.memoryLeakAfterClientsGoAway(TestServer.shared());
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithApiKey {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("api-key-small-kv", SglangAbortIT.API_KEY_SMALL_KV);
        }

        @Test
        void testMemoryLeakWithApiKey() throws Exception {
            SglangAbortIT.memoryLeakAfterClientsGoAway(server);
        }
    }

    /** SGLang runs it with --max-running-requests 8; the IT server's 256 hold that and more. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestSchedulerControl implements AbortTimeoutKit.AbortAll, PauseGenerationKit.PauseResumeInPlace {
        final TestServer server = TestServer.shared();

        @Override
        public TestServer server() {
            return server;
        }

        Http.Reply generateWithRid(String rid, int maxNewTokens) {
            return server.post("/generate", json("text", "The capital of France is", "sampling_params",
                    new TestServer.Raw(json("temperature", 0, "max_new_tokens", maxNewTokens)), "rid", rid));
        }

        @Test
        void testDuplicateRidSequentialOk() {
            for (int i = 0; i < 2; i++) {
                Http.Reply r = generateWithRid("dup-rid-test-sequential", 8);
                assertEquals(200, r.status(), r.body());
                assertFalse(r.object().containsKey("error"));
            }
        }

        @Test
        void testDuplicateRidConcurrentRejected() throws Exception {
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
                assertEquals(200, server.post("/abort_request", json("rid", "dup-rid-test-concurrent")).status());
                Http.Reply r1 = first.get(30, TimeUnit.SECONDS);
                assertTrue(r1.status() == 400 || r2.status() == 400, "one of the concurrent duplicate-rid requests is refused");
                Http.Reply rejected = r2.status() == 400 ? r2 : r1;
                assertTrue(rejected.object().getJsonObject("error").getString("message").contains("Duplicate request ID"), rejected.body());
            } finally {
                pool.shutdownNow();
            }
        }

        @Test
        void testDuplicateRidInBatch() {
            Http.Reply r = server.post("/generate", json("text", List.of("Hello", "World"), "sampling_params",
                    new TestServer.Raw(json("temperature", 0, "max_new_tokens", 8)), "rid", List.of("dup-rid-batch", "dup-rid-batch")));
            assertEquals(400, r.status());
            assertTrue(r.object().getJsonObject("error").getString("message").contains("Duplicate request ID"), r.body());
        }

        @Test
        void testServerHealthyAfterDuplicateRid() {
            server.post("/generate", json("text", List.of("Hello", "World"), "sampling_params",
                    new TestServer.Raw(json("temperature", 0, "max_new_tokens", 8)), "rid", List.of("dup-health", "dup-health")));
            assertEquals(200, server.get("/health").status());
            Http.Reply r = generateWithRid("after-dup-health", 8);
            assertEquals(200, r.status(), r.body());
            assertTrue(r.object().containsKey("text"));
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortAllWithRetraction {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("api-key-small-kv", SglangAbortIT.API_KEY_SMALL_KV);
        }

        @Test
        void testAbortAllWithRetraction() throws Exception {
            SglangAbortIT.abortAllWithRetraction(server);
        }
    }

    /** SGLang's class sets SGLANG_REQ_WAITING_TIMEOUT and inherits the kit's test. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithWaitingTimeout implements AbortTimeoutKit.WaitingTimeout {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("waiting-timeout-503", SglangAbortIT.waitingTimeout(503));
        }

        @Override
        public TestServer server() {
            return server;
        }

        @Override
        public int waitingTimeoutMaxNewTokens() {
            return SglangAbortIT.WAITING_TIMEOUT_MAX_NEW_TOKENS;
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithRunningTimeout {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("running-timeout", Map.of("ROLLOUT_RUNNING_TIMEOUT_SECONDS", "0.001"));
        }

        @Test
        void testRunningTimeout() {
            SglangAbortIT.runningTimeout(server);
        }
    }
}
