package dev.rollout.metrics;

import dev.rollout.engine.EngineObserver;
import dev.rollout.engine.FinishReason;
import dev.rollout.engine.EngineStats;
import dev.rollout.engine.SequenceOutput;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.function.ToDoubleFunction;
import org.bytedeco.javacpp.Pointer;
import org.eclipse.microprofile.metrics.Counter;
import org.eclipse.microprofile.metrics.Histogram;
import org.eclipse.microprofile.metrics.Metadata;
import org.eclipse.microprofile.metrics.MetricRegistry;
import org.eclipse.microprofile.metrics.MetricUnits;
import org.eclipse.microprofile.metrics.Timer;

/**
 * Engine metrics for Prometheus, named after SGLang's ({@code sglang:*}) so that existing
 * dashboards and veRL's scraper work, plus a few of ours ({@code rollout:*}). Fed through {@link
 * EngineObserver}, a step's calls on the loop's output relay thread (before the step's snapshots
 * reach their requests); the gauges read the loop's latest stats.
 */
@ApplicationScoped
public class EngineMetrics implements EngineObserver {
    @Inject
    MetricRegistry registry;

    private volatile Supplier<EngineStats> stats = () -> null;
    private Counter promptTokens, generationTokens, cachedTokens, requests, aborted, stepTokens, sampledTokens;
    private Timer ttft, itl, e2e, stepModel, stepHost;
    private Histogram batchSize;
    private final AtomicInteger maxBatch = new AtomicInteger();

    @PostConstruct
    void register() {
        promptTokens = counter("sglang:prompt_tokens", "Prompt tokens processed");
        generationTokens = counter("sglang:generation_tokens", "Tokens generated");
        cachedTokens = counter("sglang:cached_tokens", "Prompt tokens served from the prefix cache");
        requests = counter("sglang:num_requests", "Sequences finished (each sample of n counts)");
        aborted = counter("sglang:num_aborted_requests", "Sequences aborted");
        // counted as the steps run (sglang:generation_tokens counts when a sequence finishes): live throughput
        stepTokens = counter("rollout:step_tokens", "Tokens the model computed, prompt chunks and decode positions");
        sampledTokens = counter("rollout:sampled_tokens", "Tokens generated, one per sequence and step that sampled");
        // timers are exported in seconds with the _seconds suffix, giving SGLang's names
        ttft = timer("sglang:time_to_first_token", "Time to first token");
        itl = timer("sglang:inter_token_latency", "Time between two tokens of a sequence");
        e2e = timer("sglang:e2e_request_latency", "Arrival to last token");
        stepModel = timer("rollout:step_model", "Engine step: inputs, forward, sampling, tokens back on the host");
        stepHost = timer("rollout:step_host", "Engine step: applying the sampled tokens (stops, snapshots, listeners)");
        batchSize = histogram("rollout:step_batch_size", MetricUnits.NONE, "Sequences in one engine step");
        gauge("sglang:num_running_reqs", "Sequences running", s -> s.numRunning());
        gauge("sglang:num_queue_reqs", "Sequences waiting", s -> s.numWaiting());
        gauge("sglang:token_usage", "Fraction of KV-cache blocks in use", EngineStats::tokenUsage);
        gauge("rollout:num_preemptions", "Sequences preempted for KV space (total)", s -> s.numPreemptions());
        registry.gauge(Metadata.builder().withName("sglang:cache_hit_rate").withDescription("Cached / prompt tokens").build(),
                this, EngineMetrics::cacheHitRate);
        registry.gauge(Metadata.builder().withName("rollout:max_step_batch_size")
                .withDescription("Most sequences seen in one engine step").build(), maxBatch, AtomicInteger::get);
        // the JVM's own metrics see only its heap; libtorch, CUDA and the tokenizer allocate outside it
        registry.gauge(Metadata.builder().withName("rollout:resident").withUnit(MetricUnits.BYTES)
                .withDescription("Resident memory of the whole process (heap, native, mapped)").build(), Pointer::physicalBytes);
    }

    /** Tokens computed and tokens generated so far, for throughput over time (the status page). */
    public long stepTokens() {
        return stepTokens.getCount();
    }

    public long sampledTokens() {
        return sampledTokens.getCount();
    }

    /** Prefix-cache hits over prompt tokens of finished sequences, 0 before any. */
    public double cacheHitRate() {
        return promptTokens.getCount() == 0 ? 0.0 : (double) cachedTokens.getCount() / promptTokens.getCount();
    }

    /** The running engine's latest stats, or null before it runs. */
    public EngineStats stats() {
        return stats.get();
    }

    /**
     * This bean itself, not the CDI client proxy that injection gives: the engine's hooks run a
     * few hundred times a step (an inter-token latency per streamed token), and each call through
     * the proxy looks the instance up again (a third of those calls' time in a profile of the
     * server, docs/benchmarks-log.md of 2026-12-07). Called through the proxy, it returns the
     * instance behind it; the bean is application-scoped, so that instance lives as long as the
     * engine.
     */
    public EngineObserver observer() {
        return this;
    }

    /** Points the gauges at a running engine. */
    public void attach(Supplier<EngineStats> source) {
        stats = source;
    }

    @Override
    public void onStep(int numSequences, int numTokens, int sampled, double modelSeconds, double hostSeconds) {
        if (numTokens > 0) stepTokens.inc(numTokens);
        if (sampled > 0) sampledTokens.inc(sampled);   // a step of prompt chunks only samples nothing
        stepModel.update(Duration.ofNanos(seconds2nanos(modelSeconds)));
        stepHost.update(Duration.ofNanos(seconds2nanos(hostSeconds)));
        batchSize.update(numSequences);
        maxBatch.accumulateAndGet(numSequences, Math::max);
    }

    @Override
    public void onInterTokenLatency(double seconds) {
        itl.update(Duration.ofNanos(seconds2nanos(seconds)));
    }

    @Override
    public void onFinished(SequenceOutput out) {
        promptTokens.inc(out.promptTokens());
        generationTokens.inc(out.completionTokens());
        cachedTokens.inc(out.cachedTokens());
        requests.inc();
        if (out.finishReason().type() == FinishReason.Type.ABORT) aborted.inc();
        if (!Double.isNaN(out.timeToFirstToken())) ttft.update(Duration.ofNanos(seconds2nanos(out.timeToFirstToken())));
        e2e.update(Duration.ofNanos(seconds2nanos(out.e2eLatency())));
    }

    private static long seconds2nanos(double s) {
        return (long) (s * 1e9);
    }

    private Counter counter(String name, String description) {
        return registry.counter(Metadata.builder().withName(name).withDescription(description).build());
    }

    private Timer timer(String name, String description) {
        return registry.timer(Metadata.builder().withName(name).withDescription(description).build());
    }

    private Histogram histogram(String name, String unit, String description) {
        return registry.histogram(Metadata.builder().withName(name).withDescription(description).withUnit(unit).build());
    }

    private void gauge(String name, String description, ToDoubleFunction<EngineStats> f) {
        registry.gauge(Metadata.builder().withName(name).withDescription(description).build(), this,
                m -> {
                    EngineStats s = m.stats.get();
                    return s == null ? 0.0 : f.applyAsDouble(s);
                });
    }
}
