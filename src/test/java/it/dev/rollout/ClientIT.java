package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.DrainResult;
import dev.rollout.client.Generation;
import dev.rollout.client.PushResult;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.RolloutClientException;
import dev.rollout.client.RolloutRouter;
import dev.rollout.client.Sampling;
import dev.rollout.client.WeightBuckets;
import dev.rollout.model.Safetensors;
import dev.rollout.safetensors.SafetensorsWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The Java client (dev.rollout.client) against the real server: generation, pushes, versions, refusals. */
class ClientIT {
    static RolloutClient client;
    static String versionBefore;
    static String pathBefore;

    @BeforeAll
    static void connect() {
        client = RolloutClient.connect(URI.create(Http.BASE), RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY));
        client.awaitReady(Duration.ofSeconds(60));
        versionBefore = client.weightVersion();
        pathBefore = Http.get("/get_model_info").object().getString("model_path");  // it follows update_weights_from_disk
    }

    @AfterAll
    static void restore() {
        // the other ITs share this server: its own weights and version back
        client.updateWeightsFromDisk(pathBefore, versionBefore);
    }

    @Test
    void generatesWithLogprobsStampedWithTheServedVersion() throws Exception {
        Generation g = client.generate(Checkpoints.PROMPT, Sampling.greedy(8));
        assertEquals(8, g.outputIds().length);
        assertEquals(8, g.outputLogprobs().length);
        for (float lp : g.outputLogprobs()) assertTrue(lp <= 0 && Float.isFinite(lp), "a logprob, not " + lp);
        assertEquals("length", g.finishReason());
        assertEquals(client.weightVersion(), g.weightVersion());
        assertEquals(Checkpoints.PROMPT.length, g.promptTokens());

        List<CompletableFuture<Generation>> inFlight = new ArrayList<>();
        for (int i = 0; i < 4; i++) inFlight.add(client.generateAsync(Checkpoints.PROMPT, Sampling.greedy(8)));
        for (CompletableFuture<Generation> f : inFlight) assertArrayEquals(g.outputIds(), f.get().outputIds());

        int[] ids = client.tokenize("Hello, world");
        assertArrayEquals(new int[] {9707, 11, 1879}, ids);
        assertEquals("Hello, world", client.detokenize(ids, false));
    }

    @Test
    void streamsSnapshotsThatEndInTheBlockingAnswer() {
        int[] blocking = client.generate(Checkpoints.PROMPT, Sampling.greedy(6)).outputIds();
        List<Integer> sizes = new ArrayList<>();
        Generation last = client.stream(Checkpoints.PROMPT, Sampling.greedy(6), g -> sizes.add(g.outputIds().length));
        assertEquals(List.of(1, 2, 3, 4, 5, 6), sizes, "a snapshot per token, everything so far");
        assertArrayEquals(blocking, last.outputIds());
        assertEquals("length", last.finishReason());
    }

    @Test
    void pausesReleasesAndResumesTheServer() {
        assertEquals(0, client.pauseGeneration("in_place"));
        assertEquals("paused", client.rlState());
        client.continueGeneration();
        assertEquals("serving", client.rlState());

        Map<String, Long> freed = client.releaseMemory("kv_cache");
        assertTrue(freed.get("kv_cache") > 0, "the KV cache's bytes, not " + freed);
        assertEquals("released", client.rlState());
        assertEquals(false, client.resumeMemory("kv_cache"), "the weights stayed: nothing to push");
        client.flushCache();
        client.abortAll();
        assertEquals(8, client.generate(Checkpoints.PROMPT, Sampling.greedy(8)).outputIds().length);
    }

    @Test
    void pushedWeightsServeUnderTheirVersionOneFileOrAnAtomicSessionOfBuckets() throws Exception {
        Path one = Checkpoints.other(31);
        PushResult r = client.pushWeights(Files.readAllBytes(one.resolve("model.safetensors")), "client-1");
        assertEquals("client-1", r.weightVersion());
        assertEquals("client-1", client.weightVersion());
        assertArrayEquals(Checkpoints.greedy(Checkpoints.engine(one), 12), client.generate(Checkpoints.PROMPT, Sampling.greedy(12)).outputIds(),
                "greedy output is the reference's for the pushed weights");

        Path two = Checkpoints.other(32);
        List<String> names = new ArrayList<>(Safetensors.readHeader(two.resolve("model.safetensors")).keySet());
        int half = names.size() / 2;
        r = client.pushWeights(List.of(Checkpoints.subset(two, names.subList(0, half)),
                Checkpoints.subset(two, names.subList(half, names.size()))), "client-2");
        assertEquals("client-2", r.weightVersion());
        Generation g = client.generate(Checkpoints.PROMPT, Sampling.greedy(12));
        assertEquals("client-2", g.weightVersion());
        assertArrayEquals(Checkpoints.greedy(Checkpoints.engine(two), 12), g.outputIds());
    }

    @Test
    void drainsWhatRunsRetractingTheRestUntilGenerationContinues() throws Exception {
        Sampling longRun = new Sampling(600, 0, 1, -1, null, true);
        CompletableFuture<Generation> running = client.generateAsync(Checkpoints.PROMPT, longRun);
        RlControlIT.awaitState("in_flight", 1);
        DrainResult watched = client.drain(Duration.ofMillis(100));
        assertEquals("wait", watched.mode());
        assertFalse(watched.success(), "SGLang's drain: the long request still runs at the deadline");
        assertEquals(1, watched.remainingRequests());
        assertFalse(watched.paused());
        assertEquals("serving", client.rlState(), "and it is left running");
        DrainResult d = client.drain(Duration.ofMillis(300), "retract");
        assertEquals("retract", d.mode());
        assertTrue(d.paused());
        assertFalse(d.success());
        assertEquals(1, d.remainingRequests(), "retracted, it waits for continue_generation");
        assertEquals(1, d.cut().size(), "the long request is cut: " + d.cut().keySet());
        assertTrue(d.cut().values().iterator().next().length > 0, "with what it had generated");
        assertEquals("paused", client.rlState());
        Thread.sleep(200);
        assertTrue(!running.isDone(), "a retracted request waits, it is not ended");
        client.continueGeneration();
        Generation g = running.get(120, java.util.concurrent.TimeUnit.SECONDS);
        assertEquals(600, g.outputIds().length, "requeued, then finished in full");
        assertEquals("serving", client.rlState());
    }

    @Test
    void pushesNamedTensorsInBucketsOfAGivenSize() throws Exception {
        Path three = Checkpoints.other(33);
        Map<String, SafetensorsWriter.Tensor> tensors = new LinkedHashMap<>();
        for (var e : Safetensors.readHeader(three.resolve("model.safetensors")).entrySet())
            tensors.put(e.getKey(), new SafetensorsWriter.Tensor(e.getValue().dtype(), e.getValue().shape(), Safetensors.map(e.getValue())));
        long bucketBytes = 64 << 10;
        int buckets = WeightBuckets.of(tensors, bucketBytes).size();
        assertTrue(buckets > 2, "the model in several buckets, not " + buckets);
        PushResult r = client.pushTensors(tensors, bucketBytes, "client-3");
        assertEquals("client-3", r.weightVersion());
        assertEquals(tensors.size(), r.numTensors(), "every tensor, once");
        Generation g = client.generate(Checkpoints.PROMPT, Sampling.greedy(12));
        assertEquals("client-3", g.weightVersion());
        assertArrayEquals(Checkpoints.greedy(Checkpoints.engine(three), 12), g.outputIds(), "the pushed weights generate");
        // one tensor alone: a plain update, no session
        String norm = "model.norm.weight";
        r = client.pushTensors(Map.of(norm, tensors.get(norm)), bucketBytes, "client-4");
        assertEquals(1, r.numTensors());
        assertEquals("client-4", client.weightVersion());
    }

    @Test
    void aRouterSpreadsRequestsKeepsAGroupTogetherAndPushesToEveryServer() throws Exception {
        // two handles on the one test server stand for two replicas: what is checked is the routing
        RolloutClient.Options admin = RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY);
        RolloutRouter router = new RolloutRouter(List.of(RolloutClient.connect(URI.create(Http.BASE), admin),
                RolloutClient.connect(URI.create(Http.BASE), admin)));
        router.awaitReady(Duration.ofSeconds(30));
        List<CompletableFuture<Generation>> calls = new ArrayList<>();
        for (int i = 0; i < 8; i++) calls.add(router.generateAsync(null, Checkpoints.PROMPT, Sampling.greedy(16)));
        assertTrue(router.dispatched(0) >= 3 && router.dispatched(1) >= 3,
                "8 calls at once spread by outstanding requests: " + router.dispatched(0) + " and " + router.dispatched(1));

        long[] before = {router.dispatched(0), router.dispatched(1)};
        for (int i = 0; i < 3; i++) calls.add(router.generateAsync("group-7", Checkpoints.PROMPT, Sampling.greedy(4)));
        long d0 = router.dispatched(0) - before[0], d1 = router.dispatched(1) - before[1];
        assertTrue((d0 == 3 && d1 == 0) || (d0 == 0 && d1 == 3), "a group stays on one server: " + d0 + " and " + d1);
        for (CompletableFuture<Generation> c : calls) c.get();
        assertEquals(0, router.outstanding(0) + router.outstanding(1), "finished calls are not outstanding");

        Path weights = Checkpoints.other(34);
        // one file each (two atomic sessions at once would be two on the one test server, which refuses the second)
        List<PushResult> pushed = router.pushWeights(Files.readAllBytes(weights.resolve("model.safetensors")), "router-1");
        assertEquals(List.of("router-1", "router-1"), pushed.stream().map(PushResult::weightVersion).toList());
        assertEquals("router-1", client.weightVersion());

        String norm = "model.norm.weight";
        Safetensors.Entry e = Safetensors.readHeader(weights.resolve("model.safetensors")).get(norm);
        pushed = router.pushTensors(Map.of(norm, new SafetensorsWriter.Tensor(e.dtype(), e.shape(), Safetensors.map(e))), 1 << 20, "router-2");
        assertEquals(List.of("router-2", "router-2"), pushed.stream().map(PushResult::weightVersion).toList());
        assertEquals("router-2", client.weightVersion());
    }

    @Test
    void aRouterFailsOverFromAServerThatDoesNotAnswerAndMovesItsGroups() throws Exception {
        URI dead = URI.create("http://localhost:" + ServerProcessIT.freePort());  // nothing listens there
        RolloutRouter router = new RolloutRouter(List.of(RolloutClient.connect(dead), RolloutClient.connect(URI.create(Http.BASE))),
                Duration.ofMinutes(5));
        Generation first = router.generateAsync("group-9", Checkpoints.PROMPT, Sampling.greedy(4)).get();
        for (int i = 0; i < 5; i++) {
            Generation g = router.generateAsync(i % 2 == 0 ? "group-9" : null, Checkpoints.PROMPT, Sampling.greedy(4)).get();
            assertArrayEquals(first.outputIds(), g.outputIds());
        }
        assertTrue(router.dispatched(0) <= 1, "the dead server is tried at most once, then left out: " + router.dispatched(0));
        assertEquals(6, router.dispatched(1), "every generation is served by the live one");
        assertTrue(!router.available(0) && router.available(1));
    }

    @Test
    void refusalsNameTheServerTheCallAndTheCauseAndLeaveTheWeightsAlone() throws Exception {
        String before = client.weightVersion();
        Path other = Checkpoints.other(33);
        byte[] unknown = Checkpoints.renamed(other, Map.of("model.norm.weight", "model.no_such_norm.weight"));
        RolloutClientException e = assertThrows(RolloutClientException.class, () -> client.pushWeights(unknown, "client-bad"));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains(Http.BASE) && e.getMessage().contains("update_weights_from_tensor")
                && e.getMessage().contains("model.no_such_norm.weight"), e.getMessage());

        // a session whose second bucket is refused is rolled back: the first bucket never serves
        byte[] good = Checkpoints.subset(other, List.of("model.norm.weight"));
        assertThrows(RolloutClientException.class, () -> client.pushWeights(List.of(good, unknown), "client-bad"));
        assertEquals(before, client.weightVersion());

        RolloutClient nobody = RolloutClient.connect(URI.create("http://localhost:1"));
        RolloutClientException down = assertThrows(RolloutClientException.class, () -> nobody.awaitReady(Duration.ofMillis(300)));
        assertTrue(down.getMessage().contains("http://localhost:1") && down.getMessage().contains("not ready"), down.getMessage());
    }
}
