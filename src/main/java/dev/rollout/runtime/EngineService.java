package dev.rollout.runtime;

import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.dist.C10d;
import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.RlState;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.SessionLimits;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.metrics.EngineMetrics;
import dev.rollout.model.C10dTpGroup;
import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.RolloutCuda;
import dev.rollout.model.Torch;
import dev.rollout.model.TpGroup;
import dev.rollout.ranks.ModelSpec;
import dev.rollout.ranks.RankSettings;
import dev.rollout.ranks.Worker;
import dev.rollout.ranks.WorkerProcesses;
import dev.rollout.chat.ChatTemplates;
import dev.rollout.tokenizer.HfTokenizer;
import dev.rollout.weights.WeightUpdates;
import jakarta.annotation.PreDestroy;
import jakarta.annotation.Resource;
import jakarta.enterprise.concurrent.ManagedThreadFactory;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.context.Initialized;
import jakarta.enterprise.event.Observes;
import jakarta.enterprise.event.Startup;
import jakarta.inject.Inject;
import jakarta.servlet.ServletContext;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.eclipse.microprofile.config.Config;

/**
 * Owns the engine for the lifetime of the application: loads the model on a managed thread at
 * start-up, runs a warm-up generation, then serves. HTTP resources only enqueue work here.
 */
@ApplicationScoped
public class EngineService {
    private static final Logger LOG = Logger.getLogger(EngineService.class.getName());

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
    private volatile Constraints constraints;
    /** One low-priority thread that computes constraints' masks ahead of the engine (Constraints). */
    private ExecutorService maskThread;
    private volatile Path modelDir;
    private volatile WeightUpdates weights;
    private volatile TpGroup tpGroup;              // null at one rank
    private volatile WorkerProcesses workers;      // this node's other ranks; null at one rank

    /** Where the application's classes and jars lie: the workers' class path. Set before the start-up event. */
    private volatile ServletContext servletContext;

    /** The web application's context, which CDI hands over as it starts the application (before {@link Startup}). */
    void onContext(@Observes @Initialized(ApplicationScoped.class) ServletContext context) {
        servletContext = context;
    }

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
            RankSettings ranks = s.ranks();
            if (ranks.nodeRank() != 0)
                throw new IllegalArgumentException("rollout.node-rank is " + ranks.nodeRank() + ": the server runs on node 0; the other nodes "
                        + "run their ranks with dev.rollout.ranks.Worker (docs/operations.md, Tensor parallelism)");
            modelDir = s.modelPath().isBlank() ? DefaultModel.materialize(Path.of(s.cacheDir())) : Path.of(s.modelPath());
            if (s.torchThreads() > 0) torch.set_num_threads(s.torchThreads());
            ModelSpec spec = new ModelSpec(modelDir, s.loadFormat(), s.dummySeed(), s.engine().device(), s.engine().dtype(),
                    s.nativeKernels(), s.cudaGraphs(), s.fp32LmHead(), s.deterministic());
            Device device = spec.device(0);
            if (device.is_cuda())
                LOG.info(() -> RolloutCuda.available() ? "native preset loaded (libjniRolloutCuda)"
                        : "native preset not loaded, going on without it: " + RolloutCuda.whyUnavailable());
            // our kernels, chosen once for the model and the engine over it; the log says why any asked for is not used
            Kernels kernels = spec.kernels(ranks.tpSize(), device);
            LOG.info(() -> "kernels: " + kernels.describe() + (ranks.tpSize() > 1 && s.cudaGraphs() ? " (CUDA graphs are off at tp-size > 1)" : ""));
            if (s.loadFormat().equals("dummy")) LOG.warning("rollout.load-format=dummy: serving random weights, not " + modelDir + "'s");
            CausalLm model = ranks.tpSize() == 1 ? spec.load(TpGroup.SINGLE, device, kernels) : startRanks(s, spec, device, kernels);
            Path tok = modelDir.resolve("tokenizer.json");
            tokenizer = Files.exists(tok) ? HfTokenizer.load(tok) : null;
            chatTemplates = ChatTemplates.load(modelDir);
            maskThread = Executors.newSingleThreadExecutor(r -> {
                Thread t = threads.newThread(r);
                t.setName("rollout-constraint-masks");
                t.setPriority(Thread.MIN_PRIORITY);   // the engine and HTTP threads first
                return t;
            });
            constraints = new Constraints(tokenizer, model.config().vocabSize(), model.config().eosTokenIds(),
                    ConstraintLimits.DEFAULT, maskThread);
            LlmEngine engine = new LlmEngine(model, s.engine(), tokenizer, metrics.observer());
            engine.limitSessions(sessionLimits((long) engine.numKvBlocks() * s.engine().blockSize()));
            engine.setTimeouts(s.timeouts());
            engine.setPauseTimeout(s.pauseTimeoutSeconds());
            if (ranks.tpSize() > 1) watchingWorkers("waiting for the workers to load their shards",
                    () -> engine.announceRanks(ranks.joinTimeout()));
            loop = new EngineLoop(engine, s.weightsHostBackup(), threads);
            // an idle message at least every second, and well within the workers' deadline
            loop.setRankKeepAlive(Duration.ofMillis(Math.min(1000, ranks.stepTimeout().toMillis() / 4)));
            String exited = workers == null ? null : workers.firstExit();
            if (exited != null) loop.loseRank(exited);  // between the announcement and the loop
            weights = new WeightUpdates(loop, new WeightUpdates.Settings(seconds(s.weightUpdateWaitSeconds()),
                    seconds(s.weightSessionTimeoutSeconds()), s.allowPickle(), s.engine().device(), seconds(s.weightGroupTimeoutSeconds())));
            metrics.attach(loop::stats);
            LOG.info(() -> String.format("loaded %s (%s, %s on %s, %.1f MB of weights%s; KV cache of %d tokens) in %.1f s",
                    modelDir, model.config().architecture(), Torch.name(model.dtype()), s.engine().device(), model.weightBytes() / 1e6,
                    ranks.tpSize() > 1 ? " on rank 0 of " + ranks.tpSize() : "",
                    (long) engine.numKvBlocks() * s.engine().blockSize(), (System.nanoTime() - t0) / 1e9));
            phase = Phase.WARMING_UP;
            long warm = System.nanoTime();
            if (ranks.tpSize() == 1 && s.cudaGraphWarmupTokens() > 0) captureGraphs(s.cudaGraphWarmupTokens(), engine.maxModelLen());
            warmUp();
            phase = Phase.READY;
            // the one line an operator looks for
            LOG.info(() -> String.format("ready: %s, %.1f M parameters, %s on %s%s, KV cache of %d tokens, %.1f s to ready "
                            + "(warm-up %.1f s)", model.config().architecture(), loop.info().parameterCount() / 1e6, Torch.name(model.dtype()),
                    s.engine().device(), ranks.tpSize() > 1 ? " in " + ranks.tpSize() + " tensor-parallel ranks" : "",
                    (long) engine.numKvBlocks() * s.engine().blockSize(), (System.nanoTime() - t0) / 1e9,
                    (System.nanoTime() - warm) / 1e9));
        } catch (Throwable t) {
            failure = t.toString();
            phase = Phase.FAILED;
            LOG.log(Level.SEVERE, "the engine failed to start", t);
            // the workers would hold their devices until their own deadline: they go now. The group is
            // left as it is: a thread may still wait in it, and the workers' exit ends that wait
            WorkerProcesses w = workers;
            if (w != null) w.close();
        }
    }

    /**
     * Rank 0 of a tensor-parallel model: starts this node's workers, meets them, and loads its
     * own shard (as each worker loads its own).
     */
    private CausalLm startRanks(ServerSettings s, ModelSpec spec, Device device, Kernels kernels) throws Exception {
        RankSettings r = s.ranks().initPort() != 0 ? s.ranks() : s.ranks().withInitPort(freePort());
        List<Integer> local = new ArrayList<>();
        for (int rank = 1; rank < r.ranksPerNode(); rank++) local.add(rank);
        workers = WorkerProcesses.start(WorkerProcesses.Launch.likeThisJvm(workerClasspath()), Worker.handOn(r, spec, s.torchThreads()),
                local, why -> {
                    EngineLoop l = loop;
                    if (l != null) l.loseRank(why);
                });
        LOG.info(() -> "tensor-parallel rank 0 of " + r.tpSize() + " (" + r.nnodes() + " node" + (r.nnodes() > 1 ? "s" : "")
                + "): meeting the other ranks at " + r.initAddr());
        C10d.Backend backend = device.is_cuda() ? C10d.Backend.NCCL : C10d.Backend.GLOO;
        tpGroup = watchingWorkers("meeting the other ranks at " + r.initAddr(),
                () -> C10dTpGroup.join(r.initHost(), r.initPort(), 0, r.tpSize(), backend, r.joinTimeout(), r.stepTimeout()));
        return spec.load(tpGroup, device, kernels);
    }

    /**
     * Runs a wait on the other ranks (meeting them, their loading) on a thread of its own, and
     * gives up at once if one of this node's workers exits meanwhile: the wait's own deadline
     * (minutes, for loading) is then no reason to keep an operator waiting.
     */
    private <T> T watchingWorkers(String what, java.util.concurrent.Callable<T> wait) throws Exception {
        CompletableFuture<T> done = new CompletableFuture<>();
        Thread t = threads.newThread(() -> {
            try {
                done.complete(wait.call());
            } catch (Throwable e) {
                done.completeExceptionally(e);
            }
        });
        t.setName("rollout-ranks-start");
        t.start();
        while (true) {
            try {
                return done.get(200, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException notYet) {
                String exited = workers.firstExit();
                if (exited != null) throw new IllegalStateException(exited + " while " + what + "; its log is above");
            } catch (java.util.concurrent.ExecutionException e) {
                String exited = workers.firstExit();
                throw new IllegalStateException((exited != null ? exited + "; " : "") + what + " failed: " + e.getCause().getMessage(),
                        e.getCause());
            }
        }
    }

    private void watchingWorkers(String what, Runnable wait) throws Exception {
        watchingWorkers(what, () -> {
            wait.run();
            return null;
        });
    }

    private static int freePort() throws java.io.IOException {
        try (java.net.ServerSocket socket = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    /**
     * The application's classes and jars as a class path for the worker processes: they run this
     * very build. Needs the application expanded on disk (server.xml's autoExpand, or a loose
     * application as in the ITs).
     */
    private String workerClasspath() {
        if (servletContext == null) throw new IllegalStateException("the web application's context was not handed over; no worker can be started");
        List<String> parts = new ArrayList<>();
        String classes = servletContext.getRealPath("/WEB-INF/classes");
        if (classes != null) parts.add(classes);
        Set<String> libs = servletContext.getResourcePaths("/WEB-INF/lib/");
        for (String lib : libs == null ? Set.<String>of() : new java.util.TreeSet<>(libs)) {
            if (!lib.endsWith(".jar")) continue;
            String real = servletContext.getRealPath(lib);
            if (real == null)
                throw new IllegalStateException("the application's " + lib + " is not a file on disk, so no worker process can run it: "
                        + "deploy the application expanded (server.xml: <applicationManager autoExpand=\"true\"/>)");
            parts.add(real);
        }
        if (classes == null)
            throw new IllegalStateException("the application's WEB-INF/classes is not on disk, so no worker process can run it: "
                    + "deploy the application expanded (server.xml: <applicationManager autoExpand=\"true\"/>)");
        return String.join(java.io.File.pathSeparator, parts);
    }

    /** What sessions may hold (rollout.sessions.*); pinned tokens 0 = half the KV cache. */
    private SessionLimits sessionLimits(long kvTokens) {
        long pinned = config.getOptionalValue("rollout.sessions.max-pinned-tokens", Long.class).orElse(0L);
        return new SessionLimits(config.getOptionalValue("rollout.sessions.max-open", Integer.class).orElse(1024),
                pinned > 0 ? Math.min(pinned, kvTokens) : kvTokens / 2,
                config.getOptionalValue("rollout.sessions.max-requests", Integer.class).orElse(4096));
    }

    /**
     * The decode graphs of every batch size, captured on the engine thread before anything is
     * served (graphs exist at one rank only). A capture that fails or takes too long leaves the
     * rest to first use, as without this.
     */
    private void captureGraphs(int tokens, int maxModelLen) {
        long t0 = System.nanoTime();
        try {
            int graphs = loop.submit(new EngineCommand.CaptureGraphs(tokens)).get(600, TimeUnit.SECONDS);
            if (graphs > 0) LOG.info(() -> String.format("captured %d decode graphs (every batch size, contexts up to %d tokens) in %.1f s",
                    graphs, Math.min(tokens, maxModelLen), (System.nanoTime() - t0) / 1e9));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            LOG.warning("decode graphs not captured ahead (each is captured on first use): " + e);
        }
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

    @PreDestroy
    void stop() {
        phase = Phase.STOPPED;
        WeightUpdates w = weights;
        if (w != null) w.close();  // leaves the weight-update groups before the engine goes
        WorkerProcesses ranks = workers;
        if (ranks != null) ranks.expectExit();
        EngineLoop l = loop;
        if (l != null) l.close();  // its thread's last message stops the other ranks
        TpGroup tp = tpGroup;
        // freeing the group under a thread still inside a collective would crash the JVM: only once the loop is gone
        if (tp != null && (l == null || !l.isAlive())) tp.close();
        if (ranks != null) ranks.close();
        ExecutorService masks = maskThread;
        if (masks != null) masks.shutdownNow();   // a walk in progress ends with its state; nothing waits on it
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

    /** The compiler of regex and JSON-schema constraints over the model's vocabulary (set once the model loads). */
    public Constraints constraints() {
        return constraints;
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
