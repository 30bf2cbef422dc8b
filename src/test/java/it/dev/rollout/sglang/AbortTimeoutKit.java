package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.TestServer.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Port of SGLang's {@code python/sglang/test/kits/abort_timeout_kit.py} (sgl-project/sglang at
 * 1658459a4f1f07d88aa0a3a6e1ea02d0a2f5c23e): its three mixins as JUnit test interfaces, which the
 * ported test classes implement as SGLang's classes inherit the mixins. Each asks its class for
 * the server to call.
 *
 * <p>Where SGLang's kit only reads the JSON body of a timed-out request ({@code "object":
 * "error"}, {@code "code"}), these also check the HTTP status, which SGLang sets to the same code.
 */
final class AbortTimeoutKit {
    private AbortTimeoutKit() {}

    /** The kit's per-request safety timeout, 60 s (ours: Http's 120 s per call, and these joins). */
    static final long REQUEST_TIMEOUT_S = 60;

    static String decode(String text, int maxNewTokens, boolean ignoreEos) {
        return json("text", text, "sampling_params",
                new TestServer.Raw(json("temperature", 0, "max_new_tokens", maxNewTokens, "ignore_eos", ignoreEos)));
    }

    /** Runs {@code n} calls of {@code call} at once, as SGLang's ThreadPoolExecutor does. */
    static List<Future<Http.Reply>> concurrently(ExecutorService pool, int n, java.util.concurrent.Callable<Http.Reply> call) {
        List<Future<Http.Reply>> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(pool.submit(call));
        return out;
    }

    /** AbortAllMixin: /abort_request with abort_all=True ends every running request with an abort. */
    interface AbortAll {
        TestServer server();

        default int abortAllNumRequests() {
            return 32;
        }

        /** SGLang's 16,000 does not fit the default model's 4,096-token context (a 400 here, as in SGLang); 4,000 does. */
        default int abortAllMaxNewTokens() {
            return 4000;
        }

        default long abortAllSleepMs() {
            return 2000;
        }

        @Test
        default void testAbortAll() throws Exception {
            TestServer s = server();
            ExecutorService pool = Executors.newFixedThreadPool(abortAllNumRequests());
            try {
                List<Future<Http.Reply>> futures = concurrently(pool, abortAllNumRequests(),
                        () -> s.post("/generate", decode("The capital of France is", abortAllMaxNewTokens(), true)));
                Thread.sleep(abortAllSleepMs());
                assertEquals(200, s.admin("/abort_request", json("abort_all", true)).status());
                for (Future<Http.Reply> f : futures) {
                    Http.Reply r = f.get(REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
                    assertEquals("abort", r.object().getJsonObject("meta_info").getJsonObject("finish_reason").getString("type"), r.body());
                }
                s.assertAlive();
            } finally {
                pool.shutdownNow();
            }
        }
    }

    /**
     * WaitingTimeoutMixin: with one running request at a time and a waiting timeout, of two
     * concurrent requests exactly one times out, with the status SGLang answers
     * (SGLANG_TIMED_OUT_REQUEST_STATUS_CODE, 503 by default).
     */
    interface WaitingTimeout {
        TestServer server();

        default int waitingTimeoutNumRequests() {
            return 2;
        }

        default int waitingTimeoutMaxNewTokens() {
            return 512;
        }

        default int timedOutRequestStatusCode() {
            return 503;
        }

        @Test
        default void testWaitingTimeout() throws Exception {
            TestServer s = server();
            ExecutorService pool = Executors.newFixedThreadPool(waitingTimeoutNumRequests());
            try {
                List<Future<Http.Reply>> futures = concurrently(pool, waitingTimeoutNumRequests(),
                        () -> s.post("/generate", decode("Today is ", waitingTimeoutMaxNewTokens(), true)));
                int errors = 0;
                for (Future<Http.Reply> f : futures) {
                    Http.Reply r = f.get(REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
                    JsonObject o = r.object();
                    if ("error".equals(o.getString("object", null))) {
                        errors++;
                        assertEquals(timedOutRequestStatusCode(), o.getInt("code"), r.body());
                        assertEquals(timedOutRequestStatusCode(), r.status(), "and the HTTP status is that code: " + r.body());
                        assertEquals("Request waiting timeout reached.", o.getString("message"));
                    } else {
                        assertEquals(200, r.status(), r.body());
                        assertEquals(waitingTimeoutMaxNewTokens(), o.getJsonArray("output_ids").size(), "the one admitted ran to its end");
                    }
                }
                assertEquals(1, errors);
                s.assertAlive();
            } finally {
                pool.shutdownNow();
            }
        }
    }

    /**
     * RunningTimeoutTwoWaveMixin: two waves of requests, admitted at different times, time out in
     * different steps; every error is the timeout's, and the server survives (SGLang PR 18760).
     */
    interface RunningTimeoutTwoWave {
        TestServer server();

        default int runningTimeoutNumWave1() {
            return 8;
        }

        default int runningTimeoutNumWave2() {
            return 8;
        }

        default long runningTimeoutSleepMs() {
            return 3000;
        }

        default int runningTimeoutMaxNewTokens() {
            return 1024;
        }

        @Test
        default void testRunningTimeoutNoCrash() throws Exception {
            TestServer s = server();
            ExecutorService pool = Executors.newFixedThreadPool(runningTimeoutNumWave1() + runningTimeoutNumWave2());
            try {
                String body = decode("Write a long story about a magical kingdom.", runningTimeoutMaxNewTokens(), true);
                List<Future<Http.Reply>> all = new ArrayList<>(concurrently(pool, runningTimeoutNumWave1(), () -> s.post("/generate", body)));
                Thread.sleep(runningTimeoutSleepMs());
                all.addAll(concurrently(pool, runningTimeoutNumWave2(), () -> s.post("/generate", body)));
                int errors = 0;
                for (Future<Http.Reply> f : all) {
                    Http.Reply r = f.get(REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
                    if ("error".equals(r.object().getString("object", null))) {
                        errors++;
                        assertEquals(503, r.object().getInt("code"), r.body());
                    }
                }
                assertTrue(errors > 0, "the running timeout fired (SGLang's kit only checks the errors it gets)");
                s.assertAlive();
            } finally {
                pool.shutdownNow();
            }
        }
    }
}
