package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.TestServer.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Port of SGLang's {@code python/sglang/test/kits/pause_generation_kit.py} (sgl-project/sglang at
 * 1a146e71c1d29fdcd85c28fbbc174195292a5153), which {@code test_scheduler_control.py} mixes in:
 * pausing in place stops every request mid-generation (none completes during the pause), and
 * continuing lets all of them complete.
 */
final class PauseGenerationKit {
    private PauseGenerationKit() {}

    /** The kit's _REQUEST_TIMEOUT: each request may take this long, paused time included. */
    static final long REQUEST_TIMEOUT_S = 180;

    interface PauseResumeInPlace {
        TestServer server();

        default int pauseNumRequests() {
            return 32;
        }

        /**
         * SGLang's 512: 32 of them took over 180 s on a shared 2-core CI machine with the CPU model;
         * 256 still run for seconds after the pause on a fast one, which the test checks.
         */
        default int pauseMaxNewTokens() {
            return 256;
        }

        default long pauseDurationMs() {
            return 5000;
        }

        @Test
        default void testPauseResumeInPlace() throws Exception {
            TestServer s = server();
            int n = pauseNumRequests();
            ExecutorService pool = Executors.newFixedThreadPool(n);
            List<Future<Http.Reply>> futures = new ArrayList<>();
            boolean paused = false;
            try {
                for (int i = 0; i < n; i++) {
                    String body = json("text", "Question " + i + ": Write a short essay about the number " + i + ".",
                            "sampling_params", new TestServer.Raw(json("temperature", 0.8, "max_new_tokens", pauseMaxNewTokens(),
                                    "ignore_eos", false)));
                    futures.add(pool.submit(() -> s.post("/generate", body, java.time.Duration.ofSeconds(REQUEST_TIMEOUT_S))));
                }
                Thread.sleep(1000);
                assertEquals(200, s.admin("/pause_generation", json("mode", "in_place")).status());
                paused = true;
                Thread.sleep(500);
                long doneBefore = futures.stream().filter(Future::isDone).count();
                Thread.sleep(pauseDurationMs());
                long doneAfter = futures.stream().filter(Future::isDone).count();
                assertTrue(doneBefore < n, "all requests completed before the pause took effect: make pauseMaxNewTokens larger");
                assertEquals(0, doneAfter - doneBefore, (doneAfter - doneBefore) + " requests completed during the pause");
                assertEquals(200, s.admin("/continue_generation", "{}").status());
                paused = false;
                int completed = 0;
                List<String> errors = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    Http.Reply r = futures.get(i).get(REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
                    if (r.status() == 200) {
                        assertTrue(r.object().getString("text").length() > 0, r.body());
                        completed++;
                    } else {
                        errors.add("request " + i + ": status=" + r.status());
                    }
                }
                assertEquals(n, completed, "some requests failed: " + errors);
            } finally {
                if (paused) s.admin("/continue_generation", "{}");  // the IT server is shared: never leave it paused
                pool.shutdownNow();
            }
        }
    }
}
