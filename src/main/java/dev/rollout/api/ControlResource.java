package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.WeightUpdateSessions;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonValue;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * The RL state machine's controls: pause and continue, drain with a deadline, memory release and
 * resume, the prefix-cache flush, and {@code GET /rl/state}. Refused operations are a 400 or 409
 * with a reason; none of them can wedge the engine.
 */
@Path("/")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class ControlResource {
    private static final double CONTROL_TIMEOUT_S = 30;

    @Inject
    EngineService service;

    @POST
    @Admin
    @Path("pause_generation")
    public Response pause(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String mode = Fields.present(o, "mode") ? Fields.string(o.get("mode"), "mode") : "abort";
        LlmEngine.PauseMode m = switch (mode) {
            case "abort" -> LlmEngine.PauseMode.ABORT;
            case "retract" -> LlmEngine.PauseMode.RETRACT;
            case "in_place" -> LlmEngine.PauseMode.IN_PLACE;
            default -> throw ApiException.badRequest("mode must be 'abort', 'retract' or 'in_place', got '" + mode + "'");
        };
        int affected = Replies.await(loop.call(e -> e.pause(m)), CONTROL_TIMEOUT_S);
        return Replies.json(JSON.createObjectBuilder().add("message", "Generation paused successfully.").add("status", "ok")
                .add("mode", mode).add("affected_requests", affected));
    }

    @POST
    @Admin
    @Path("continue_generation")
    public Response resume(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonBodies.object(body, service.settings().maxBodyBytes());  // torch_empty_cache: nothing is cached between steps here
        Replies.await(loop.call(e -> {
            e.resume();
            return null;
        }), CONTROL_TIMEOUT_S);
        return Replies.json(JSON.createObjectBuilder().add("message", "Generation continued successfully.").add("status", "ok"));
    }

    /**
     * Ours: {@code {"timeout_s": T, "mode": "retract"|"abort"}}. Admits nothing new, lets what runs
     * finish for up to T seconds, then retracts (keeps for later, KV freed) or aborts the rest,
     * and leaves the engine paused. Answers with what finished and the partial outputs that were cut.
     */
    @POST
    @Admin
    @Path("drain")
    public Response drain(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        Duration timeout = Fields.present(o, "timeout_s") ? Fields.seconds(o.get("timeout_s"), "timeout_s", 0, 3600) : Duration.ofSeconds(30);
        String mode = Fields.present(o, "mode") ? Fields.string(o.get("mode"), "mode") : "retract";
        LlmEngine.PauseMode cut = switch (mode) {
            case "retract" -> LlmEngine.PauseMode.RETRACT;
            case "abort" -> LlmEngine.PauseMode.ABORT;
            default -> throw ApiException.badRequest("mode must be 'retract' or 'abort', got '" + mode + "'");
        };
        EngineLoop.DrainResult r = Replies.await(loop.drain(timeout, cut), timeout.toMillis() / 1000.0 + CONTROL_TIMEOUT_S);
        JsonArrayBuilder finished = JSON.createArrayBuilder();
        r.finished().forEach(finished::add);
        JsonArrayBuilder cutOut = JSON.createArrayBuilder();
        for (SequenceOutput s : r.cut()) {
            JsonArrayBuilder ids = JSON.createArrayBuilder();
            for (int id : s.outputIds()) ids.add(id);
            cutOut.add(JSON.createObjectBuilder().add("rid", s.rid()).add("output_ids", ids).add("completion_tokens", s.completionTokens()));
        }
        return Replies.json(JSON.createObjectBuilder().add("status", "paused").add("mode", r.cutMode())
                .add("finished", finished).add("cut", cutOut));
    }

    @GET
    @Admin
    @Path("release_memory_occupation")
    public Response releaseGet() {
        return release(null);
    }

    /** {@code {"tags": ["weights", "kv_cache", "cuda_graph"] | null}}: gives the memory back; 409 while requests run. */
    @POST
    @Admin
    @Path("release_memory_occupation")
    public Response release(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        Set<LlmEngine.MemoryTag> tags = tags(JsonBodies.object(body, service.settings().maxBodyBytes()));
        Map<LlmEngine.MemoryTag, Long> freed = Replies.await(loop.call(e -> e.releaseMemory(tags)), CONTROL_TIMEOUT_S);
        JsonObjectBuilder bytes = JSON.createObjectBuilder();
        freed.forEach((t, b) -> bytes.add(t.name().toLowerCase(), b));
        return Replies.json(Replies.ok("Released " + tags + ".").add("freed_bytes", bytes));
    }

    @GET
    @Admin
    @Path("resume_memory_occupation")
    public Response resumeGet() {
        return resumeMemory(null);
    }

    /** Allocates released memory again and says whether the weights must be pushed before serving. */
    @POST
    @Admin
    @Path("resume_memory_occupation")
    public Response resumeMemory(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        Set<LlmEngine.MemoryTag> tags = tags(JsonBodies.object(body, service.settings().maxBodyBytes()));
        boolean mustPush = Replies.await(loop.call(e -> e.resumeMemory(tags)), CONTROL_TIMEOUT_S);
        return Replies.json(Replies.ok("Resumed " + tags + "." + (mustPush ? " Push the weights before generating." : ""))
                .add("weights_must_be_pushed", mustPush));
    }

    @GET
    @Admin
    @Path("flush_cache")
    @Produces(MediaType.TEXT_PLAIN)
    public Response flushCacheGet() {
        return flushCache();
    }

    /** Drops the prefix cache; 400 while requests run or wait, as in SGLang. */
    @POST
    @Admin
    @Path("flush_cache")
    @Produces(MediaType.TEXT_PLAIN)
    public Response flushCache() {
        EngineLoop loop = Requests.readyLoop(service);
        boolean flushed = Replies.await(loop.call(LlmEngine::flushCache), CONTROL_TIMEOUT_S);
        return flushed
                ? Response.ok("Cache flushed.\n").build()
                : Response.status(400).entity("Cache not flushed: requests are running or waiting.\n").build();
    }

    /** The one RL state machine: serving | paused | draining | updating | released. */
    @GET
    @Path("rl/state")
    public JsonObject state() {
        EngineLoop loop = Requests.readyLoop(service);
        EngineLoop.RlStatus s = loop.status();
        JsonArrayBuilder released = JSON.createArrayBuilder();
        s.released().forEach(t -> released.add(t.name().toLowerCase()));
        JsonObjectBuilder b = JSON.createObjectBuilder()
                .add("state", s.state().name().toLowerCase())
                .add("weight_version", s.weightVersion())
                .add("in_flight", s.running())
                .add("waiting", s.waiting())
                .add("free_kv_tokens", (long) s.freeBlocks() * s.blockSize())
                .add("released", released)
                .add("unpushed_parameters", s.unpushedParameters())
                .add("ready", service.ready());
        LlmEngine.UpdateRecord u = s.lastUpdate();
        if (u == null) b.addNull("last_update");
        else b.add("last_update", JSON.createObjectBuilder().add("weight_version", u.version()).add("transport", u.transport())
                .add("num_tensors", u.numTensors()).add("bytes", u.bytes()).add("seconds", u.seconds()).add("at_ms", u.atMillis()));
        WeightUpdateSessions sessions = service.updateSessions();
        Map<String, Object> open = sessions.describeOpen();
        if (open == null) b.addNull("open_update");
        else {
            JsonObjectBuilder ob = JSON.createObjectBuilder();
            open.forEach((k, v) -> {
                if (v instanceof Number n) ob.add(k, n.doubleValue());
                else ob.add(k, String.valueOf(v));
            });
            b.add("open_update", ob);
        }
        WeightUpdateSessions.Outcome last = sessions.lastOutcome();
        if (last == null) b.addNull("last_update_session");
        else b.add("last_update_session", JSON.createObjectBuilder().add("update_id", last.updateId()).add("result", last.result())
                .add("message", last.message()).add("at_ms", last.atMillis()));
        return b.build();
    }

    private static Set<LlmEngine.MemoryTag> tags(JsonObject o) {
        if (!Fields.present(o, "tags")) return EnumSet.allOf(LlmEngine.MemoryTag.class);
        JsonValue v = o.get("tags");
        if (!(v instanceof JsonArray a)) throw Fields.type("tags", "a list of strings or null", v);
        if (a.isEmpty()) return EnumSet.allOf(LlmEngine.MemoryTag.class);
        Set<LlmEngine.MemoryTag> out = EnumSet.noneOf(LlmEngine.MemoryTag.class);
        for (int i = 0; i < a.size(); i++) {
            String t = Fields.string(a.get(i), "tags[" + i + "]");
            switch (t) {
                case "weights" -> out.add(LlmEngine.MemoryTag.WEIGHTS);
                case "kv_cache" -> out.add(LlmEngine.MemoryTag.KV_CACHE);
                case "cuda_graph" -> out.add(LlmEngine.MemoryTag.CUDA_GRAPH);
                default -> throw ApiException.badRequest("tags[" + i + "] = '" + t + "' is not one of weights, kv_cache, cuda_graph");
            }
        }
        return out;
    }
}
