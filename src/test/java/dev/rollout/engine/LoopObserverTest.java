package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.CausalLm;
import dev.rollout.model.DecodeAttention;
import dev.rollout.model.Kernels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * In a loop, the engine's metrics hooks run on the output relay's thread (issue #20, R6: recording
 * them was half of a streaming step's host work on the engine thread), and a request's are all
 * made before its final snapshot reaches it: a client that has its answer finds it counted.
 */
class LoopObserverTest {
    private static final int[] PROMPT = {5, 17, 99, 3, 250, 7};

    /** Counts the hooks' calls and the threads they come on; thread-safe, as the metrics are. */
    private static final class Recording implements EngineObserver {
        final AtomicInteger steps = new AtomicInteger(), latencies = new AtomicInteger(), sampled = new AtomicInteger();
        final Set<String> finished = ConcurrentHashMap.newKeySet();
        final Set<String> threads = ConcurrentHashMap.newKeySet();

        @Override
        public void onStep(int sequences, int tokens, int sampledTokens, double modelSeconds, double hostSeconds) {
            threads.add(Thread.currentThread().getName());
            sampled.addAndGet(sampledTokens);
            steps.incrementAndGet();
        }

        @Override
        public void onInterTokenLatency(double seconds) {
            threads.add(Thread.currentThread().getName());
            latencies.incrementAndGet();
        }

        @Override
        public void onFinished(SequenceOutput output) {
            threads.add(Thread.currentThread().getName());
            finished.add(output.rid());
        }
    }

    /** What the hooks had recorded when a request's final snapshot arrived. */
    private record AtTheEnd(SequenceOutput output, boolean counted, int latencies, int sampled) {}

    @Test
    void hooksRunOnTheRelayAndARequestIsCountedBeforeItsAnswer() throws Exception {
        Recording rec = new Recording();
        CausalLm lm = CausalLm.load(Path.of("src/test/resources/fixtures/qwen3"), ScalarType.Float,
                new Device(EngineHarness.DEVICE), Kernels.libtorch(DecodeAttention.GATHER));
        LlmEngine engine = new LlmEngine(lm, EngineHarness.smallConfig(), null, rec);
        int n = 4, tokens = 12;
        List<CompletableFuture<AtTheEnd>> ends = new ArrayList<>();
        List<List<SequenceOutput>> streamed = new ArrayList<>();
        try (EngineLoop loop = new EngineLoop(engine, false, Executors.defaultThreadFactory())) {
            List<Sequence> seqs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                CompletableFuture<AtTheEnd> end = new CompletableFuture<>();
                List<SequenceOutput> mine = Collections.synchronizedList(new ArrayList<>());
                ends.add(end);
                streamed.add(mine);
                String rid = "r" + i;
                seqs.add(new Sequence(rid, 0, PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(tokens).ignoreEos(true).build(),
                        LogprobOptions.NONE, null, loop.relaying(o -> {
                            if (o.finished()) end.complete(new AtTheEnd(o, rec.finished.contains(rid), rec.latencies.get(), rec.sampled.get()));
                            else mine.add(o);
                        }), true, i));
            }
            loop.submit(new EngineCommand.Generate(seqs)).get(30, TimeUnit.SECONDS);
            for (CompletableFuture<AtTheEnd> f : ends) {
                AtTheEnd e = f.get(60, TimeUnit.SECONDS);
                assertEquals(tokens, e.output().completionTokens());
                assertTrue(e.counted(), "the request's end was not recorded before its answer was delivered");
                // every token of the request was sampled in a step whose hooks ran before this delivery
                assertTrue(e.sampled() >= tokens, "sampled tokens recorded: " + e.sampled());
            }
        }
        assertEquals(n * (tokens - 1), rec.latencies.get(), "one inter-token latency per token after the first");
        assertEquals(n * tokens, rec.sampled.get());
        assertEquals(Set.of("rollout-output-relay"), rec.threads, "the hooks ran on " + rec.threads);
        assertNotEquals(0, rec.steps.get());
        for (List<SequenceOutput> mine : streamed) {
            assertEquals(tokens - 1, mine.size(), "one snapshot per token before the last");
            double last = 0;
            for (int k = 0; k < mine.size(); k++) {
                SequenceOutput o = mine.get(k);
                assertEquals(k + 1, o.completionTokens());
                assertEquals(List.of(new SequenceOutput.VersionSpan("default", 0, k + 1)), o.weightVersions());
                assertTrue(o.e2eLatency() > 0 && o.e2eLatency() >= last, "latencies go forward: " + o.e2eLatency());
                assertTrue(o.timeToFirstToken() <= o.e2eLatency());
                last = o.e2eLatency();
            }
        }
    }
}
