package dev.rollout.api;

import dev.rollout.engine.DrainMode;
import dev.rollout.engine.DrainResult;
import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.MemoryTag;
import dev.rollout.engine.PauseMode;
import dev.rollout.engine.ReleaseReport;
import dev.rollout.engine.ResumeReport;
import dev.rollout.engine.RlStatus;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.engine.UpdateRecord;
import dev.rollout.runtime.EngineService;
import dev.rollout.weights.SessionOutcome;
import dev.rollout.weights.SessionView;
import dev.rollout.weights.WeightGroups;
import dev.rollout.weights.WeightUpdates;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The RL state machine's controls: pause and continue, drain with a deadline, memory release and
 * resume, the prefix-cache flush, and {@code GET /rl/state}. Each is one typed engine command;
 * refused operations are a 400 or 409 with a reason, and none of them can wedge the engine.
 */
@Path("/")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class ControlResource {
    private static final double CONTROL_TIMEOUT_S = 30;
    /** A drain may wait at most an hour: longer is a client bug, not a plan. */
    private static final double MAX_DRAIN_S = 3600;

    @Inject
    EngineService service;

    public record Paused(String message, String status, String mode, int affectedRequests) {}

    public record Continued(String message, String status) {}

    public record CutRequest(String rid, int[] outputIds, int completionTokens) {}

    /**
     * SGLang's drain answer ({@code success}: nothing left in flight; {@code remaining_requests})
     * and ours after it: what the drain did at its deadline, whether it left the engine paused,
     * what finished in time and the partial outputs it cut.
     */
    public record Drained(boolean success, int remainingRequests, String mode, boolean paused, List<String> finished,
                          List<CutRequest> cut) {}

    /** {@code weights_kept}: whether a host copy was made, so that resume needs no push. */
    public record Released(boolean success, String message, Map<String, Long> freedBytes, boolean weightsKept, long backupBytes) {}

    public record Resumed(boolean success, String message, List<String> resumed, boolean weightsRestored, long restoredBytes,
                          boolean weightsMustBePushed, int parametersToPush) {}

    public record LastUpdate(String weightVersion, String transport, int numTensors, long bytes, double seconds, long atMs) {
        static LastUpdate of(UpdateRecord u) {
            return u == null ? null : new LastUpdate(u.version(), u.transport(), u.numTensors(), u.bytes(), u.seconds(), u.atMillis());
        }
    }

    public record OpenUpdate(String updateId, int stagedTensors, long stagedBytes, int buckets, double secondsLeft) {}

    public record LastSession(String updateId, String result, String message, long atMs) {}

    /** {@code GET /rl/state}. */
    public record RlStateView(String state, String weightVersion, int inFlight, int waiting, long freeKvTokens, List<String> released,
                          int unpushedParameters, long hostBackupBytes, boolean ready, LastUpdate lastUpdate,
                          OpenUpdate openUpdate, LastSession lastUpdateSession, List<WeightGroups.Joined> weightUpdateGroups) {}

    @POST
    @Admin
    @Path("pause_generation")
    public Paused pause(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String mode = Fields.present(o, "mode") ? Fields.string(o.get("mode"), "mode") : "abort";
        PauseMode m = switch (mode) {
            case "abort" -> PauseMode.ABORT;
            case "retract" -> PauseMode.RETRACT;
            case "in_place" -> PauseMode.IN_PLACE;
            default -> throw ApiException.badRequest("mode must be 'abort', 'retract' or 'in_place', got '" + mode + "'");
        };
        int affected = Replies.await(loop.submit(new EngineCommand.Pause(m)), CONTROL_TIMEOUT_S);
        return new Paused("Generation paused successfully.", "ok", mode, affected);
    }

    @POST
    @Admin
    @Path("continue_generation")
    public Continued resume(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonBodies.object(body, service.settings().maxBodyBytes());  // torch_empty_cache: nothing is cached between steps here
        Replies.await(loop.submit(new EngineCommand.Continue()), CONTROL_TIMEOUT_S);
        return new Continued("Generation continued successfully.", "ok");
    }

    /**
     * SGLang's {@code {"timeout": T}} (seconds; null or absent waits for up to an hour): answers
     * once no request runs or waits, or at the deadline, with {@code {"success",
     * "remaining_requests"}}; it holds nothing back and leaves the engine as it was. Ours on top:
     * {@code timeout_s} for {@code timeout}, and {@code "mode": "retract"|"abort"}, which holds new
     * requests back while what runs finishes, cuts the rest at the deadline (retracted for later,
     * or aborted with their partial output) and leaves the engine paused for the update that follows.
     */
    @POST
    @Admin
    @Path("drain")
    public Drained drain(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (Fields.present(o, "timeout") && Fields.present(o, "timeout_s"))
            throw ApiException.badRequest("give timeout (SGLang's) or timeout_s, not both");
        String key = Fields.present(o, "timeout_s") ? "timeout_s" : "timeout";
        // SGLang waits without end when there is no timeout; every wait here has a deadline
        Duration timeout = Fields.present(o, key) ? Fields.seconds(o.get(key), key, 0, MAX_DRAIN_S) : Duration.ofSeconds((long) MAX_DRAIN_S);
        String mode = Fields.present(o, "mode") ? Fields.string(o.get("mode"), "mode") : "wait";
        DrainMode m = switch (mode) {
            case "wait" -> DrainMode.WAIT;
            case "retract" -> DrainMode.RETRACT;
            case "abort" -> DrainMode.ABORT;
            default -> throw ApiException.badRequest("mode must be 'wait', 'retract' or 'abort', got '" + mode + "'");
        };
        DrainResult r = Replies.await(loop.submit(new EngineCommand.Drain(timeout, m)), timeout.toMillis() / 1000.0 + CONTROL_TIMEOUT_S);
        List<CutRequest> cutOut = new ArrayList<>();
        for (SequenceOutput s : r.cut()) cutOut.add(new CutRequest(s.rid(), s.outputIds(), s.completionTokens()));
        return new Drained(r.success(), r.remaining(), lower(r.mode()), r.paused(), r.finished(), cutOut);
    }

    @GET
    @Admin
    @Path("release_memory_occupation")
    public Released releaseGet() {
        return release(null);
    }

    /**
     * {@code {"tags": ["weights", "kv_cache", "cuda_graph"] | null}}: gives the memory back; 409
     * while requests run; 400, changing nothing, when a tag asked for is released already (SGLang's rule).
     */
    @POST
    @Admin
    @Path("release_memory_occupation")
    public Released release(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        Set<MemoryTag> tags = tags(JsonBodies.object(body, service.settings().maxBodyBytes()));
        ReleaseReport r = Replies.await(loop.submit(new EngineCommand.ReleaseMemory(tags)), CONTROL_TIMEOUT_S);
        Map<String, Long> freed = new LinkedHashMap<>();
        for (MemoryTag t : EnumSet.copyOf(r.freedBytes().keySet())) freed.put(lower(t), r.freedBytes().get(t));
        String weights = !tags.contains(MemoryTag.WEIGHTS) ? ""
                : r.weightsKept() ? " The weights were copied to host memory (" + r.backupBytes() + " bytes); resume restores them."
                : " The weights were discarded; push them after resume.";
        return new Released(true, "Released " + names(tags) + "." + weights, freed, r.weightsKept(), r.backupBytes());
    }

    @GET
    @Admin
    @Path("resume_memory_occupation")
    public Resumed resumeGet() {
        return resumeMemory(null);
    }

    /**
     * Allocates released memory again and says whether the weights came back or must be pushed
     * before serving; 400, changing nothing, when a tag asked for is not released (SGLang's rule;
     * no tags means all three).
     */
    @POST
    @Admin
    @Path("resume_memory_occupation")
    public Resumed resumeMemory(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        Set<MemoryTag> tags = tags(JsonBodies.object(body, service.settings().maxBodyBytes()));
        ResumeReport r = Replies.await(loop.submit(new EngineCommand.ResumeMemory(tags)), CONTROL_TIMEOUT_S);
        boolean mustPush = r.parametersToPush() > 0;
        String message = "Resumed " + names(tags) + "."
                + (r.weightsRestored() ? " The weights were restored from host memory (" + r.restoredBytes() + " bytes)." : "")
                + (mustPush ? " Push the weights before generating." : "");
        return new Resumed(true, message, names(r.resumed()), r.weightsRestored(), r.restoredBytes(), mustPush, r.parametersToPush());
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
        boolean flushed = Replies.await(loop.submit(new EngineCommand.FlushCache()), CONTROL_TIMEOUT_S);
        return flushed
                ? Response.ok("Cache flushed.\n").build()
                : Response.status(400).entity("Cache not flushed: requests are running or waiting.\n").build();
    }

    /** The one RL state machine: serving | paused | draining | updating | released. */
    @GET
    @Path("rl/state")
    public RlStateView state() {
        EngineLoop loop = Requests.readyLoop(service);
        RlStatus s = loop.status();
        WeightUpdates weights = service.weights();
        SessionView open = weights.openSession();
        SessionOutcome last = weights.lastSession();
        return new RlStateView(lower(s.state()), s.weightVersion(), s.running(), s.waiting(), (long) s.freeBlocks() * s.blockSize(),
                names(s.released()), s.unpushedParameters(), s.hostBackupBytes(), service.ready(), LastUpdate.of(s.lastUpdate()),
                open == null ? null : new OpenUpdate(open.updateId(), open.stagedTensors(), open.stagedBytes(), open.buckets(),
                        open.secondsLeft()),
                last == null ? null : new LastSession(last.updateId(), last.result().label(), last.message(), last.atMillis()),
                weights.groups().joined());
    }

    private static Set<MemoryTag> tags(JsonObject o) {
        if (!Fields.present(o, "tags")) return EnumSet.allOf(MemoryTag.class);
        JsonValue v = o.get("tags");
        if (!(v instanceof JsonArray a)) throw Fields.type("tags", "a list of strings or null", v);
        if (a.isEmpty()) return EnumSet.allOf(MemoryTag.class);
        Set<MemoryTag> out = EnumSet.noneOf(MemoryTag.class);
        for (int i = 0; i < a.size(); i++) {
            String t = Fields.string(a.get(i), "tags[" + i + "]");
            switch (t) {
                case "weights" -> out.add(MemoryTag.WEIGHTS);
                case "kv_cache" -> out.add(MemoryTag.KV_CACHE);
                case "cuda_graph" -> out.add(MemoryTag.CUDA_GRAPH);
                default -> throw ApiException.badRequest("tags[" + i + "] = '" + t + "' is not one of weights, kv_cache, cuda_graph");
            }
        }
        return out;
    }

    /** Tags as the API names them, in a fixed order. */
    private static List<String> names(Set<MemoryTag> tags) {
        List<String> out = new ArrayList<>();
        for (MemoryTag t : tags.isEmpty() ? EnumSet.noneOf(MemoryTag.class) : EnumSet.copyOf(tags)) out.add(lower(t));
        return out;
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }
}
