package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.WeightUpdate;
import dev.rollout.model.TensorPayloads;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import dev.rollout.runtime.WeightPayloads;
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
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.UriInfo;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Weight updates, SGLang-compatible: {@code /update_weights_from_tensor} (safetensors in base64,
 * or one flat bucket plus a manifest; or a raw safetensors body), {@code /update_weights_from_disk},
 * versions, read-back and checksums, and the begin/end session that makes a multi-bucket update
 * atomic. Pickled payloads are refused: they are code, not data.
 */
@Path("/")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class WeightResource {
    /** begin_weight_update's timeout_s: at most a day (docs/api.md, Limits). */
    static final double MAX_SESSION_S = 86_400;
    /**
     * get_weights_by_name's truncate_size: the answer is a JSON list built on the heap (about
     * 60 bytes a value), so a whole embedding (19 M values for the default model) asked 16
     * times at once would take the heap; a million values is 60 MB.
     */
    static final int MAX_READ_BACK = 1 << 20;

    @Inject
    EngineService service;

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
        EngineLoop loop = controlLoop();
        ServerSettings s = service.settings();
        if (MediaType.APPLICATION_OCTET_STREAM_TYPE.isCompatible(headers.getMediaType())
                && !MediaType.WILDCARD_TYPE.equals(headers.getMediaType())) {
            var q = uri.getQueryParameters();
            Long seq;
            try {
                seq = q.getFirst("bucket_seq") == null ? null : Long.valueOf(q.getFirst("bucket_seq"));
            } catch (NumberFormatException e) {
                throw ApiException.badRequest("bucket_seq must be an integer");
            }
            WeightUpdate update;
            try {
                update = WeightPayloads.readSafetensors(body, contentLength(headers), s.maxWeightBodyBytes(), q.getFirst("weight_version"),
                        Boolean.parseBoolean(q.getFirst("abort_all_requests")), "safetensors-binary");
            } catch (WeightPayloads.BodyTooLarge e) {
                throw new ApiException(413, e.getMessage());
            } catch (IOException e) {
                throw ApiException.badRequest("could not read the tensors: " + e.getMessage());
            }
            return push(loop, update, q.getFirst("update_id"), seq);
        }
        try (TensorPushBody b = TensorPushBody.read(body, contentLength(headers), s.maxWeightBodyBytes())) {
            JsonObject o = b.fields();
            String version = optString(o, "weight_version");
            boolean abortAll = optBool(o, "abort_all_requests", false);
            String updateId = optString(o, "update_id");
            Long seq = Fields.present(o, "bucket_seq") ? Fields.integer(o.get("bucket_seq"), "bucket_seq") : null;
            String format = Fields.present(o, "load_format") ? Fields.string(o.get("load_format"), "load_format") : "safetensors";
            if (format.equals("cuda_ipc")) return push(loop, cudaIpc(o, s, version, abortAll), updateId, seq);
            ByteBuffer raw = b.payload();  // serialized_named_tensors[0], decoded into native memory
            boolean pickled = WeightPayloads.looksLikePickle(raw);
            if (pickled && !Fields.present(o, "flattened_bucket_metadata") && s.allowPickle()) {
                byte[] pickle = new byte[raw.remaining()];  // IPC handles and metadata: small
                raw.duplicate().get(pickle);
                try {
                    return push(loop, WeightPayloads.fromPickle(pickle, s.engine().device(), version, abortAll), updateId, seq);
                } catch (IOException e) {
                    return Replies.failure(400, "could not read the pickled tensors: " + e.getMessage());
                }
            }
            WeightPayloads.Format f = switch (format) {
                case "safetensors", "direct" -> WeightPayloads.Format.SAFETENSORS;
                case "flattened_bucket" -> Fields.present(o, "flattened_bucket_metadata") || !pickled
                        ? WeightPayloads.Format.FLATTENED_BUCKET : WeightPayloads.Format.SAFETENSORS;  // SGLang's pickled bucket
                default -> throw ApiException.badRequest("load_format '" + format
                        + "' is not supported: use null/'safetensors' (safetensors bytes), 'flattened_bucket' or 'cuda_ipc'");
            };
            WeightUpdate update = decode(raw, f, f == WeightPayloads.Format.FLATTENED_BUCKET ? manifest(o) : null, version, abortAll,
                    f == WeightPayloads.Format.FLATTENED_BUCKET ? "flattened_bucket" : "safetensors");
            return push(loop, update, updateId, seq);
        }
    }

    /** Ours: {@code "load_format": "cuda_ipc", "cuda_ipc_tensors": [{name, dtype, shape, stride, ipc_handle, ...}]}. */
    private static WeightUpdate cudaIpc(JsonObject o, ServerSettings s, String version, boolean abortAll) {
        if (!(o.get("cuda_ipc_tensors") instanceof JsonArray a) || a.isEmpty())
            throw ApiException.badRequest("load_format 'cuda_ipc' needs cuda_ipc_tensors: [{name, dtype, shape, stride, storage_offset, "
                    + "ipc_handle, storage_offset_bytes, device_uuid}, ...]");
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
        try {
            return WeightPayloads.fromCudaIpc(out, s.engine().device(), version, abortAll);
        } catch (IOException | RuntimeException e) {
            throw ApiException.badRequest("could not open the CUDA IPC tensors: " + e.getMessage());
        }
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

    private static WeightUpdate decode(ByteBuffer raw, WeightPayloads.Format format, List<TensorPayloads.FlatEntry> manifest,
                                       String version, boolean abortAll, String transport) {
        try {
            return WeightPayloads.decode(raw, format, manifest, version, abortAll, transport);
        } catch (IOException e) {
            throw ApiException.badRequest("could not read the tensors: " + e.getMessage());
        }
    }

    private static List<TensorPayloads.FlatEntry> manifest(JsonObject o) {
        if (!Fields.present(o, "flattened_bucket_metadata"))
            throw ApiException.badRequest("load_format 'flattened_bucket' needs flattened_bucket_metadata: "
                    + "[{name, dtype, shape, start_idx, end_idx}, ...]");
        JsonValue v = o.get("flattened_bucket_metadata");
        if (!(v instanceof JsonArray a)) throw Fields.type("flattened_bucket_metadata", "a list of objects", v);
        List<TensorPayloads.FlatEntry> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) {
            String at = "flattened_bucket_metadata[" + i + "]";
            if (!(a.get(i) instanceof JsonObject m)) throw Fields.type(at, "an object", a.get(i));
            int[] shape = Fields.intArray(m.get("shape") == null ? JsonValue.NULL : m.get("shape"), at + ".shape");
            long[] dims = new long[shape.length];
            for (int d = 0; d < dims.length; d++) dims[d] = shape[d];
            out.add(new TensorPayloads.FlatEntry(Fields.string(m.getOrDefault("name", JsonValue.NULL), at + ".name"),
                    Fields.string(m.getOrDefault("dtype", JsonValue.NULL), at + ".dtype"), dims,
                    Fields.integer(m.getOrDefault("start_idx", JsonValue.NULL), at + ".start_idx"),
                    Fields.integer(m.getOrDefault("end_idx", JsonValue.NULL), at + ".end_idx")));
        }
        return out;
    }

    /** Applies a bucket now, or stages it when a begin/end session is open. */
    private Response push(EngineLoop loop, WeightUpdate update, String updateId, Long bucketSeq) {
        WeightUpdateSessions sessions = service.updateSessions();
        String version = update.version();
        String problem = Replies.await(loop.call(e -> e.checkUpdate(update)), 30);
        if (problem != null) {
            update.release();
            return Replies.failure(400, problem);
        }
        if (sessions.isOpen()) {
            if (version != null) {
                update.release();
                return Replies.failure(400, "weight_version belongs on end_weight_update while an update session is open");
            }
            int n = update.tensors().size();
            boolean fresh;
            try {
                fresh = sessions.stage(updateId, bucketSeq, update);
            } catch (WeightUpdateSessions.Refused r) {
                return Replies.failure(r.status, r.getMessage());
            }
            return Replies.json(Replies.ok(fresh ? "Staged " + n + " tensors in update " + sessions.openId() + "."
                    : "Bucket " + bucketSeq + " of update " + sessions.openId() + " was staged before; ignored.")
                    .add("staged", fresh));
        }
        WeightUpdateSessions.Outcome closed = sessions.closed(updateId);
        if (closed != null) {
            update.release();
            return Replies.failure(409, "update " + updateId + " is no longer open: it was " + closed.result() + " (" + closed.message() + ")");
        }
        if (!sessions.firstTime(updateId, bucketSeq)) {
            update.release();
            return Replies.json(Replies.ok("Bucket " + bucketSeq + " of update " + updateId + " was applied before; ignored.")
                    .add("applied", false).add("weight_version", loop.engine().weightVersion()));
        }
        ServerSettings s = service.settings();
        try {
            LlmEngine.UpdateRecord r = Replies.await(loop.updateWeights(update, wait(s)), s.weightUpdateWaitSeconds() + 30);
            return Replies.json(updated(r, version));
        } catch (ApiException e) {
            sessions.forget(updateId, bucketSeq);
            return Replies.failure(e.status(), e.getMessage());
        }
    }

    private static JsonObjectBuilder updated(LlmEngine.UpdateRecord r, String version) {
        return Replies.ok("Success." + (version != null ? " Weight version updated to " + version + "." : ""))
                .add("applied", true)
                .add("weight_version", r.version())
                .add("num_tensors", r.numTensors())
                .add("bytes", r.bytes())
                .add("seconds", r.seconds())
                .add("num_paused_requests", 0);
    }

    private static Duration wait(ServerSettings s) {
        return Duration.ofMillis((long) (s.weightUpdateWaitSeconds() * 1000));
    }

    @POST
    @Admin
    @Path("update_weights_from_disk")
    public Response fromDisk(InputStream body) {
        EngineLoop loop = controlLoop();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "model_path")) throw ApiException.badRequest("model_path is required");
        java.nio.file.Path dir = Fields.path(o.get("model_path"), "model_path");
        String path = dir.toString();
        String format = optString(o, "load_format");
        if (format != null && !format.equals("auto") && !format.equals("safetensors"))
            throw ApiException.badRequest("load_format '" + format + "' is not supported: checkpoints are read as safetensors");
        if (service.updateSessions().isOpen())
            return Replies.failure(409, "a begin/end weight update is open; end or abort it first");
        if (!Files.isDirectory(dir)) return Replies.failure(400, "model_path " + path + " is not a directory");
        // Read on this thread: only the parameter names come from the engine thread.
        var table = Replies.await(loop.call(e -> e.model().parameters()), 30);
        WeightUpdate update;
        try {
            update = WeightPayloads.fromDisk(dir, table, optString(o, "weight_version"), optBool(o, "abort_all_requests", false));
        } catch (IOException | RuntimeException e) {
            return Replies.failure(400, "could not read " + path + ": " + e.getMessage());
        }
        return push(loop, update, null, null);
    }

    // ---- sessions ---------------------------------------------------------------------

    @POST
    @Admin
    @Path("begin_weight_update")
    public Response begin(InputStream body) {
        controlLoop();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        Duration timeout = Fields.present(o, "timeout_s") ? Fields.seconds(o.get("timeout_s"), "timeout_s", 0.001, MAX_SESSION_S)
                : Duration.ofMillis((long) (service.settings().weightSessionTimeoutSeconds() * 1000));
        try {
            String id = service.updateSessions().begin(optString(o, "update_id"), timeout);
            return Replies.json(Replies.ok("Weight update " + id + " begun; buckets are staged until end_weight_update.")
                    .add("update_id", id));
        } catch (WeightUpdateSessions.Refused r) {
            return Replies.failure(r.status, r.getMessage());
        }
    }

    @POST
    @Admin
    @Path("end_weight_update")
    public Response end(InputStream body) {
        EngineLoop loop = controlLoop();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String version = optString(o, "weight_version");
        ServerSettings s = service.settings();
        try {
            CompletableFuture<LlmEngine.UpdateRecord> f = service.updateSessions().end(optString(o, "update_id"), version,
                    optBool(o, "abort_all_requests", false), wait(s), loop);
            return Replies.json(updated(Replies.await(f, s.weightUpdateWaitSeconds() + 30), version));
        } catch (WeightUpdateSessions.Refused r) {
            return Replies.failure(r.status, r.getMessage());
        } catch (ApiException e) {
            return Replies.failure(e.status(), "update rolled back, weights unchanged: " + e.getMessage());
        }
    }

    /** Ours: drop a session without applying it. */
    @POST
    @Admin
    @Path("abort_weight_update")
    public Response abortSession(InputStream body) {
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        try {
            service.updateSessions().abort(optString(o, "update_id"), "aborted by abort_weight_update");
            return Replies.json(Replies.ok("Weight update rolled back; the served weights never changed."));
        } catch (WeightUpdateSessions.Refused r) {
            return Replies.failure(r.status, r.getMessage());
        }
    }

    // ---- versions, read-back, checksums ----------------------------------------------

    @GET
    @Path("get_weight_version")
    public JsonObject weightVersion() {
        return JSON.createObjectBuilder().add("weight_version", Requests.readyLoop(service).engine().weightVersion()).build();
    }

    /** Relabels the served weights. {@code abort_all_requests} defaults to false (newest SGLang: true). */
    @POST
    @Admin
    @Path("update_weight_version")
    public Response updateVersion(InputStream body) {
        EngineLoop loop = controlLoop();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "new_version")) throw ApiException.badRequest("new_version is required");
        String version = Fields.string(o.get("new_version"), "new_version");
        boolean abortAll = optBool(o, "abort_all_requests", false);
        Replies.await(loop.call(e -> {
            if (abortAll) e.abort(rid -> true, "aborted by update_weight_version");
            e.setWeightVersion(version);
            return null;
        }), 30);
        return Replies.json(Replies.ok("Weight version updated to " + version + ".").add("new_version", version));
    }

    @GET
    @Path("get_weights_by_name")
    public Response weightsByNameGet(@QueryParam("name") String name, @QueryParam("truncate_size") Integer truncate) {
        return weightsByName(name, truncate == null ? 100 : truncate);
    }

    /** The first {@code truncate_size} values of a parameter (flattened), by HF name. */
    @POST
    @Path("get_weights_by_name")
    public Response weightsByNamePost(InputStream body) {
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "name")) throw ApiException.badRequest("name is required");
        int truncate = Fields.present(o, "truncate_size") ? Fields.int32(o.get("truncate_size"), "truncate_size") : 100;
        return weightsByName(Fields.string(o.get("name"), "name"), truncate);
    }

    private Response weightsByName(String name, int truncate) {
        EngineLoop loop = Requests.readyLoop(service);
        if (name == null) throw ApiException.badRequest("name is required");
        if (truncate <= 0 || truncate > MAX_READ_BACK)
            throw ApiException.badRequest("truncate_size must be between 1 and " + MAX_READ_BACK + ", got " + truncate);
        float[] values = Replies.await(loop.call(e -> {
            if (!e.model().weightsReleased() && !e.model().parameters().contains(name))
                throw new IllegalArgumentException("unknown parameter " + name);
            return e.readParameterPrefix(name, truncate);
        }), 30);
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (float f : values) a.add((double) f);
        return Response.ok(a.build().toString(), MediaType.APPLICATION_JSON).build();
    }

    /**
     * SGLang's {@code /weights_checker} with action "checksum": SHA-256 of each parameter's bytes
     * in the engine's dtype (little-endian, row-major), by HF name, and one digest over all of them.
     */
    @POST
    @Path("weights_checker")
    public Response checker(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String action = Fields.present(o, "action") ? Fields.string(o.get("action"), "action") : "checksum";
        if (!action.equals("checksum")) return Replies.failure(400, "action '" + action + "' is not supported; use 'checksum'");
        Map<String, String> sums = Replies.await(loop.call(LlmEngine::checksums), 120);
        JsonObjectBuilder per = JSON.createObjectBuilder();
        sums.forEach(per::add);
        JsonObjectBuilder rank = JSON.createObjectBuilder()
                .add("checksums", per)
                .add("per_gpu_checksum", LlmEngine.combinedChecksum(sums))
                .add("dtype", loop.engine().model().dtype().name())
                .add("parallelism_info", JSON.createObjectBuilder().add("tp_rank", 0).add("tp_size", 1).add("dp_rank", 0)
                        .add("dp_size", 1).add("pp_rank", 0).add("pp_size", 1).add("rank", 0).add("size", 1));
        return Replies.json(Replies.ok("Checksums of " + sums.size() + " parameters (sha256).")
                .add("weight_version", loop.engine().weightVersion())
                .add("ranks", JSON.createArrayBuilder().add(rank)));
    }

    @GET
    @Path("weights_checker")
    public Response checkerGet() {
        return checker(null);
    }

    // ----------------------------------------------------------------------------------

    /** The loop, for control calls: these work while paused or released, but not before start-up ends. */
    private EngineLoop controlLoop() {
        return Requests.readyLoop(service);
    }

    private static String optString(JsonObject o, String key) {
        return Fields.present(o, key) ? Fields.string(o.get(key), key) : null;
    }

    private static boolean optBool(JsonObject o, String key, boolean dflt) {
        return Fields.present(o, key) ? Fields.bool(o.get(key), key) : dflt;
    }
}
