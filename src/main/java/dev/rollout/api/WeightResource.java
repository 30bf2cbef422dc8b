package dev.rollout.api;

import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.ParameterValues;
import dev.rollout.engine.UpdateRecord;
import dev.rollout.engine.WeightCheck;
import dev.rollout.engine.WeightChecksums;
import dev.rollout.runtime.EngineService;
import dev.rollout.weights.TensorPayload;
import dev.rollout.dist.WeightGroupOp;
import dev.rollout.weights.WeightGroups;
import dev.rollout.weights.WeightOutcome;
import dev.rollout.weights.WeightPayloads;
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
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.MultivaluedMap;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.StreamingOutput;
import jakarta.ws.rs.core.UriInfo;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/**
 * Weight updates, SGLang-compatible: {@code /update_weights_from_tensor} (safetensors in base64,
 * or one flat bucket plus a manifest; or a raw safetensors body), {@code /update_weights_from_disk},
 * versions, read-back and checksums, and the begin/end session that makes a multi-bucket update
 * atomic. This class parses requests and renders outcomes; the weight path itself is {@link
 * WeightUpdates}. Pickled payloads are refused unless the server allows them: they are code, not data.
 */
@Path("/")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class WeightResource {
    private static final double READ_TIMEOUT_S = 30;
    private static final double CHECKSUM_TIMEOUT_S = 120;
    /** A snapshot or compare copies every parameter across the bus; the engine keeps going if the caller stops waiting. */
    private static final double WEIGHT_CHECK_TIMEOUT_S = 600;
    /**
     * get_weights_by_name answers at most this many values (rows times row size): they are read
     * into a float array (16 MB at this limit) and streamed out as text, so a whole embedding of a
     * large model (hundreds of millions of values) cannot take the heap. 100 rows, SGLang's
     * default, of the widest weights of today's models (a 30k-wide MLP) fit.
     */
    static final int MAX_READ_BACK = 1 << 22;

    @Inject
    EngineService service;

    /** An update applied: SGLang's answer plus what was applied. */
    public record Updated(boolean success, String message, boolean applied, String weightVersion, int numTensors, long bytes,
                          double seconds, int numPausedRequests) {
        static Updated of(UpdateRecord r, String requestedVersion) {
            return new Updated(true, "Success." + (requestedVersion != null ? " Weight version updated to " + requestedVersion + "." : ""),
                    true, r.version(), r.numTensors(), r.bytes(), r.seconds(), 0);
        }
    }

    /** A bucket staged in the open session (or dropped as a retry of one staged before). */
    public record Staged(boolean success, String message, boolean staged, String updateId) {}

    /** A retried bucket outside a session, applied before and ignored now. */
    public record AlreadyApplied(boolean success, String message, boolean applied, String weightVersion) {}

    public record Begun(boolean success, String message, String updateId) {}

    public record Done(boolean success, String message) {}

    /** init_weights_update_group's answer: SGLang's {success, message}, and where this server stands in the group. */
    public record GroupFormed(boolean success, String message, String groupName, int rank, int worldSize, String backend) {}

    public record Version(String weightVersion) {}

    public record VersionSet(boolean success, String message, String newVersion) {}

    /** SGLang's weights_checker answer for one rank. */
    public record RankChecksums(Map<String, String> checksums, String perGpuChecksum, String dtype, Parallelism parallelismInfo) {}

    public record Parallelism(int tpRank, int tpSize, int dpRank, int dpSize, int ppRank, int ppSize, int rank, int size) {}

    public record Checksums(boolean success, String message, String weightVersion, List<RankChecksums> ranks) {}

    // ---- pushing tensors ---------------------------------------------------------------

    /**
     * The SGLang shape, {@code {"serialized_named_tensors": [base64, ...], "load_format": ..., ...}};
     * or, ours, with {@code Content-Type: application/octet-stream}, a safetensors file as the body
     * (no base64, no JSON) and the options in the query string.
     */
    @POST
    @Admin
    @Path("update_weights_from_tensor")
    public Response fromTensor(InputStream body, @Context HttpHeaders headers, @Context UriInfo uri) {
        WeightUpdates weights = weights();
        long limit = service.settings().maxWeightBodyBytes();
        if (MediaType.APPLICATION_OCTET_STREAM_TYPE.isCompatible(headers.getMediaType())
                && !MediaType.WILDCARD_TYPE.equals(headers.getMediaType())) {
            MultivaluedMap<String, String> q = uri.getQueryParameters();
            Long seq;
            try {
                seq = q.getFirst("bucket_seq") == null ? null : Long.valueOf(q.getFirst("bucket_seq"));
            } catch (NumberFormatException e) {
                throw ApiException.badRequest("bucket_seq must be an integer");
            }
            var options = new WeightUpdates.PushOptions(q.getFirst("weight_version"), Boolean.parseBoolean(q.getFirst("abort_all_requests")),
                    q.getFirst("update_id"), seq);
            return render(weights.push(new TensorPayload.SafetensorsBody(body, contentLength(headers), limit), options), options.version());
        }
        try (TensorPushBody b = TensorPushBody.read(body, contentLength(headers), limit, service.settings().maxBodyBytes())) {
            JsonObject o = b.fields();
            var options = new WeightUpdates.PushOptions(optString(o, "weight_version"), optBool(o, "abort_all_requests", false),
                    optString(o, "update_id"), Fields.present(o, "bucket_seq") ? Fields.integer(o.get("bucket_seq"), "bucket_seq") : null);
            String format = optString(o, "load_format");
            TensorPayload payload = "cuda_ipc".equals(format) ? new TensorPayload.CudaIpcTensors(cudaIpc(o))
                    : new TensorPayload.Encoded(b.payload(), format, Fields.present(o, "flattened_bucket_metadata") ? manifest(o) : null);
            return render(weights.push(payload, options), options.version());
        }
    }

    /** Ours: {@code "load_format": "cuda_ipc", "cuda_ipc_tensors": [{name, dtype, shape, stride, ipc_handle, ...}]}. */
    private static List<WeightPayloads.IpcDescriptor> cudaIpc(JsonObject o) {
        if (!(o.get("cuda_ipc_tensors") instanceof JsonArray a)) return List.of();
        List<WeightPayloads.IpcDescriptor> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) {
            String at = "cuda_ipc_tensors[" + i + "]";
            if (!(a.get(i) instanceof JsonObject m)) throw Fields.type(at, "an object", a.get(i));
            out.add(new WeightPayloads.IpcDescriptor(
                    Fields.string(m.getOrDefault("name", JsonValue.NULL), at + ".name"),
                    Fields.string(m.getOrDefault("dtype", JsonValue.NULL), at + ".dtype"),
                    longs(m.getOrDefault("shape", JsonValue.NULL), at + ".shape"),
                    Fields.present(m, "stride") ? longs(m.get("stride"), at + ".stride") : null,
                    Fields.present(m, "storage_offset") ? Fields.integer(m.get("storage_offset"), at + ".storage_offset") : 0,
                    bytes(m.getOrDefault("ipc_handle", JsonValue.NULL), at + ".ipc_handle"),
                    Fields.present(m, "storage_offset_bytes") ? Fields.integer(m.get("storage_offset_bytes"), at + ".storage_offset_bytes") : 0,
                    Fields.present(m, "device_uuid") ? Fields.string(m.get("device_uuid"), at + ".device_uuid") : null,
                    Fields.present(m, "device_index") ? Fields.int32(m.get("device_index"), at + ".device_index") : 0,
                    Fields.present(m, "event_handle") ? bytes(m.get("event_handle"), at + ".event_handle") : null,
                    Fields.present(m, "event_sync_required") && Fields.bool(m.get("event_sync_required"), at + ".event_sync_required")));
        }
        return out;
    }

    private static List<TensorPayload.FlatTensor> manifest(JsonObject o) {
        JsonValue v = o.get("flattened_bucket_metadata");
        if (!(v instanceof JsonArray a)) throw Fields.type("flattened_bucket_metadata", "a list of objects", v);
        List<TensorPayload.FlatTensor> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) {
            String at = "flattened_bucket_metadata[" + i + "]";
            if (!(a.get(i) instanceof JsonObject m)) throw Fields.type(at, "an object", a.get(i));
            out.add(new TensorPayload.FlatTensor(Fields.string(m.getOrDefault("name", JsonValue.NULL), at + ".name"),
                    Fields.string(m.getOrDefault("dtype", JsonValue.NULL), at + ".dtype"),
                    longs(m.getOrDefault("shape", JsonValue.NULL), at + ".shape"),
                    Fields.integer(m.getOrDefault("start_idx", JsonValue.NULL), at + ".start_idx"),
                    Fields.integer(m.getOrDefault("end_idx", JsonValue.NULL), at + ".end_idx")));
        }
        return out;
    }

    @POST
    @Admin
    @Path("update_weights_from_disk")
    public Response fromDisk(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "model_path")) throw ApiException.badRequest("model_path is required");
        String path = Fields.string(o.get("model_path"), "model_path");
        String format = optString(o, "load_format");
        if (format != null && !format.equals("auto") && !format.equals("safetensors"))
            throw ApiException.badRequest("load_format '" + format + "' is not supported: checkpoints are read as safetensors");
        String version = optString(o, "weight_version");
        return render(weights.loadFromDisk(path, version, optBool(o, "abort_all_requests", false)), version);
    }

    // ---- weight-update groups (SGLang's NCCL path) --------------------------------------

    /** SGLang's default group name, in all three routes. */
    static final String DEFAULT_GROUP = "weight_update_group";

    /**
     * SGLang's {@code init_weights_update_group}: {@code {master_address, master_port,
     * rank_offset, world_size, group_name, backend}}. The trainer's rank 0 hosts the rendezvous;
     * this server joins as rank {@code rank_offset}. Answers once every rank has met, or with a
     * 400 within rollout.weight-group-timeout-seconds (or our {@code timeout_s}).
     */
    @POST
    @Admin
    @Path("init_weights_update_group")
    public Response initGroup(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        for (String key : List.of("master_address", "master_port", "rank_offset", "world_size"))
            if (!Fields.present(o, key)) throw ApiException.badRequest(key + " is required");
        var spec = new WeightGroupOp.Spec(Fields.string(o.get("master_address"), "master_address"), port(o.get("master_port")),
                Fields.int32(o.get("rank_offset"), "rank_offset"), Fields.int32(o.get("world_size"), "world_size"),
                Fields.present(o, "group_name") ? Fields.string(o.get("group_name"), "group_name") : DEFAULT_GROUP,
                Fields.present(o, "backend") ? Fields.string(o.get("backend"), "backend") : "nccl");
        // ours: a deadline of the group's own, for forming it and for each push on it
        Duration timeout = Fields.present(o, "timeout_s") ? Fields.seconds(o.get("timeout_s"), "timeout_s", 0.001, MAX_SESSION_S) : null;
        return render(weights.groups().init(spec, timeout), null);
    }

    /** SGLang's test sends master_port as a string, slime and AReaL as a number: both are taken. */
    private static int port(JsonValue v) {
        if (v instanceof jakarta.json.JsonString s) {
            try {
                return Integer.parseInt(s.getString().trim());
            } catch (NumberFormatException e) {
                throw ApiException.badRequest("master_port must be a port number, got '" + s.getString() + "'");
            }
        }
        return Fields.int32(v, "master_port");
    }

    /**
     * SGLang's {@code update_weights_from_distributed}: {@code {names, dtypes, shapes, group_name,
     * weight_version, abort_all_requests, flush_cache, load_format}}. The trainer's rank 0
     * broadcasts each named tensor in order (or, with {@code "load_format": "flattened_bucket"},
     * all of them as one uint8 tensor); the update then applies as any other push, and takes
     * part in an open begin/end session with our {@code update_id} and {@code bucket_seq}.
     */
    @POST
    @Admin
    @Path("update_weights_from_distributed")
    public Response fromDistributed(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        for (String key : List.of("names", "dtypes", "shapes"))
            if (!Fields.present(o, key)) throw ApiException.badRequest(key + " is required");
        List<String> names = strings(o.get("names"), "names"), dtypes = strings(o.get("dtypes"), "dtypes");
        if (!(o.get("shapes") instanceof JsonArray shapes)) throw Fields.type("shapes", "a list of lists of integers", o.get("shapes"));
        if (dtypes.size() != names.size() || shapes.size() != names.size())
            throw ApiException.badRequest("names, dtypes and shapes must be as long as each other; got " + names.size() + ", "
                    + dtypes.size() + " and " + shapes.size());
        List<WeightGroupOp.Announced> announced = new ArrayList<>();
        for (int i = 0; i < names.size(); i++)
            announced.add(new WeightGroupOp.Announced(names.get(i), dtypes.get(i), longs(shapes.get(i), "shapes[" + i + "]")));
        String format = optString(o, "load_format");
        if (format != null && !format.equals("flattened_bucket"))
            throw ApiException.badRequest("load_format '" + format + "' is not supported here: null (a broadcast per tensor) or 'flattened_bucket'");
        var options = new WeightUpdates.PushOptions(optString(o, "weight_version"), optBool(o, "abort_all_requests", false),
                optString(o, "update_id"), Fields.present(o, "bucket_seq") ? Fields.integer(o.get("bucket_seq"), "bucket_seq") : null);
        String group = Fields.present(o, "group_name") ? Fields.string(o.get("group_name"), "group_name") : DEFAULT_GROUP;
        return render(weights.push(new TensorPayload.Broadcast(group, announced, format != null), options), options.version());
    }

    /** SGLang's {@code destroy_weights_update_group}: {@code {group_name}}. */
    @POST
    @Admin
    @Path("destroy_weights_update_group")
    public Response destroyGroup(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String group = Fields.present(o, "group_name") ? Fields.string(o.get("group_name"), "group_name") : DEFAULT_GROUP;
        return render(weights.groups().destroy(group), null);
    }

    private static List<String> strings(JsonValue v, String name) {
        if (!(v instanceof JsonArray a)) throw Fields.type(name, "a list of strings", v);
        List<String> out = new ArrayList<>(a.size());
        for (int i = 0; i < a.size(); i++) out.add(Fields.string(a.get(i), name + "[" + i + "]"));
        return out;
    }

    /**
     * slime's patched SGLang (docker/patch/latest/sglang.patch, now upstream too):
     * {@code {"restore_weights_before_load": bool, "post_process_quantization": bool}} turns a
     * quantized model's packed weights into a loadable layout before a push and back after it.
     * SGLang runs it on the modules that have a quantization method; the models served here have
     * none (dense fp32/fp16/bf16), so, as SGLang on such a model, there is nothing to do: success.
     */
    @POST
    @Admin
    @Path("post_process_weights")
    public Response postProcessWeights(InputStream body) {
        Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        boolean restore = optBool(o, "restore_weights_before_load", false);
        boolean quantize = optBool(o, "post_process_quantization", false);
        String asked = restore && quantize ? "restore_weights_before_load and post_process_quantization"
                : restore ? "restore_weights_before_load" : quantize ? "post_process_quantization" : "nothing";
        return Replies.json(Replies.ok("Success. Nothing to post-process (" + asked + " asked): the served model is not "
                + "quantized, so its weights are always in the layout pushes load into."));
    }

    /**
     * slime's patched SGLang (docker/patch/latest/sglang-pull_weights.patch):
     * {@code {"local_checkpoint_dir", "source_dir", "target_version"}} makes the server copy
     * a published stream of {@code weight_v{N:06d}/} directories (full checkpoints, or zstd
     * deltas against the previous version with xxh3/blake3/adler32 checksums) into a host-local
     * checkpoint, which a later update_weights_from_disk loads. It loads nothing itself: it is a
     * file sync that writes and prunes files in a directory the request names. Not served: the
     * request is checked, then refused by name (400).
     */
    @POST
    @Admin
    @Path("pull_weights")
    public Response pullWeights(InputStream body) {
        Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        for (String k : new String[] {"local_checkpoint_dir", "source_dir", "target_version"})
            if (!Fields.present(o, k)) throw ApiException.badRequest(k + " is required");
        Fields.string(o.get("local_checkpoint_dir"), "local_checkpoint_dir");
        Fields.string(o.get("source_dir"), "source_dir");
        Fields.integer(o.get("target_version"), "target_version");
        return Replies.failure(400, "pull_weights (slime's patched SGLang: copying the published weight_vNNNNNN versions of "
                + "source_dir, full or delta, into local_checkpoint_dir) is not supported: load a published full version "
                + "directly with update_weights_from_disk {\"model_path\": \"<source_dir>/weight_vNNNNNN\", \"weight_version\"} "
                + "(slime without --update-weight-local-checkpoint-dir and without --update-weight-mode delta)");
    }

    // ---- sessions ---------------------------------------------------------------------

    @POST
    @Admin
    @Path("begin_weight_update")
    public Response begin(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        Duration timeout = Fields.present(o, "timeout_s") ? Fields.seconds(o.get("timeout_s"), "timeout_s", 0.001, MAX_SESSION_S) : null;
        return render(weights.begin(optString(o, "update_id"), timeout), null);
    }

    /** begin_weight_update's timeout_s: a session may stay open for at most a day (docs/api.md, Limits). */
    static final double MAX_SESSION_S = 86_400;

    @POST
    @Admin
    @Path("end_weight_update")
    public Response end(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String version = optString(o, "weight_version");
        return render(weights.end(optString(o, "update_id"), version, optBool(o, "abort_all_requests", false)), version);
    }

    /** Ours: drop a session without applying it. */
    @POST
    @Admin
    @Path("abort_weight_update")
    public Response abortSession(InputStream body) {
        WeightUpdates weights = weights();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        return render(weights.abort(optString(o, "update_id")), null);
    }

    private static Response render(WeightOutcome outcome, String requestedVersion) {
        Object entity;
        if (outcome instanceof WeightOutcome.Applied a) {
            entity = Updated.of(a.update(), requestedVersion);
        } else if (outcome instanceof WeightOutcome.Staged s) {
            entity = new Staged(true, s.fresh() ? "Staged " + s.numTensors() + " tensors in update " + s.updateId() + "."
                    : "Bucket " + s.bucketSeq() + " of update " + s.updateId() + " was staged before; ignored.", s.fresh(), s.updateId());
        } else if (outcome instanceof WeightOutcome.AppliedBefore b) {
            entity = new AlreadyApplied(true, "Bucket " + b.bucketSeq() + " of update " + b.updateId() + " was applied before; ignored.",
                    false, b.weightVersion());
        } else if (outcome instanceof WeightOutcome.Begun b) {
            entity = new Begun(true, "Weight update " + b.updateId() + " begun; buckets are staged until end_weight_update.", b.updateId());
        } else if (outcome instanceof WeightOutcome.Aborted) {
            entity = new Done(true, "Weight update rolled back; the served weights never changed.");
        } else if (outcome instanceof WeightOutcome.GroupJoined j) {
            WeightGroups.Joined g = j.group();
            entity = new GroupFormed(true, "Joined weight update group " + g.groupName() + " as rank " + g.rank() + " of " + g.worldSize() + ".",
                    g.groupName(), g.rank(), g.worldSize(), g.backend());
        } else if (outcome instanceof WeightOutcome.GroupLeft l) {
            entity = new Done(true, "Left weight update group " + l.groupName() + ".");
        } else {
            WeightOutcome.Refused r = (WeightOutcome.Refused) outcome;
            int status = switch (r.reason()) {
                case BAD_REQUEST -> 400;
                case CONFLICT -> 409;
                case TOO_LARGE -> 413;
                case UNAVAILABLE -> 503;
                case FAILED -> 500;
            };
            return Response.status(status).type(MediaType.APPLICATION_JSON).entity(new Done(false, r.message())).build();
        }
        return Response.ok(entity, MediaType.APPLICATION_JSON).build();
    }

    // ---- versions, read-back, checksums ----------------------------------------------

    @GET
    @Path("get_weight_version")
    public Version weightVersion() {
        return new Version(Requests.readyLoop(service).status().weightVersion());
    }

    /** Relabels the served weights. {@code abort_all_requests} defaults to false (newest SGLang: true). */
    @POST
    @Admin
    @Path("update_weight_version")
    public VersionSet updateVersion(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "new_version")) throw ApiException.badRequest("new_version is required");
        String version = Fields.string(o.get("new_version"), "new_version");
        Replies.await(loop.submit(new EngineCommand.SetWeightVersion(version, optBool(o, "abort_all_requests", false))), READ_TIMEOUT_S);
        return new VersionSet(true, "Weight version updated to " + version + ".", version);
    }

    /**
     * SGLang's read-back: {@code {"name": ..., "truncate_size": 100}}, in a JSON body (SGLang's
     * clients send one even with GET) or in the query string. Answers
     * {@code param.tolist()[:truncate_size]}: the first {@code truncate_size} rows of the parameter
     * (a 2-D weight gives a list of full rows, a 1-D one a flat list of values), so that
     * {@code torch.tensor(answer)[0, :5]} works. {@code lm_head.weight} of a tied model is its
     * embedding, as in SGLang.
     */
    @GET
    @Path("get_weights_by_name")
    public Response weightsByNameGet(InputStream body, @Context UriInfo uri) {
        return weightsByName(readRequest(body, uri));
    }

    @POST
    @Path("get_weights_by_name")
    public Response weightsByNamePost(InputStream body, @Context UriInfo uri) {
        return weightsByName(readRequest(body, uri));
    }

    private record ReadRequest(String name, int truncateSize) {}

    private ReadRequest readRequest(InputStream body, UriInfo uri) {
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        MultivaluedMap<String, String> q;
        try {
            q = uri.getQueryParameters();
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("the query string is not valid: " + e.getMessage());
        }
        boolean inQuery = q.containsKey("name") || q.containsKey("truncate_size");
        if (!o.isEmpty() && inQuery)
            throw ApiException.badRequest("give name and truncate_size in the JSON body or in the query string, not both");
        if (!o.isEmpty()) {
            if (!Fields.present(o, "name")) throw ApiException.badRequest("name is required");
            int truncate = Fields.present(o, "truncate_size") ? Fields.int32(o.get("truncate_size"), "truncate_size") : DEFAULT_TRUNCATE;
            return new ReadRequest(Fields.string(o.get("name"), "name"), truncate);
        }
        String name = q.getFirst("name");
        if (name == null) throw ApiException.badRequest("name is required");
        String t = q.getFirst("truncate_size");
        try {
            return new ReadRequest(name, t == null ? DEFAULT_TRUNCATE : Integer.parseInt(t.trim()));
        } catch (NumberFormatException e) {
            throw ApiException.badRequest("truncate_size must be an integer, got '" + (t.length() > 40 ? t.substring(0, 40) + "..." : t) + "'");
        }
    }

    /** SGLang's default truncate_size. */
    private static final int DEFAULT_TRUNCATE = 100;

    private Response weightsByName(ReadRequest req) {
        EngineLoop loop = Requests.readyLoop(service);
        int truncate = req.truncateSize();
        if (truncate <= 0) throw ApiException.badRequest("truncate_size must be at least 1, got " + truncate);
        Map<String, List<Long>> shapes = loop.info().parameterShapes();
        String name = req.name();
        // a tied head is the embedding itself: the checkpoint has no lm_head.weight and SGLang answers the embedding
        if (name.equals(LM_HEAD) && !shapes.containsKey(LM_HEAD) && shapes.containsKey(EMBED)) name = EMBED;
        List<Long> shape = loop.info().readableShape(name);   // a parameter, or transformers 5's stacked experts
        if (shape == null) throw ApiException.badRequest("unknown parameter " + req.name());
        long rowSize = 1;
        for (int i = 1; i < shape.size(); i++) rowSize *= shape.get(i);
        long rows = shape.isEmpty() ? 1 : Math.min(truncate, shape.get(0));
        if (rows * rowSize > MAX_READ_BACK)
            throw ApiException.badRequest("truncate_size " + truncate + " asks for " + rows + " rows of " + rowSize + " values of "
                    + req.name() + " " + shape + "; at most " + MAX_READ_BACK + " values are answered: ask for at most "
                    + Math.max(1, MAX_READ_BACK / rowSize) + " rows");
        ParameterValues values = Replies.await(loop.submit(new EngineCommand.ReadParameter(name, (int) rows)), READ_TIMEOUT_S);
        StreamingOutput out = stream -> writeRows(stream, values);
        return Response.ok(out, MediaType.APPLICATION_JSON).build();
    }

    private static final String LM_HEAD = "lm_head.weight";
    private static final String EMBED = "model.embed_tokens.weight";

    /**
     * Python's {@code tolist()} of the rows read, as JSON: nested lists by the parameter's
     * dimensions, each float32 exactly (as a double). NaN and infinities are null, as orjson
     * writes them in SGLang.
     */
    static void writeRows(OutputStream stream, ParameterValues v) throws IOException {
        List<Long> shape = v.shape();
        float[] values = v.values();
        long rowSize = v.rowSize();
        int[] dims = new int[Math.max(1, shape.size())];
        dims[0] = shape.size() <= 1 ? values.length : (int) (values.length / rowSize);
        for (int i = 1; i < shape.size(); i++) dims[i] = (int) (long) shape.get(i);
        Writer w = new BufferedWriter(new OutputStreamWriter(stream, StandardCharsets.UTF_8), 1 << 16);
        writeLevel(w, values, dims, 0, new int[] {0});
        w.flush();
    }

    private static void writeLevel(Writer w, float[] values, int[] dims, int level, int[] at) throws IOException {
        w.write('[');
        for (int i = 0; i < dims[level]; i++) {
            if (i > 0) w.write(", ");
            if (level + 1 < dims.length) {
                writeLevel(w, values, dims, level + 1, at);
            } else {
                float f = values[at[0]++];
                w.write(Float.isFinite(f) ? Double.toString(f) : "null");
            }
        }
        w.write(']');
    }

    /**
     * SGLang's {@code /weights_checker}. Action "checksum" (the default): SHA-256 of each
     * parameter's bytes in the engine's dtype (little-endian, row-major), by HF name, and one
     * digest over all of them. Actions "snapshot", "reset_tensors" and "compare" (slime's
     * --check-weight-update-equal): a host copy of the weights, noise in them until the next push,
     * and a bit-for-bit comparison with the copy. As in SGLang, a failure is
     * {@code {"success": false, "message"}}: 400 for a caller's mistake or weights that differ;
     * ours, 409 where the engine's state refuses (requests running, weights released).
     */
    @POST
    @Path("weights_checker")
    public Response checker(InputStream body, @Context HttpHeaders headers) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String action = Fields.present(o, "action") ? Fields.string(o.get("action"), "action") : "checksum";
        EngineCommand<WeightCheck> command = switch (action) {
            case "checksum" -> null;
            case "snapshot" -> new EngineCommand.SnapshotWeights();
            case "reset_tensors" -> new EngineCommand.ResetWeights(skipList(o));
            case "compare" -> new EngineCommand.CompareWeights(skipList(o));
            default -> throw ApiException.badRequest("action '" + action + "' is not supported; use 'checksum', 'snapshot', "
                    + "'reset_tensors' or 'compare'");
        };
        if (command == null) return Response.ok(checksums(loop), MediaType.APPLICATION_JSON).build();
        // they take model-sized host memory, or destroy the served weights: control actions, where reading is not
        if (!action.equals("compare")) ApiKeys.requireAdmin(service.settings(), headers);
        WeightCheck check;
        try {
            check = Replies.await(loop.submit(command), WEIGHT_CHECK_TIMEOUT_S);
        } catch (ApiException e) {
            return Replies.failure(e.status(), e.getMessage());
        }
        if (!check.equal()) return Replies.failure(400, compareFailure(check));
        String detail = switch (action) {
            case "snapshot" -> " Snapshot of " + check.numParameters() + " parameters taken; it holds " + check.snapshotBytes()
                    + " bytes of host memory until the next snapshot.";
            case "reset_tensors" -> " " + check.numParameters() + " parameters filled with noise; generation waits until every "
                    + "one is pushed or loaded again.";
            default -> " All " + check.numParameters() + " parameters equal the snapshot, bit for bit.";
        };
        return Replies.json(Replies.ok("Success." + detail).add("num_parameters", check.numParameters())
                .add("snapshot_bytes", check.snapshotBytes()));
    }

    @GET
    @Path("weights_checker")
    public Response checkerGet(InputStream body, @Context HttpHeaders headers) {
        return checker(body, headers);
    }

    /**
     * SGLang's {@code skip_tensor_list} (newer slime and miles send it, null or a list): reset and
     * compare leave alone every parameter whose name contains one of these.
     */
    private static List<String> skipList(JsonObject o) {
        if (!Fields.present(o, "skip_tensor_list")) return List.of();
        JsonValue v = o.get("skip_tensor_list");
        if (!(v instanceof JsonArray a)) throw Fields.type("skip_tensor_list", "a list of strings", v);
        List<String> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) {
            String p = Fields.string(a.get(i), "skip_tensor_list[" + i + "]");
            if (p.isEmpty()) throw ApiException.badRequest("skip_tensor_list[" + i + "] is empty: it would skip every parameter");
            out.add(p);
        }
        return out;
    }

    /** How many differing parameters the failure message describes; the others are counted. */
    static final int DIFFERENCES_SHOWN = 10;

    /** SGLang's compare failure: "check tensor equality failed:" and a line per parameter that differs. */
    static String compareFailure(WeightCheck check) {
        List<WeightCheck.Difference> d = check.differences();
        StringBuilder b = new StringBuilder("check tensor equality failed: " + d.size() + " of " + check.numParameters()
                + " parameters differ from the snapshot:");
        for (WeightCheck.Difference x : d.subList(0, Math.min(DIFFERENCES_SHOWN, d.size())))
            b.append("\nname=").append(x.name()).append(" max_abs_err=").append(x.maxAbsErr()).append(" mean_abs_err=")
                    .append(x.meanAbsErr()).append(" num_differing=").append(x.numDiffering()).append(" of ").append(x.numel());
        if (d.size() > DIFFERENCES_SHOWN) b.append("\n(and ").append(d.size() - DIFFERENCES_SHOWN).append(" more)");
        return b.toString();
    }

    private static Checksums checksums(EngineLoop loop) {
        WeightChecksums sums = Replies.await(loop.submit(new EngineCommand.Checksums()), CHECKSUM_TIMEOUT_S);
        int size = sums.ranks().size();
        List<RankChecksums> ranks = new ArrayList<>();
        for (int r = 0; r < size; r++)
            ranks.add(new RankChecksums(new java.util.TreeMap<>(sums.ranks().get(r)), sums.combined(r), sums.dtype(),
                    new Parallelism(r, size, 0, 1, 0, 1, r, size)));
        return new Checksums(true, "Checksums of " + sums.perParameter().size() + " parameters (sha256)"
                + (size > 1 ? ", of each of " + size + " tensor-parallel ranks' shards." : "."), sums.weightVersion(), ranks);
    }

    // ----------------------------------------------------------------------------------

    /** The weight path, for control calls: these work while paused or released, but not before start-up ends. */
    private WeightUpdates weights() {
        Requests.readyLoop(service);
        return service.weights();
    }

    private static long contentLength(HttpHeaders headers) {
        String v = headers.getHeaderString(HttpHeaders.CONTENT_LENGTH);
        try {
            return v == null ? -1 : Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static long[] longs(JsonValue v, String name) {
        int[] ints = Fields.intArray(v, name);
        long[] out = new long[ints.length];
        for (int i = 0; i < ints.length; i++) out[i] = ints[i];
        return out;
    }

    private static byte[] bytes(JsonValue v, String name) {
        try {
            return Base64.getDecoder().decode(Fields.string(v, name));
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest(name + " is not base64");
        }
    }

    private static String optString(JsonObject o, String key) {
        return Fields.present(o, key) ? Fields.string(o.get(key), key) : null;
    }

    private static boolean optBool(JsonObject o, String key, boolean dflt) {
        return Fields.present(o, key) ? Fields.bool(o.get(key), key) : dflt;
    }
}
