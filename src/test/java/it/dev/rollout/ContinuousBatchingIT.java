package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** 64 concurrent requests all complete, and the engine really ran them together. */
class ContinuousBatchingIT {
    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    @Test
    void sixtyFourConcurrentRequests() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(64);
        try {
            List<CompletableFuture<Http.Reply>> calls = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                String body = "{\"input_ids\": [" + (100 + i) + ", 7, 8, 9], \"rid\": \"cb-" + i + "\", "
                        + "\"sampling_params\": {\"max_new_tokens\": " + (16 + i % 16) + ", \"temperature\": 0.8, \"ignore_eos\": true}}";
                calls.add(CompletableFuture.supplyAsync(() -> Http.post("/generate", body), pool));
            }
            for (int i = 0; i < 64; i++) {
                Http.Reply r = calls.get(i).get(120, TimeUnit.SECONDS);
                assertEquals(200, r.status(), r.body());
                assertEquals(16 + i % 16, r.object().getJsonArray("output_ids").size());
                assertEquals("cb-" + i, r.object().getJsonObject("meta_info").getString("id"));
            }
        } finally {
            pool.shutdownNow();
        }
        Matcher m = Pattern.compile("(?m)^rollout:max_step_batch_size\\{[^}]*} ([0-9.]+)").matcher(Http.get("/metrics").body());
        assertTrue(m.find(), "rollout:max_step_batch_size is exported");
        double maxBatch = Double.parseDouble(m.group(1));
        System.out.println("largest engine step: " + maxBatch + " sequences");
        assertTrue(maxBatch >= 32, "steps should hold most of the 64 requests at once, max was " + maxBatch);
    }
}
