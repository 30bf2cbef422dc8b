package it.dev.rollout.sglang;

import static it.dev.rollout.sglang.Sglang.arr;
import static it.dev.rollout.sglang.Sglang.obj;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * SGLang's {@code test/registered/rl/test_weight_version_spans.py} at commit
 * {@code 71219d32d47ee934fc41c278f8667ad5d9d9c983}, every case in its order, over plain HTTP:
 * {@code meta_info.weight_versions} spans through pauses, version bumps, disk reloads and
 * aborts, on {@code /generate} and in the OpenAI routes' {@code metadata}.
 *
 * <p>SGLang runs it on two GPUs with DP attention and EAGLE; the cases are about the spans, which
 * one engine has as well (the DP and speculative cases then check one rank and plain decoding).
 * Differences, and why: the base version is whatever the shared IT server serves when the class
 * starts (SGLang launches with {@code base-v0}), and the class sets it back at the end so the
 * other ITs see it. SGLang sleeps 2 s into 1,024-token answers before it pauses; here the long
 * requests stream ({@link LiveStream}) and the pause comes once each has its first token, so the
 * cases hold on an idle machine (where 1,024 tokens take less than 2 s) and on a loaded one (where
 * the first token may take longer), with 128-token answers. In {@code test_10} half the requests
 * arrive while paused, so that some surely abort before their first token (SGLang relies on
 * {@code --max-running-requests 8} for that). The disk reload loads the served model's own
 * directory: the weights do not change.
 */
@TestMethodOrder(MethodOrderer.MethodName.class)
class SglangWeightVersionSpansIT {
    static final int LONG = 128;
    static String initialVersion, model;
    static ExecutorService pool;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        initialVersion = Sglang.currentVersion();
        model = Sglang.modelPath();
        pool = Executors.newFixedThreadPool(16);
    }

    @AfterAll
    static void restore() {
        pool.shutdownNow();
        Http.admin("/continue_generation", "{}");
        assertEquals(200, Http.admin("/update_weight_version", obj("new_version", initialVersion, "abort_all_requests", false).toString()).status());
    }

    static JsonArray assertSpansContiguous(JsonObject metaInfo) {
        JsonArray spans = metaInfo.getJsonArray("weight_versions");
        assertTrue(spans.size() > 0);
        assertEquals(0, spans.getJsonObject(0).getInt("start"));
        for (int i = 1; i < spans.size(); i++) {
            assertEquals(spans.getJsonObject(i - 1).getInt("end"), spans.getJsonObject(i).getInt("start"));
            assertNotEquals(spans.getJsonObject(i - 1).getString("version"), spans.getJsonObject(i).getString("version"));
        }
        assertEquals(metaInfo.getString("weight_version"), spans.getJsonObject(spans.size() - 1).getString("version"));
        return spans;
    }

    static List<String> versions(JsonArray spans) {
        List<String> v = new ArrayList<>();
        for (int i = 0; i < spans.size(); i++) v.add(spans.getJsonObject(i).getString("version"));
        return v;
    }

    static JsonObject generate(int maxNewTokens, String prompt) {
        return Sglang.generate(obj("text", prompt, "sampling_params", obj("temperature", 0.8, "max_new_tokens", maxNewTokens, "ignore_eos", true)));
    }

    static JsonObject generate(int maxNewTokens) {
        return generate(maxNewTokens, "The capital of France is");
    }

    static void pause(String mode) {
        Http.Reply r = Http.admin("/pause_generation", obj("mode", mode).toString());
        assertEquals(200, r.status(), r.body());
    }

    static void continueGeneration() {
        Http.Reply r = Http.admin("/continue_generation", "{}");
        assertEquals(200, r.status(), r.body());
    }

    static void setWeightVersion(String newVersion) {
        Http.Reply r = Http.admin("/update_weight_version", obj("new_version", newVersion, "abort_all_requests", false).toString());
        assertEquals(200, r.status(), r.body());
    }

    static void updateWeightsFromDisk(String weightVersion) {
        JsonObject body = weightVersion == null ? obj("model_path", model, "flush_cache", false)
                : obj("model_path", model, "flush_cache", false, "weight_version", weightVersion);
        Http.Reply r = Http.admin("/update_weights_from_disk", body.toString());
        assertEquals(200, r.status(), r.body());
        assertTrue(r.object().getBoolean("success"), r.body());
    }

    /** Until the engine holds {@code n} requests (running or waiting), at most 30 s: the ones sent while paused have arrived. */
    static void awaitQueued(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            JsonObject state = Http.get("/rl/state").object();
            if (state.getInt("in_flight") + state.getInt("waiting") >= n) return;
            assertTrue(System.nanoTime() < deadline, "requests sent while paused did not arrive: " + state);
            Thread.sleep(10);
        }
    }

    static void abortAll() {
        assertEquals(200, Http.admin("/abort_request", obj("abort_all", true).toString()).status());
    }

    /** SGLang's long requests, streamed: "Write a long story about the number k.", each a few tokens shorter. */
    static List<LiveStream> launch(int n, int maxNewTokens) {
        List<LiveStream> streams = new ArrayList<>();
        for (int k = 0; k < n; k++)
            streams.add(new LiveStream(obj("text", "Write a long story about the number " + k + ".", "stream", true,
                    "sampling_params", obj("temperature", 0.8, "max_new_tokens", maxNewTokens - 4 * k, "ignore_eos", true))));
        return streams;
    }

    static List<JsonObject> joined(List<CompletableFuture<JsonObject>> futures) throws Exception {
        List<JsonObject> out = new ArrayList<>();
        for (CompletableFuture<JsonObject> f : futures) out.add(f.get(300, TimeUnit.SECONDS));
        return out;
    }

    /** Where SGLang sleeps 2 s: until every request has its first token. */
    static void awaitDecoding(List<LiveStream> streams) throws InterruptedException {
        for (LiveStream s : streams) s.awaitTokensOver(0);
    }

    static List<JsonObject> results(List<LiveStream> streams) throws Exception {
        List<JsonObject> out = new ArrayList<>();
        for (LiveStream s : streams) out.add(s.result());
        return out;
    }

    /** SGLang's _run_while_paused: requests decoding, then pause, the action, continue. */
    static List<JsonObject> runWhilePaused(int numRequests, Runnable whilePaused, String mode, int maxNewTokens) throws Exception {
        List<LiveStream> streams = launch(numRequests, maxNewTokens);
        awaitDecoding(streams);
        pause(mode);
        try {
            whilePaused.run();
        } finally {
            continueGeneration();
        }
        return results(streams);
    }

    @Test
    void test_01_single_span_without_update() {
        JsonObject metaInfo = generate(8).getJsonObject("meta_info");
        JsonArray spans = assertSpansContiguous(metaInfo);
        assertEquals(1, spans.size());
        assertEquals(initialVersion, spans.getJsonObject(0).getString("version"));
        assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(0).getInt("end"));
        assertEquals(initialVersion, metaInfo.getString("weight_version"));
    }

    @Test
    void test_02_update_weight_version_endpoint_applies_to_new_requests() throws Exception {
        setWeightVersion("endpoint-v1");
        assertEquals("endpoint-v1", Sglang.currentVersion());
        List<CompletableFuture<JsonObject>> f = new ArrayList<>();
        for (int i = 0; i < 4; i++) f.add(CompletableFuture.supplyAsync(() -> generate(8), pool));
        for (JsonObject data : joined(f)) {
            JsonArray spans = assertSpansContiguous(data.getJsonObject("meta_info"));
            assertEquals(1, spans.size());
            assertEquals("endpoint-v1", spans.getJsonObject(0).getString("version"));
        }
    }

    @Test
    void test_03_spans_split_across_pause_update_continue() throws Exception {
        String base = Sglang.currentVersion();
        List<JsonObject> results = runWhilePaused(4, () -> updateWeightsFromDisk("disk-v2"), "retract", LONG);
        int multiSpan = 0;
        for (JsonObject data : results) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            JsonArray spans = assertSpansContiguous(metaInfo);
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
            List<String> v = versions(spans);
            assertEquals(base, v.get(0));
            assertTrue(List.of(base, "disk-v2").contains(v.get(v.size() - 1)));
            if (spans.size() > 1) {
                multiSpan++;
                assertEquals(List.of(base, "disk-v2"), v);
                assertTrue(spans.getJsonObject(0).getInt("end") > 0);
            }
        }
        assertTrue(multiSpan > 0, "No request spanned the weight update -- no boundary was recorded.");
    }

    @Test
    void test_04_openai_metadata_contains_weight_versions() {
        JsonObject data = Sglang.ok("/v1/chat/completions", obj("model", model, "messages", arr(obj("role", "user", "content", "Hello")),
                "max_tokens", 8, "temperature", 0.0)).object();
        JsonObject metadata = data.getJsonObject("metadata");
        JsonArray spans = metadata.getJsonArray("weight_versions");
        assertEquals(1, spans.size());
        assertEquals(metadata.getString("weight_version"), spans.getJsonObject(0).getString("version"));
        assertEquals(Sglang.currentVersion(), metadata.getString("weight_version"));
        assertEquals(0, spans.getJsonObject(0).getInt("start"));
        assertEquals(data.getJsonObject("usage").getInt("completion_tokens"), spans.getJsonObject(0).getInt("end"));
    }

    @Test
    void test_04b_openai_metadata_reports_the_first_choice_when_n_is_greater_than_one() {
        JsonObject data = Sglang.ok("/v1/chat/completions", obj("model", model, "messages", arr(obj("role", "user", "content", "Hello")),
                "max_tokens", 8, "temperature", 0.8, "n", 2)).object();
        assertEquals(2, data.getJsonArray("choices").size());
        JsonObject metadata = data.getJsonObject("metadata");
        JsonArray spans = metadata.getJsonArray("weight_versions");
        assertEquals(1, spans.size());
        assertEquals(metadata.getString("weight_version"), spans.getJsonObject(0).getString("version"));
        assertEquals(Sglang.currentVersion(), metadata.getString("weight_version"));
        assertEquals(0, spans.getJsonObject(0).getInt("start"));
    }

    @Test
    void test_05_aborted_retracted_requests_report_spans() throws Exception {
        List<JsonObject> results = runWhilePaused(4, SglangWeightVersionSpansIT::abortAll, "retract", LONG);
        int abortedWithSpans = 0;
        for (JsonObject data : results) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            if (!metaInfo.getJsonObject("finish_reason").getString("type").equals("abort")) continue;
            if (!metaInfo.containsKey("weight_versions")) continue;
            JsonArray spans = assertSpansContiguous(metaInfo);
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
            abortedWithSpans++;
        }
        assertTrue(abortedWithSpans > 0, "No aborted request carried weight_versions -- the AbortReq path lost the spans.");
    }

    @Test
    void test_06_running_requests_split_without_abort() throws Exception {
        String previous = Sglang.currentVersion();
        List<JsonObject> results = runWhilePaused(4, () -> setWeightVersion("inplace-v3"), "in_place", LONG);
        assertEquals("inplace-v3", Sglang.currentVersion());
        int split = 0;
        for (JsonObject data : results) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            assertNotEquals("abort", metaInfo.getJsonObject("finish_reason").getString("type"));
            JsonArray spans = assertSpansContiguous(metaInfo);
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
            assertEquals(previous, spans.getJsonObject(0).getString("version"));
            if (spans.size() > 1) {
                split++;
                assertEquals(List.of(previous, "inplace-v3"), versions(spans));
                assertTrue(spans.getJsonObject(0).getInt("end") > 0);
            }
        }
        assertTrue(split > 0, "No running request was split -- the running batch was not visited.");
    }

    @Test
    void test_07_update_without_weight_version_does_not_split() throws Exception {
        String version = Sglang.currentVersion();
        List<JsonObject> results = runWhilePaused(4, () -> updateWeightsFromDisk(null), "retract", LONG);
        assertEquals(version, Sglang.currentVersion());
        for (JsonObject data : results) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            JsonArray spans = assertSpansContiguous(metaInfo);
            assertEquals(1, spans.size());
            assertEquals(version, spans.getJsonObject(0).getString("version"));
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(0).getInt("end"));
        }
    }

    @Test
    void test_08_reannouncing_current_version_is_a_noop() throws Exception {
        String version = Sglang.currentVersion();
        List<JsonObject> results = runWhilePaused(4, () -> setWeightVersion(version), "in_place", 128);
        assertEquals(version, Sglang.currentVersion());
        for (JsonObject data : results) {
            JsonArray spans = assertSpansContiguous(data.getJsonObject("meta_info"));
            assertEquals(1, spans.size());
            assertEquals(version, spans.getJsonObject(0).getString("version"));
        }
    }

    @Test
    void test_09_three_spans_across_two_updates() throws Exception {
        String first = Sglang.currentVersion();
        List<LiveStream> streams = launch(4, LONG);
        awaitDecoding(streams);
        for (String newVersion : List.of("multi-a", "multi-b")) {
            int[] before = streams.stream().mapToInt(LiveStream::tokens).toArray();
            pause("in_place");
            try {
                setWeightVersion(newVersion);
            } finally {
                continueGeneration();
            }
            // SGLang's second 2 s sleep: until each request has a token of the new version
            if (newVersion.equals("multi-a")) for (int i = 0; i < streams.size(); i++) streams.get(i).awaitTokensOver(before[i] + 1);
        }
        List<String> expected = List.of(first, "multi-a", "multi-b");
        int threeSpans = 0;
        for (JsonObject data : results(streams)) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            JsonArray spans = assertSpansContiguous(metaInfo);
            List<String> v = versions(spans);
            assertEquals(expected.subList(0, v.size()), v);
            for (int i = 0; i < spans.size(); i++)
                assertTrue(spans.getJsonObject(i).getInt("end") > spans.getJsonObject(i).getInt("start"), spans.toString());
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
            if (spans.size() == 3) threeSpans++;
        }
        assertTrue(threeSpans > 0, "No request spanned both updates -- multi-event accumulation was not exercised.");
    }

    @Test
    void test_10_abort_before_first_token_reports_empty_span() throws Exception {
        String version = Sglang.currentVersion();
        List<LiveStream> streams = launch(8, LONG);
        awaitDecoding(streams);
        pause("retract");
        try {
            streams.addAll(launch(8, LONG));  // these queue behind the pause: aborted before any token
            awaitQueued(16);
            abortAll();
        } finally {
            continueGeneration();
        }
        List<JsonObject> emptyAborts = new ArrayList<>();
        for (JsonObject data : results(streams)) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            if (metaInfo.getJsonObject("finish_reason").getString("type").equals("abort") && metaInfo.getInt("completion_tokens") == 0)
                emptyAborts.add(metaInfo);
        }
        assertFalse(emptyAborts.isEmpty());
        for (JsonObject metaInfo : emptyAborts) {
            assertEquals(arr(obj("version", version, "start", 0, "end", 0)), metaInfo.getJsonArray("weight_versions"));
            assertEquals(version, metaInfo.getString("weight_version"));
        }
    }

    @Test
    void test_11_streaming_reports_spans_only_on_the_final_chunk() {
        int maxNewTokens = 32;
        List<JsonObject> chunks = Sglang.stream("/generate", obj("text", "The capital of France is",
                "sampling_params", obj("temperature", 0.8, "max_new_tokens", maxNewTokens, "ignore_eos", true), "stream", true));
        String version = Sglang.currentVersion();
        assertTrue(chunks.size() > 1);
        for (JsonObject chunk : chunks.subList(0, chunks.size() - 1)) {
            assertFalse(chunk.getJsonObject("meta_info").containsKey("weight_versions"));
            assertEquals(version, chunk.getJsonObject("meta_info").getString("weight_version"));
        }
        JsonObject metaInfo = chunks.get(chunks.size() - 1).getJsonObject("meta_info");
        JsonArray spans = assertSpansContiguous(metaInfo);
        assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
        assertEquals(maxNewTokens, spans.getJsonObject(spans.size() - 1).getInt("end"));
    }

    @Test
    void test_12_completions_endpoint_reports_metadata() {
        JsonObject data = Sglang.ok("/v1/completions", obj("model", model, "prompt", "The capital of France is", "max_tokens", 8,
                "temperature", 0.0)).object();
        JsonObject metadata = data.getJsonObject("metadata");
        assertEquals(Sglang.currentVersion(), metadata.getString("weight_version"));
        JsonArray spans = metadata.getJsonArray("weight_versions");
        assertEquals(1, spans.size());
        assertEquals(metadata.getString("weight_version"), spans.getJsonObject(0).getString("version"));
        assertEquals(0, spans.getJsonObject(0).getInt("start"));
        assertEquals(data.getJsonObject("usage").getInt("completion_tokens"), spans.getJsonObject(0).getInt("end"));
    }

    @Test
    void test_13_new_requests_after_the_endpoint_returns_see_the_new_version() throws Exception {
        setWeightVersion("dp-v1");
        assertEquals("dp-v1", Sglang.currentVersion());
        List<CompletableFuture<JsonObject>> f = new ArrayList<>();
        for (int i = 0; i < 8; i++) f.add(CompletableFuture.supplyAsync(() -> generate(8), pool));
        for (JsonObject data : joined(f)) {
            JsonArray spans = assertSpansContiguous(data.getJsonObject("meta_info"));
            assertEquals(1, spans.size());
            assertEquals("dp-v1", spans.getJsonObject(0).getString("version"));
        }
    }

    @Test
    void test_14_all_inflight_requests_are_swept() throws Exception {
        String previous = Sglang.currentVersion();
        List<LiveStream> streams = launch(8, LONG);
        awaitDecoding(streams);
        setWeightVersion("dp-v2");
        int split = 0;
        for (JsonObject data : results(streams)) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            JsonArray spans = assertSpansContiguous(metaInfo);
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
            assertEquals(previous, spans.getJsonObject(0).getString("version"));
            if (spans.size() > 1) {
                split++;
                assertEquals(List.of(previous, "dp-v2"), versions(spans));
                assertTrue(spans.getJsonObject(0).getInt("end") > 0);
            }
        }
        assertTrue(split > 1, "At most one in-flight request was split -- the version sweep missed requests.");
    }

    @Test
    void test_15_single_span_covers_all_accepted_tokens() {
        JsonObject metaInfo = generate(32).getJsonObject("meta_info");
        JsonArray spans = assertSpansContiguous(metaInfo);
        assertEquals(1, spans.size());
        assertEquals(Sglang.currentVersion(), spans.getJsonObject(0).getString("version"));
        assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(0).getInt("end"));
    }

    @Test
    void test_16_retract_update_continue_keeps_exact_boundaries() throws Exception {
        String previous = Sglang.currentVersion();
        List<JsonObject> results = runWhilePaused(4, () -> setWeightVersion("spec-v1"), "retract", LONG);
        int split = 0;
        for (JsonObject data : results) {
            JsonObject metaInfo = data.getJsonObject("meta_info");
            JsonArray spans = assertSpansContiguous(metaInfo);
            assertEquals(metaInfo.getInt("completion_tokens"), spans.getJsonObject(spans.size() - 1).getInt("end"));
            assertEquals(previous, spans.getJsonObject(0).getString("version"));
            if (spans.size() > 1) {
                split++;
                assertEquals(List.of(previous, "spec-v1"), versions(spans));
                assertTrue(spans.getJsonObject(0).getInt("end") > 0);
            }
        }
        assertTrue(split > 0, "No request spanned the update -- the retract boundary was not recorded.");
    }
}
