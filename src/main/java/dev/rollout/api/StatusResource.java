package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.metrics.EngineMetrics;
import dev.rollout.metrics.ThroughputHistory;
import dev.rollout.model.CausalLm;
import dev.rollout.model.Torch;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.lang.management.ManagementFactory;
import java.util.List;

/**
 * {@code GET /status}: everything the live status page at {@code /} shows, in one answer: the
 * model and device, the engine's load and KV cache, the prefix-cache hit rate, the weight version
 * with the recent pushes, the RL state, and five minutes of throughput. It answers while the
 * model loads too (with the phase), so the page can say what the server is doing.
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

    @GET
    public JsonObject status() {
        ServerSettings s = service.settings();
        JsonObjectBuilder server = JSON.createObjectBuilder().add("version", ServerResource.VERSION)
                .add("phase", service.phase().name().toLowerCase())
                .add("uptime_s", ManagementFactory.getRuntimeMXBean().getUptime() / 1000.0);
        if (service.failure() != null) server.add("failure", service.failure());
        JsonObjectBuilder o = JSON.createObjectBuilder().add("server", server);
        EngineLoop loop = service.loop();
        if (loop == null) return o.build();

        LlmEngine engine = loop.engine();
        CausalLm model = engine.model();
        EngineLoop.RlStatus rl = loop.status();
        LlmEngine.EngineStats st = loop.stats();
        o.add("model", JSON.createObjectBuilder()
                .add("id", ServerResource.servedModelName(service))
                .add("path", service.modelDir().toString())
                .add("architecture", engine.modelConfig().architecture())
                .add("parameters", model.parameterCount())
                .add("weight_bytes", model.weightBytes())
                .add("dtype", Torch.name(model.dtype()))
                .add("device", s.engine().device())
                .add("context_length", engine.maxModelLen()));
        o.add("engine", JSON.createObjectBuilder()
                .add("rl_state", rl.state().name().toLowerCase())
                .add("running", st.numRunning())
                .add("waiting", st.numWaiting())
                .add("max_running", s.engine().maxNumSeqs())
                .add("kv_used_blocks", st.usedBlocks())
                .add("kv_total_blocks", st.totalBlocks())
                .add("kv_block_size", st.blockSize())
                .add("kv_usage", st.tokenUsage())
                .add("prefix_cache_hit_rate", metrics.cacheHitRate())
                .add("preemptions", st.numPreemptions())
                .add("sampled_tokens", metrics.sampledTokens())
                .add("computed_tokens", metrics.stepTokens()));
        JsonArrayBuilder pushes = JSON.createArrayBuilder();
        List<LlmEngine.UpdateRecord> updates = engine.recentUpdates();
        for (int i = updates.size() - 1; i >= 0; i--) {   // newest first
            LlmEngine.UpdateRecord u = updates.get(i);
            pushes.add(JSON.createObjectBuilder().add("version", String.valueOf(u.version()))
                    .add("transport", u.transport() == null ? "unknown" : u.transport())
                    .add("tensors", u.numTensors()).add("bytes", u.bytes()).add("seconds", u.seconds()).add("at_ms", u.atMillis()));
        }
        o.add("weights", JSON.createObjectBuilder().add("version", String.valueOf(engine.weightVersion())).add("pushes", pushes));
        JsonArrayBuilder points = JSON.createArrayBuilder();
        for (ThroughputHistory.Point p : history.points())
            points.add(JSON.createObjectBuilder().add("at_ms", p.atMillis()).add("sampled_per_s", p.sampledPerSecond())
                    .add("computed_per_s", p.computedPerSecond()).add("running", p.running()).add("waiting", p.waiting())
                    .add("kv_usage", p.kvUsage()));
        o.add("throughput", JSON.createObjectBuilder().add("interval_s", 1).add("points", points));
        return o.build();
    }
}
