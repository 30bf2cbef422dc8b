package dev.rollout.api;

import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineInfo;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.EngineStats;
import dev.rollout.engine.RequestMatch;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.metrics.EngineMetrics;
import dev.rollout.metrics.ThroughputHistory;
import dev.rollout.runtime.DefaultModel;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonObject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** SGLang's information and cache endpoints: model and server info, loads, health probe, flush, abort. */
@Path("/")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class ServerResource {
    static final String VERSION = "0.1.0";
    private static final long HEALTH_TIMEOUT_S = 20;

    @Inject
    EngineService service;

    @Inject
    EngineMetrics metrics;

    @Inject
    ThroughputHistory history;

    /** SGLang's {@code /get_model_info}. */
    public record ModelInfo(String modelPath, String tokenizerPath, boolean isGeneration, Object preferredSamplingParams,
                            String weightVersion, String modelType, List<String> architectures) {}

    public record InternalState(int numRunningReqs, int numWaitingReqs, double tokenUsage, int numCachedBlocks, long numPreemptions,
                                String weightVersion) {}

    /**
     * SGLang's {@code /server_info} (and its older name {@code /get_server_info}): the server's
     * arguments as SGLang's ServerArgs names and types them, and the scheduler's state. The
     * parallel sizes are 1 (one process, one device), {@code disaggregation_mode} is SGLang's
     * {@code "null"}, so that a client comparing them with what it asked for (slime's
     * external-engine attach) sees what this server really does; {@code enable_memory_saver} is
     * rollout.enable-memory-saver, {@code enable_return_routed_experts} rollout.enable-return-routed-experts,
     * {@code enable_deterministic_inference} rollout.deterministic; {@code logprobs_mode} (vLLM's
     * name) rollout.logprobs-mode, the mode of a request that names none;
     * {@code enable_streaming_session} is true, since streaming sessions need no flag here.
     */
    public record ServerInfo(String modelPath, String servedModelName, String device, String dtype, int pageSize, int maxRunningRequests,
                             int chunkedPrefillSize, int contextLength, long maxTotalNumTokens, int maxReqInputLen,
                             boolean skipTokenizerInit, int tpSize, int ppSize, int dpSize, int epSize, boolean enableMemorySaver,
                             boolean enableReturnRoutedExperts, boolean enableDeterministicInference, String logprobsMode, String disaggregationMode, boolean encoderOnly,
                             boolean enableStreamingSession, String weightVersion, List<InternalState> internalStates, String version) {}

    /** An OpenAI model object, with vLLM's {@code max_model_len}. */
    public record Model(String id, String object, long created, String ownedBy, String root, int maxModelLen) {}

    public record Models(String object, List<Model> data) {}

    /** {@code model_path} follows update_weights_from_disk, as in SGLang; the tokenizer stays the one loaded at start. */
    @GET
    @Path("get_model_info")
    public ModelInfo modelInfo() {
        EngineLoop loop = Requests.readyLoop(service);
        EngineInfo info = loop.info();
        String loaded = service.weights().lastDiskPath();
        return new ModelInfo(loaded != null ? loaded : service.modelDir().toString(),
                service.tokenizer() == null ? "" : service.modelDir().toString(), true, null,
                loop.status().weightVersion(), info.modelType(), List.of(info.architecture()));
    }

    /** SGLang's current name; {@code /get_server_info} is the one it keeps for older clients, with the same answer. */
    @GET
    @Path("server_info")
    public ServerInfo serverInfo() {
        return getServerInfo();
    }

    @GET
    @Path("get_server_info")
    public ServerInfo getServerInfo() {
        EngineLoop loop = Requests.readyLoop(service);
        ServerSettings s = service.settings();
        EngineInfo info = loop.info();
        String version = loop.status().weightVersion();
        EngineStats st = loop.stats();
        InternalState internal = new InternalState(st.numRunning(), st.numWaiting(), st.tokenUsage(), st.cachedBlocks(),
                st.numPreemptions(), version);
        return new ServerInfo(service.modelDir().toString(), servedModelName(), s.engine().device(), s.engine().dtype(),
                s.engine().blockSize(), s.engine().maxNumSeqs(), s.engine().maxNumBatchedTokens(), info.maxModelLen(),
                (long) st.totalBlocks() * st.blockSize(), info.maxModelLen() - 1, service.tokenizer() == null, info.tpSize(), 1, 1, 1,
                s.enableMemorySaver(), s.engine().routedExperts(), s.deterministic(), s.logprobsMode().wireName(), "null", false, true, version, List.of(internal), VERSION);
    }

    /**
     * SGLang's {@code GET /v1/loads?include=...&dp_rank=...&format=...} (see {@link Loads}): the
     * requests running and waiting, KV usage and recent throughput, from the stats the engine
     * loop published last.
     */
    @GET
    @Path("v1/loads")
    public Response loads(@QueryParam("include") String include, @QueryParam("dp_rank") String dpRank,
                          @QueryParam("format") String format) {
        Loads.checkInclude(include);
        Integer rank = Loads.dpRank(dpRank);
        boolean prometheus = Loads.prometheusFormat(format);
        EngineLoop loop = Requests.readyLoop(service);
        List<ThroughputHistory.Point> recent = history.points();
        double genThroughput = recent.isEmpty() ? 0 : recent.get(recent.size() - 1).sampledPerSecond();
        Loads.Load load = Loads.load(loop.stats(), loop.info().maxRunning(), genThroughput, metrics.cacheHitRate());
        Loads.Document doc = Loads.document(List.of(load), rank, VERSION, Instant.now());
        if (prometheus) return Response.ok(Loads.prometheus(doc.loads()), "text/plain; version=0.0.4; charset=utf-8").build();
        return Response.ok(doc, MediaType.APPLICATION_JSON).build();
    }

    @GET
    @Path("v1/models")
    public Models models() {
        return new Models("list", List.of(served()));
    }

    private Model served() {
        EngineLoop loop = Requests.readyLoop(service);
        return new Model(servedModelName(), "model", System.currentTimeMillis() / 1000, "rollout-server", service.modelDir().toString(),
                loop.info().maxModelLen());
    }

    /** OpenAI's {@code GET /v1/models/{model}}: the served model, or 404 for any other id. */
    @GET
    @Path("v1/models/{model: .+}")  // ids may hold a slash (Qwen/Qwen3-0.6B)
    public Model model(@PathParam("model") String model) {
        Model served = served();
        if (!served.id().equals(model))
            throw new ApiException(404, "The model `" + model + "` does not exist; this server serves \"" + served.id() + "\"");
        return served;
    }

    /** 200 once a one-token generation comes back within 20 s; 503 otherwise, at once where nothing can generate (SGLang's probe). */
    @GET
    @Path("health_generate")
    public Response healthGenerate() {
        EngineLoop loop;
        try {
            loop = Requests.readyLoop(service);
        } catch (ApiException e) {
            return Response.status(503).build();
        }
        // While the memory is released or weights wait for a push the engine holds still (readiness
        // is DOWN) until an operator resumes or pushes: the probe could only wait out its 20 s
        if (!service.ready()) return Response.status(503).build();
        CompletableFuture<SequenceOutput> done = new CompletableFuture<>();
        String rid = "HEALTH_CHECK_" + System.nanoTime();
        Sequence probe = new Sequence(rid, 0, new int[] {0}, SamplingParams.builder().temperature(0).maxNewTokens(1).build(),
                LogprobOptions.NONE, null, out -> { if (out.finished()) done.complete(out); }, false, 0).withoutMetrics();
        loop.submit(new EngineCommand.Generate(List.of(probe)));
        try {
            done.get(HEALTH_TIMEOUT_S, TimeUnit.SECONDS);
            return Response.ok().build();
        } catch (TimeoutException | ExecutionException e) {
            loop.submit(new EngineCommand.Abort(RequestMatch.ids(Set.of(rid)), "health check timed out"));
            return Response.status(503).build();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Response.status(503).build();
        }
    }

    /** {@code {rid, abort_all}}: aborts by rid prefix (SGLang's rule) or everything; callers get partial output. */
    @POST
    @Path("abort_request")
    public Response abort(InputStream body, @Context HttpHeaders headers) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        boolean all = Fields.present(o, "abort_all") && Fields.bool(o.get("abort_all"), "abort_all");
        if (all) ApiKeys.requireAdmin(service.settings(), headers);  // aborting everyone's rollouts is a control action
        String rid = Fields.present(o, "rid") ? Fields.string(o.get("rid"), "rid") : "";
        if (!all && rid.isEmpty()) throw ApiException.badRequest("abort_request needs a non-empty rid or abort_all=true");
        loop.submit(all ? new EngineCommand.Abort(RequestMatch.every(), "aborted by abort_all", "Abort in waiting queue")
                : new EngineCommand.Abort(RequestMatch.prefix(rid), "aborted by abort_request", "Abort in waiting queue"));
        return Response.ok().build();
    }

    private String servedModelName() {
        return servedModelName(service);
    }

    /** The id /v1/models lists and OpenAI answers carry: rollout.served-model-name, else the model's directory. */
    static String servedModelName(EngineService service) {
        String name = service.settings().servedModelName();
        if (!name.isBlank()) return name;
        return service.settings().modelPath().isBlank() ? DefaultModel.NAME : service.modelDir().getFileName().toString();
    }
}
