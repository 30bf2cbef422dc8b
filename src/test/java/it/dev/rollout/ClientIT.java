package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.Generation;
import dev.rollout.client.PushResult;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.RolloutClientException;
import dev.rollout.client.Sampling;
import dev.rollout.model.Safetensors;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
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

    @BeforeAll
    static void connect() {
        client = RolloutClient.connect(URI.create(Http.BASE), RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY));
        client.awaitReady(Duration.ofSeconds(60));
        versionBefore = client.weightVersion();
    }

    @AfterAll
    static void restore() {
        // the other ITs share this server: its own weights and version back
        client.updateWeightsFromDisk(Http.get("/get_model_info").object().getString("model_path"), versionBefore);
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
