package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.TestServer.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonObject;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
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
 * Port of SGLang's {@code test/registered/scheduler/test_abort.py} (sgl-project/sglang at
 * 01eebcfbf06b69e8beebebabeec0e750c7d2ac7a), one nested class per SGLang class. Where SGLang
 * launches a server with other arguments or environment variables, the class launches a second
 * server with ours: {@code --max-running-requests} is {@code ROLLOUT_MAX_RUNNING_REQUESTS},
 * {@code SGLANG_REQ_WAITING_TIMEOUT} (the test's older name {@code SGLANG_QUEUED_TIMEOUT_MS}) is
 * {@code ROLLOUT_WAITING_TIMEOUT_SECONDS}, {@code SGLANG_REQ_RUNNING_TIMEOUT} is
 * {@code ROLLOUT_RUNNING_TIMEOUT_SECONDS}, {@code SGLANG_TIMED_OUT_REQUEST_STATUS_CODE} is
 * {@code ROLLOUT_TIMED_OUT_REQUEST_STATUS_CODE}, {@code --api-key} is {@code ROLLOUT_API_KEY}.
 * Second servers are launched once per test JVM and shared with {@link SglangSchedulerControlIT}
 * ({@link TestServer#launched}). The rest run on the build's IT server. The default model is random, so SGLang's prompts give
 * nonsense here; no assertion reads the text beyond its presence.
 */
class SglangAbortIT {
    /**
     * SGLang gives the API-key test and the retraction test servers of their own; here they share
     * one (second servers are slow to start on a CPU CI machine): the API key for the first, 16
     * running requests and 48 KV blocks (768 tokens) for the second, so that long requests
     * retract each other within a few dozen steps even on a slow CPU. The memory-leak check is the stricter for it: it runs
     * through retractions.
     */
    static final Map<String, String> API_KEY_SMALL_KV = Map.of("ROLLOUT_API_KEY", "test-api-key",
            "ROLLOUT_MAX_RUNNING_REQUESTS", "16", "ROLLOUT_KV_BLOCKS", "48");
    static final String PROMPT = "\n                System: You are a helpful assistant.\n                User: What is the capital of France?\n"
            + "                Assistant: The capital of France is\n                ";

    /**
     * SGLang's {@code run_and_check_memory_leak} with an abort workload: 16 clients send long
     * requests and go away after half a second; SGLang then checks its log for leaks and for the
     * aborts. Here: the server comes back to idle with every KV block free, and the 16 were aborted.
     */
    static void memoryLeakAfterClientsGoAway(TestServer s) throws Exception {
        double abortedBefore = s.metric("sglang:num_aborted_requests");
        List<Socket> clients = new ArrayList<>();
        try {
            for (int i = 0; i < 16; i++)
                clients.add(s.openGenerate(json("text", PROMPT, "sampling_params",
                        new TestServer.Raw(json("temperature", 0, "max_new_tokens", 2048)))));
            Thread.sleep(500);
        } finally {
            for (Socket c : clients) c.close();  // p.terminate()
        }
        s.awaitIdleWithoutLeak(Duration.ofSeconds(90));
        assertTrue(s.metric("sglang:num_aborted_requests") - abortedBefore >= 16, "assert_has_abort: the clients' requests were aborted");
        s.assertAlive();
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbort {
        @Test
        void testMemoryLeak() throws Exception {
            memoryLeakAfterClientsGoAway(TestServer.shared());
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
            memoryLeakAfterClientsGoAway(server);
        }
    }

    /** On the IT server, whose 256 running requests hold SGLang's 8 and more. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortAll implements AbortTimeoutKit.AbortAll, DuplicateRidKit {
        final TestServer server = TestServer.shared();

        @Override
        public TestServer server() {
            return server;
        }
    }

    /**
     * SGLang forces retraction with SGLANG_TEST_RETRACT; here a KV cache of 48 blocks (768
     * tokens) for 16 running requests of up to 4,000 tokens runs out within seconds, and the
     * scheduler retracts (preempts) the latest. Instead of sleeping 8 s, the test waits until
     * retractions have happened, then aborts everything: retracted requests, back in the queue,
     * are aborted there with their partial output and its logprobs.
     */
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
            abortAllWithRetraction(server);
        }
    }

    static void abortAllWithRetraction(TestServer s) throws Exception {
        int n = 32;
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            String body = json("text", "The capital of France is", "sampling_params",
                    new TestServer.Raw(json("temperature", 0, "max_new_tokens", 4000, "ignore_eos", true)),
                    "return_logprob", true, "top_logprobs_num", 3);
            double before = s.metric("rollout:num_preemptions");  // the server is shared: count this test's own
            List<Future<Http.Reply>> futures = AbortTimeoutKit.concurrently(pool, n, () -> s.post("/generate", body));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (s.metric("rollout:num_preemptions") - before < 8 && System.nanoTime() < deadline) Thread.sleep(200);
            assertTrue(s.metric("rollout:num_preemptions") - before >= 8, "retractions happened");
            assertEquals(200, s.admin("/abort_request", json("abort_all", true)).status());
            int inQueue = 0, inQueueWithOutput = 0;
            for (Future<Http.Reply> f : futures) {
                Http.Reply r = f.get(60, TimeUnit.SECONDS);
                JsonObject result = r.object(), meta = result.getJsonObject("meta_info");
                JsonObject reason = meta.getJsonObject("finish_reason");
                assertEquals("abort", reason.getString("type"), r.body());
                if (!"Abort in waiting queue".equals(reason.getString("message", null))) continue;
                inQueue++;
                int outputs = result.getJsonArray("output_ids").size();
                if (outputs == 0) continue;
                inQueueWithOutput++;
                assertEquals(outputs, meta.getInt("completion_tokens"));
                assertTrue(result.getString("text").length() > 0);
                assertNotNull(meta.get("weight_version"));
                assertTrue(meta.getJsonNumber("e2e_latency").doubleValue() > 0);
                for (String key : List.of("output_token_logprobs", "output_top_logprobs"))
                    assertEquals(outputs, meta.getJsonArray(key).size(), "Length of '" + key + "' should match output_ids length");
            }
            assertTrue(inQueue > 0, "some were aborted in the waiting queue");
            assertTrue(inQueueWithOutput > 0, "some of those had been retracted with partial output");
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * The waiting timeout is 0.1 s, not SGLang's 1 ms: long enough that the first request, admitted
     * at once, never waits that long on a busy CI machine; the requests are 128 tokens, not 512, so
     * that the first finishes within the kit's 60 s on a CPU, and still outlasts 0.1 s on a fast one.
     */
    static Map<String, String> waitingTimeout(int status) {
        return Map.of("ROLLOUT_MAX_RUNNING_REQUESTS", "1", "ROLLOUT_WAITING_TIMEOUT_SECONDS", "0.1",
                "ROLLOUT_TIMED_OUT_REQUEST_STATUS_CODE", String.valueOf(status));
    }

    static final int WAITING_TIMEOUT_MAX_NEW_TOKENS = 128;

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithWaitingTimeout implements AbortTimeoutKit.WaitingTimeout {
        TestServer server;

        int status() {
            return 503;
        }

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("waiting-timeout-" + status(), waitingTimeout(status()));
        }

        @Override
        public TestServer server() {
            return server;
        }

        @Override
        public int timedOutRequestStatusCode() {
            return status();
        }

        @Override
        public int waitingTimeoutMaxNewTokens() {
            return WAITING_TIMEOUT_MAX_NEW_TOKENS;
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithWaitingTimeoutCustomStatusCode extends TestAbortWithWaitingTimeout {
        @Override
        int status() {
            return 504;
        }
    }

    /** Also runs the kit's two-wave mixin, which test_abort.py does not mix in, on the same server. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithRunningTimeout implements AbortTimeoutKit.RunningTimeoutTwoWave {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("running-timeout", Map.of("ROLLOUT_RUNNING_TIMEOUT_SECONDS", "0.001"));
        }

        @Override
        public TestServer server() {
            return server;
        }

        @Test
        void testRunningTimeout() {
            runningTimeout(server);
        }
    }

    static void runningTimeout(TestServer s) {
        Http.Reply r = s.post("/generate", AbortTimeoutKit.decode("Today is ", 512, true));
        JsonObject result = r.object();
        assertEquals("error", result.getString("object"), r.body());
        assertEquals(503, result.getInt("code"));
        assertEquals(503, r.status(), "the HTTP status too");
        assertEquals("Request running timeout reached.", result.getString("message"));
    }
}
