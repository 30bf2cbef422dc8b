package dev.rollout.runtime;

import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineConfig;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.RlState;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.SessionLimits;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.metrics.EngineMetrics;
import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.ModelConfig;
import dev.rollout.model.RolloutCuda;
import dev.rollout.model.Torch;
import dev.rollout.chat.ChatTemplates;
import dev.rollout.tokenizer.HfTokenizer;
import dev.rollout.weights.WeightUpdates;
import jakarta.annotation.PreDestroy;
import jakarta.annotation.Resource;
import jakarta.enterprise.concurrent.ManagedThreadFactory;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.enterprise.event.Startup;
import jakarta.inject.Inject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.eclipse.microprofile.config.Config;

/**
 * Owns the engine for the lifetime of the application: loads the model on a managed thread at
 * start-up, runs a warm-up generation, then serves. HTTP resources only enqueue work here.
 */
@ApplicationScoped
public class EngineService {
    private static final Logger LOG = Logger.getLogger(EngineService.class.getName());
    /** The spread of dummy weights: transformers' usual initializer_range. */
    private static final double DUMMY_STD = 0.02;

    public enum Phase { LOADING, WARMING_UP, READY, FAILED, STOPPED }

    @Inject
    Config config;

    @Inject
    EngineMetrics metrics;

    @Resource(lookup = "java:comp/DefaultManagedThreadFactory")
    ManagedThreadFactory threads;

    private volatile Phase phase = Phase.LOADING;
    private volatile String failure;
    private volatile ServerSettings settings;
    private volatile EngineLoop loop;
    private volatile HfTokenizer tokenizer;
    private volatile ChatTemplates chatTemplates;
    private volatile Path modelDir;
    private volatile WeightUpdates weights;

    void onStart(@Observes Startup event) {
        settings();
        Thread t = threads.newThread(this::load);
        t.setName("rollout-model-loader");
        t.start();
    }

    private void load() {
        try {
            ServerSettings s = settings();
            long t0 = System.nanoTime();
            modelDir = s.modelPath().isBlank() ? DefaultModel.materialize(Path.of(s.cacheDir())) : Path.of(s.modelPath());
            if (s.torchThreads() > 0) torch.set_num_threads(s.torchThreads());
            Device device = new Device(s.engine().device());
            ScalarType dtype = dtype(s.engine(), device);
            if (device.is_cuda())
                LOG.info(() -> RolloutCuda.available() ? "native preset loaded (libjniRolloutCuda)"
                        : "native preset not loaded, going on without it: " + RolloutCuda.whyUnavailable());
            // our kernels, chosen once for the model and the engine over it; the log says why any asked for is not used
            Kernels kernels = Kernels.resolve(Kernels.Wanted.of(s.nativeKernels(), s.cudaGraphs(), s.fp32LmHead()),
                    ModelConfig.read(modelDir), dtype, device);
            LOG.info(() -> "kernels: " + kernels.describe());
            CausalLm model = switch (s.loadFormat()) {
                case "auto" -> CausalLm.load(modelDir, dtype, device, kernels);
                case "dummy" -> {
                    LOG.warning("rollout.load-format=dummy: serving random weights, not " + modelDir + "'s");
                    yield CausalLm.random(modelDir, dtype, device, s.dummySeed(), DUMMY_STD, kernels);
                }
                default -> throw new IllegalArgumentException("rollout.load-format must be auto or dummy, not " + s.loadFormat());
            };
            Path tok = modelDir.resolve("tokenizer.json");
            tokenizer = Files.exists(tok) ? HfTokenizer.load(tok) : null;
            chatTemplates = ChatTemplates.load(modelDir);
            LlmEngine engine = new LlmEngine(model, s.engine(), tokenizer, metrics);
            engine.limitSessions(sessionLimits((long) engine.numKvBlocks() * s.engine().blockSize()));
            engine.setTimeouts(s.timeouts());
            engine.setPauseTimeout(s.pauseTimeoutSeconds());
            loop = new EngineLoop(engine, s.weightsHostBackup(), threads);
            weights = new WeightUpdates(loop, new WeightUpdates.Settings(seconds(s.weightUpdateWaitSeconds()),
                    seconds(s.weightSessionTimeoutSeconds()), s.allowPickle(), s.engine().device(), seconds(s.weightGroupTimeoutSeconds())));
            metrics.attach(loop::stats);
            LOG.info(() -> String.format("loaded %s (%s, %s on %s, %.1f MB of weights; KV cache of %d tokens) in %.1f s",
                    modelDir, model.config().architecture(), Torch.name(model.dtype()), s.engine().device(), model.weightBytes() / 1e6,
                    (long) engine.numKvBlocks() * s.engine().blockSize(), (System.nanoTime() - t0) / 1e9));
            phase = Phase.WARMING_UP;
            long warm = System.nanoTime();
            warmUp();
            phase = Phase.READY;
            // the one line an operator looks for
            LOG.info(() -> String.format("ready: %s, %.1f M parameters, %s on %s, KV cache of %d tokens, %.1f s to ready "
                            + "(warm-up %.1f s)", model.config().architecture(), model.parameterCount() / 1e6, Torch.name(model.dtype()),
                    s.engine().device(), (long) engine.numKvBlocks() * s.engine().blockSize(), (System.nanoTime() - t0) / 1e9,
                    (System.nanoTime() - warm) / 1e9));
        } catch (Throwable t) {
            failure = t.toString();
            phase = Phase.FAILED;
            LOG.log(Level.SEVERE, "the engine failed to start", t);
        }
    }

    /** What sessions may hold (rollout.sessions.*); pinned tokens 0 = half the KV cache. */
    private SessionLimits sessionLimits(long kvTokens) {
        long pinned = config.getOptionalValue("rollout.sessions.max-pinned-tokens", Long.class).orElse(0L);
        return new SessionLimits(config.getOptionalValue("rollout.sessions.max-open", Integer.class).orElse(1024),
                pinned > 0 ? Math.min(pinned, kvTokens) : kvTokens / 2,
                config.getOptionalValue("rollout.sessions.max-requests", Integer.class).orElse(4096));
    }

    /** One short greedy generation through the whole path, as SGLang's warm-up does. */
    private void warmUp() throws Exception {
        CompletableFuture<SequenceOutput> done = new CompletableFuture<>();
        int[] prompt = tokenizer != null ? tokenizer.encode("The capital city of France is") : new int[] {10, 11, 12};
        Sequence s = new Sequence("warmup", 0, prompt, SamplingParams.builder().temperature(0).maxNewTokens(8).build(),
                LogprobOptions.NONE, tokenizer, out -> { if (out.finished()) done.complete(out); }, false, 0).withoutMetrics();
        loop.submit(new EngineCommand.Generate(List.of(s)));
        SequenceOutput out = done.get(120, TimeUnit.SECONDS);
        LOG.info(() -> "warm-up generated " + out.completionTokens() + " tokens in " + out.e2eLatency() + " s");
    }

    private static Duration seconds(double s) {
        return Duration.ofMillis((long) (s * 1000));
    }

    private static ScalarType dtype(EngineConfig c, Device device) {
        return switch (c.dtype()) {
            case "float32" -> ScalarType.Float;
            case "bfloat16" -> ScalarType.BFloat16;
            case "float16" -> ScalarType.Half;
            case "auto" -> device.is_cpu() ? ScalarType.Float : ScalarType.BFloat16;
            default -> throw new IllegalArgumentException("rollout.dtype must be auto, float32, bfloat16 or float16");
        };
    }

    @PreDestroy
    void stop() {
        phase = Phase.STOPPED;
        WeightUpdates w = weights;
        if (w != null) w.close();  // leaves the weight-update groups before the engine goes
        EngineLoop l = loop;
        if (l != null) l.close();
    }

    public Phase phase() {
        return phase;
    }

    /** Start-up is over: the model is loaded and warmed up (the engine may still be paused or released). */
    public boolean started() {
        return phase == Phase.READY;
    }

    /**
     * Ready for generation: started, with the weights and the KV cache in place. A paused engine
     * queues new requests, and so does one whose weight update waits for running requests (for
     * at most rollout.weight-update-wait-seconds): both answer them afterwards, so both stay
     * ready; taking the pod out of its Service for every weight push would only churn endpoints.
     */
    public boolean ready() {
        EngineLoop l = loop;
        if (phase != Phase.READY || l == null) return false;
        return l.status().state() != RlState.RELEASED && l.status().unpushedParameters() == 0;
    }

    public String failure() {
        return failure;
    }

    public ServerSettings settings() {
        ServerSettings s = settings;
        if (s == null) settings = s = SettingsReader.read(config);  // a request raced the start-up event
        return s;
    }

    /** The loop, or null until the model is loaded. */
    public EngineLoop loop() {
        return loop;
    }

    public HfTokenizer tokenizer() {
        return tokenizer;
    }

    /** The model's chat templates, or null when its tokenizer config has none. */
    public ChatTemplates chatTemplates() {
        return chatTemplates;
    }

    /** The weight path (pushes, update sessions), or null until the model is loaded. */
    public WeightUpdates weights() {
        return weights;
    }

    public Path modelDir() {
        return modelDir;
    }
}
