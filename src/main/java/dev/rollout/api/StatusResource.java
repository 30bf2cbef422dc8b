package dev.rollout.api;

import dev.rollout.engine.EngineInfo;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.EngineStats;
import dev.rollout.engine.RlStatus;
import dev.rollout.engine.UpdateRecord;
import dev.rollout.metrics.EngineMetrics;
import dev.rollout.metrics.ThroughputHistory;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code GET /status}: everything the live status page at {@code /} shows, in one answer: the
 * model and device, the engine's load and KV cache, the prefix-cache hit rate, the weight version
 * with the recent pushes, the RL state, and five minutes of throughput. It answers in every
 * phase and RL state, from the values the engine loop publishes (never from the engine itself),
 * so the page can say what the server is doing while it loads or while its weights are released.
 */
@Path("status")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class StatusResource {
    @Inject
    EngineService service;

    @Inject
    EngineMetrics metrics;

    @Inject
    ThroughputHistory history;

    /** Null parts are absent from the page: the model and engine until the model is loaded. */
    public record Status(Server server, Model model, Engine engine, Weights weights, Throughput throughput) {}

    public record Server(String version, String phase, double uptimeS, String failure) {}

    public record Model(String id, String path, String architecture, long parameters, long weightBytes, boolean weightsResident,
                        String dtype, String device, int contextLength) {}

    public record Engine(String rlState, int running, int waiting, int maxRunning, int kvUsedBlocks, int kvTotalBlocks,
                         int kvBlockSize, double kvUsage, double prefixCacheHitRate, long preemptions, long sampledTokens,
                         long computedTokens) {}

    public record Push(String version, String transport, int tensors, long bytes, double seconds, long atMs) {}

    /** Pushes newest first. */
    public record Weights(String version, List<Push> pushes) {}

    public record Point(long atMs, double sampledPerS, double computedPerS, int running, int waiting, double kvUsage) {}

    public record Throughput(int intervalS, List<Point> points) {}

    @GET
    public Status status() {
        ServerSettings s = service.settings();
        Server server = new Server(ServerResource.VERSION, service.phase().name().toLowerCase(Locale.ROOT),
                ManagementFactory.getRuntimeMXBean().getUptime() / 1000.0, service.failure());
        EngineLoop loop = service.loop();
        if (loop == null) return new Status(server, null, null, null, null);

        EngineInfo info = loop.info();
        RlStatus rl = loop.status();
        EngineStats st = loop.stats();
        Model model = new Model(ServerResource.servedModelName(service), service.modelDir().toString(), info.architecture(),
                info.parameterCount(), info.weightBytes(), info.weightsResident(), info.dtype(), info.device(), info.maxModelLen());
        Engine engine = new Engine(rl.state().name().toLowerCase(Locale.ROOT), st.numRunning(), st.numWaiting(), s.engine().maxNumSeqs(),
                st.usedBlocks(), st.totalBlocks(), st.blockSize(), st.tokenUsage(), metrics.cacheHitRate(), st.numPreemptions(),
                metrics.sampledTokens(), metrics.stepTokens());
        List<Push> pushes = new ArrayList<>();
        List<UpdateRecord> updates = rl.recentUpdates();
        for (int i = updates.size() - 1; i >= 0; i--) {
            UpdateRecord u = updates.get(i);
            pushes.add(new Push(String.valueOf(u.version()), u.transport() == null ? "unknown" : u.transport(), u.numTensors(),
                    u.bytes(), u.seconds(), u.atMillis()));
        }
        List<Point> points = new ArrayList<>();
        for (ThroughputHistory.Point p : history.points())
            points.add(new Point(p.atMillis(), p.sampledPerSecond(), p.computedPerSecond(), p.running(), p.waiting(), p.kvUsage()));
        return new Status(server, model, engine, new Weights(String.valueOf(rl.weightVersion()), pushes), new Throughput(1, points));
    }
}
