package dev.rollout.weights;

import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.UpdateRecord;
import dev.rollout.engine.WeightUpdate;
import dev.rollout.model.ExpertNames;
import dev.rollout.model.StepBroadcast;
import dev.rollout.model.TensorPayloads;
import dev.rollout.dist.WeightGroupOp;
import org.bytedeco.pytorch.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The weight path, in one place: a push is decoded from its transport (safetensors, a flat
 * bucket, CUDA IPC, allowed pickles), checked against the served parameters on the caller's
 * thread, then staged in the open session or handed to the engine thread as one {@link
 * EngineCommand.UpdateWeights}, which checks again and applies it between two steps. Sessions
 * and idempotency keys are {@link UpdateSessions}'. One method per action, each answering a
 * {@link WeightOutcome}; the HTTP resource only parses the request and renders the outcome.
 */
public final class WeightUpdates implements AutoCloseable {
    /** How long a caller waits for the engine beyond the update's own wait, before answering 503. */
    private static final Duration ANSWER_MARGIN = Duration.ofSeconds(30);

    /**
     * @param updateWait     how long an update waits for running requests to finish (rollout.weight-update-wait-seconds)
     * @param sessionTimeout a session's deadline when begin names none
     * @param allowPickle    read SGLang/veRL pickles through the allow-list (rollout.allow-pickle)
     * @param device         where CUDA IPC tensors are opened
     * @param groupTimeout   how long forming a weight-update group, and each broadcast push, may take
     */
    public record Settings(Duration updateWait, Duration sessionTimeout, boolean allowPickle, String device, Duration groupTimeout) {}

    /**
     * @param version   the weight version to serve once applied, or null to keep the current one
     * @param abortAll  abort running requests rather than wait for them
     * @param updateId  the session this bucket belongs to, or (outside one) its idempotency key with bucketSeq
     */
    public record PushOptions(String version, boolean abortAll, String updateId, Long bucketSeq) {}

    private final EngineLoop loop;
    private final Settings settings;
    private final UpdateSessions sessions = new UpdateSessions();
    private final WeightGroups groups;

    public WeightUpdates(EngineLoop loop, Settings settings) {
        this.loop = loop;
        this.settings = settings;
        loop.addHousekeeping(sessions);
        List<long[]> shapes = loop.info().parameterShapes().values().stream().map(s -> s.stream().mapToLong(Long::longValue).toArray()).toList();
        int tpSize = loop.info().tpSize();
        groups = new WeightGroups(new WeightGroups.Settings(settings.groupTimeout(), settings.device(), tpSize, 0,
                WeightGroups.maxPushBytes(shapes)),
                tpSize == 1 ? WeightGroups.Ranks.ONE : betweenSteps());
    }

    /**
     * At tensor-parallel size &gt; 1, each group operation runs on the engine thread, between
     * steps, which sends it to the other ranks ({@link EngineCommand.WeightGroupCall}). A step
     * may be running when it is asked, and each rank's part has the group's deadline.
     */
    private WeightGroups.Ranks betweenSteps() {
        return new WeightGroups.Ranks() {
            @Override
            public <T> WeightGroupOp.Outcome<T> run(WeightGroupOp op, Duration bound, Callable<T> here)
                    throws WeightGroups.Refusal {
                EngineCommand.WeightGroupCall<T> call = new EngineCommand.WeightGroupCall<>(op, bound, here);
                CompletableFuture<WeightGroupOp.Outcome<T>> answer = loop.submit(call);
                Duration start = settings.updateWait();
                try {
                    try {
                        return answer.get(start.toMillis(), TimeUnit.MILLISECONDS);
                    } catch (TimeoutException e) {
                        if (call.claim())   // not started: no rank will run it
                            throw new WeightGroups.Refusal(WeightOutcome.Reason.UNAVAILABLE, "the engine did not start the group's "
                                    + op.op().name().toLowerCase(java.util.Locale.ROOT) + " within " + start.toSeconds() + " s; nothing was done");
                        // started: its part and its report have deadlines of their own, and its outcome must be settled here
                        Duration rest = StepBroadcast.groupOpLimit(bound).plusSeconds(60);
                        return answer.get(rest.toMillis(), TimeUnit.MILLISECONDS);
                    }
                } catch (ExecutionException e) {
                    throw new WeightGroups.Refusal(WeightOutcome.Reason.UNAVAILABLE, e.getCause().getMessage());
                } catch (TimeoutException e) {
                    throw new WeightGroups.Refusal(WeightOutcome.Reason.UNAVAILABLE, "the ranks did not finish the group's "
                            + op.op().name().toLowerCase(java.util.Locale.ROOT) + " within its deadlines");
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new WeightGroups.Refusal(WeightOutcome.Reason.UNAVAILABLE, "interrupted while the ranks ran the group's operation");
                }
            }
        };
    }

    /** The weight-update groups joined (init_weights_update_group, destroy_weights_update_group). */
    public WeightGroups groups() {
        return groups;
    }

    @Override
    public void close() {
        groups.close();
    }

    /** Pushes tensors: staged when a session is open, applied now otherwise. */
    public WeightOutcome push(TensorPayload payload, PushOptions options) {
        WeightUpdate update;
        try {
            update = payload instanceof TensorPayload.Broadcast b ? receive(b, options) : decode(payload, options);
        } catch (WeightGroups.Refusal e) {
            return refused(e.reason, e.getMessage());
        } catch (WeightPayloads.BodyTooLarge e) {
            return refused(WeightOutcome.Reason.TOO_LARGE, e.getMessage());
        } catch (Undecodable e) {
            return refused(WeightOutcome.Reason.BAD_REQUEST, e.getMessage());
        }
        try {
            update = withExpertNames(update);
        } catch (IllegalArgumentException e) {
            update.release();
            return refused(WeightOutcome.Reason.BAD_REQUEST, e.getMessage());
        }
        String problem = check(update);
        if (problem != null) {
            update.release();
            return refused(WeightOutcome.Reason.BAD_REQUEST, problem);
        }
        UpdateSessions.Route route = sessions.route(options.updateId(), options.bucketSeq(), update);
        if (route instanceof UpdateSessions.Route.Done done) {
            return done.outcome() instanceof WeightOutcome.AppliedBefore before
                    ? new WeightOutcome.AppliedBefore(before.updateId(), before.bucketSeq(), loop.status().weightVersion())
                    : done.outcome();
        }
        WeightOutcome outcome = apply(update);
        // a refusal frees the key for a retry; an engine that did not answer may still apply it, so that key stays
        if (outcome instanceof WeightOutcome.Refused r && r.reason() != WeightOutcome.Reason.UNAVAILABLE)
            sessions.unclaim(options.updateId(), options.bucketSeq());
        return outcome;
    }

    /** Reads every parameter from a checkpoint directory the server can see, and applies them as one update. */
    public WeightOutcome loadFromDisk(String modelPath, String version, boolean abortAll) {
        Path dir;
        try {
            dir = Path.of(modelPath);
        } catch (InvalidPathException e) {
            return refused(WeightOutcome.Reason.BAD_REQUEST, "model_path is not a valid path: " + e.getReason());
        }
        if (sessions.isOpen())
            return refused(WeightOutcome.Reason.CONFLICT, "a begin/end weight update is open; end or abort it first");
        if (!Files.isDirectory(dir)) return refused(WeightOutcome.Reason.BAD_REQUEST, "model_path " + modelPath + " is not a directory");
        WeightUpdate update;
        try {  // read on this thread: the engine thread only copies
            update = WeightPayloads.fromDisk(dir, loop.info().parameterShapes().keySet(), version, abortAll);
        } catch (IOException | RuntimeException e) {
            return refused(WeightOutcome.Reason.BAD_REQUEST, "could not read " + modelPath + ": " + e.getMessage());
        }
        String problem = check(update);
        if (problem != null) {
            update.release();
            return refused(WeightOutcome.Reason.BAD_REQUEST, problem);
        }
        WeightOutcome outcome = apply(update);
        if (outcome instanceof WeightOutcome.Applied a) noteDiskLoad(modelPath, a.update());
        return outcome;
    }

    /** The checkpoint last loaded from disk, as the caller named it, and when it was applied. */
    private record DiskLoad(String modelPath, long atMillis) {}

    private DiskLoad lastDiskLoad;  // guarded by this

    /** Two loads answered out of order keep the one the engine applied last. */
    private synchronized void noteDiskLoad(String modelPath, UpdateRecord r) {
        if (lastDiskLoad == null || r.atMillis() >= lastDiskLoad.atMillis()) lastDiskLoad = new DiskLoad(modelPath, r.atMillis());
    }

    /**
     * The {@code model_path} of the last update_weights_from_disk that applied, as given, or null
     * before any: SGLang's get_model_info reports it (a tensor push does not change it).
     */
    public synchronized String lastDiskPath() {
        return lastDiskLoad == null ? null : lastDiskLoad.modelPath();
    }

    /** Opens a session; {@code timeout} null takes the configured default. */
    public WeightOutcome begin(String updateId, Duration timeout) {
        return sessions.begin(updateId, timeout == null ? settings.sessionTimeout() : timeout);
    }

    /** Applies everything the open session staged, as one update; on failure nothing changed. */
    public WeightOutcome end(String updateId, String version, boolean abortAll) {
        UpdateSessions.Take take = sessions.take(updateId, version, abortAll);
        if (take instanceof UpdateSessions.Take.Nothing nothing) return nothing.refusal();
        UpdateSessions.Take.Ready ready = (UpdateSessions.Take.Ready) take;
        CompletableFuture<UpdateRecord> applied = loop.submit(new EngineCommand.UpdateWeights(ready.update(), settings.updateWait()));
        applied.whenComplete((r, t) -> recordEnd(ready.updateId(), r, t));  // even if the caller stopped waiting
        WeightOutcome outcome = await(applied);
        // and on this thread before the answer, so that /rl/state read right after it shows this session
        if (applied.isDone()) applied.handle((r, t) -> recordEnd(ready.updateId(), r, t));
        if (!(outcome instanceof WeightOutcome.Refused r)) return outcome;
        return refused(r.reason(), r.reason() == WeightOutcome.Reason.UNAVAILABLE
                ? r.message() + "; the update may still apply: see last_update_session in /rl/state"
                : "update rolled back, weights unchanged: " + r.message());
    }

    private Void recordEnd(String updateId, UpdateRecord r, Throwable t) {
        if (t == null) sessions.record(updateId, SessionOutcome.Result.COMMITTED, "applied " + r.numTensors() + " tensors as version " + r.version());
        else sessions.record(updateId, SessionOutcome.Result.ROLLED_BACK, (t.getCause() != null ? t.getCause() : t).getMessage());
        return null;
    }

    /** Drops the open session without applying it. */
    public WeightOutcome abort(String updateId) {
        return sessions.abort(updateId, "aborted by abort_weight_update");
    }

    /** The open session, or null. */
    public SessionView openSession() {
        return sessions.openSession();
    }

    /** How the last session ended, or null. */
    public SessionOutcome lastSession() {
        return sessions.lastOutcome();
    }

    // ----------------------------------------------------------------------------------

    /** A push's stacked expert tensors (transformers 5's names) as the served model's per-expert parameters. */
    private WeightUpdate withExpertNames(WeightUpdate u) {
        Map<String, Tensor> named = ExpertNames.expand(u.tensors(), loop.info().parameterShapes().keySet());
        return named == u.tensors() ? u : new WeightUpdate(named, u.version(), u.abortAll(), u.transport(), u.bytes());
    }

    /** Names and shapes against what the engine serves, on this thread; the engine checks again before it copies. */
    private String check(WeightUpdate update) {
        if (update.tensors().isEmpty()) return "the update holds no tensors";
        return update.mismatches(loop.info()::shapeMismatch);
    }

    private WeightOutcome apply(WeightUpdate update) {
        return await(loop.submit(new EngineCommand.UpdateWeights(update, settings.updateWait())));
    }

    private WeightOutcome await(CompletableFuture<UpdateRecord> f) {
        Duration limit = settings.updateWait().plus(ANSWER_MARGIN);
        try {
            return new WeightOutcome.Applied(f.get(limit.toMillis(), TimeUnit.MILLISECONDS));
        } catch (TimeoutException e) {
            return refused(WeightOutcome.Reason.UNAVAILABLE, "the engine did not answer within " + limit.toSeconds() + " s");
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof IllegalArgumentException) return refused(WeightOutcome.Reason.BAD_REQUEST, c.getMessage());
            if (c instanceof IllegalStateException) return refused(WeightOutcome.Reason.CONFLICT, c.getMessage());
            return refused(WeightOutcome.Reason.FAILED, "the engine failed: " + c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return refused(WeightOutcome.Reason.UNAVAILABLE, "interrupted while waiting for the engine");
        }
    }

    /** A payload whose bytes do not hold what they claim; the message is for the caller. */
    private static final class Undecodable extends Exception {
        Undecodable(String message) {
            super(message, null, false, false);
        }
    }

    /** A broadcast push: every announced tensor is received before any is checked (WeightGroups says why). */
    private WeightUpdate receive(TensorPayload.Broadcast b, PushOptions o) throws WeightGroups.Refusal {
        Map<String, Tensor> tensors = groups.receive(b.groupName(), b.tensors(), b.flattened());
        long bytes = 0;
        for (Tensor t : tensors.values()) bytes += t.numel() * t.element_size();
        return new WeightUpdate(tensors, o.version(), o.abortAll(), "distributed", bytes);
    }

    private WeightUpdate decode(TensorPayload payload, PushOptions o) throws WeightPayloads.BodyTooLarge, Undecodable {
        if (payload instanceof TensorPayload.SafetensorsBody b) {
            try {
                return WeightPayloads.readSafetensors(b.body(), b.contentLength(), b.limit(), o.version(), o.abortAll(),
                        "safetensors-binary");
            } catch (WeightPayloads.BodyTooLarge e) {
                throw e;
            } catch (IOException e) {
                throw new Undecodable("could not read the tensors: " + e.getMessage());
            }
        }
        if (payload instanceof TensorPayload.CudaIpcTensors ipc) {
            if (ipc.tensors().isEmpty())
                throw new Undecodable("load_format 'cuda_ipc' needs cuda_ipc_tensors: [{name, dtype, shape, stride, storage_offset, "
                        + "ipc_handle, storage_offset_bytes, device_uuid}, ...]");
            try {
                return WeightPayloads.fromCudaIpc(ipc.tensors(), settings.device(), o.version(), o.abortAll());
            } catch (IOException | RuntimeException e) {
                throw new Undecodable("could not open the CUDA IPC tensors: " + e.getMessage());
            }
        }
        TensorPayload.Encoded enc = (TensorPayload.Encoded) payload;
        ByteBuffer raw = enc.bytes();
        String format = enc.loadFormat() == null ? "safetensors" : enc.loadFormat();
        // a loader named by its import path (veRL's delta loader) is code to run: refused by name, before any pickle is read
        if (!List.of("safetensors", "direct", "flattened_bucket").contains(format))
            throw new Undecodable("load_format '" + format
                    + "' is not supported: use null/'safetensors' (safetensors bytes), 'flattened_bucket' or 'cuda_ipc'");
        boolean pickled = WeightPayloads.looksLikePickle(raw);
        if (pickled && enc.manifest() == null && settings.allowPickle()) {
            byte[] pickle = new byte[raw.remaining()];  // IPC handles and metadata: small
            raw.duplicate().get(pickle);
            try {
                return WeightPayloads.fromPickle(pickle, settings.device(), o.version(), o.abortAll());
            } catch (IOException e) {
                throw new Undecodable("could not read the pickled tensors: " + e.getMessage());
            }
        }
        WeightPayloads.Format f = switch (format) {
            case "safetensors", "direct" -> WeightPayloads.Format.SAFETENSORS;
            // SGLang's own flattened bucket is a pickle: read as safetensors, it is refused as one
            case "flattened_bucket" -> enc.manifest() != null || !pickled ? WeightPayloads.Format.FLATTENED_BUCKET
                    : WeightPayloads.Format.SAFETENSORS;
            default -> throw new IllegalStateException(format);  // checked above
        };
        if (f == WeightPayloads.Format.FLATTENED_BUCKET && enc.manifest() == null)
            throw new Undecodable("load_format 'flattened_bucket' needs flattened_bucket_metadata: "
                    + "[{name, dtype, shape, start_idx, end_idx}, ...]");
        try {
            List<TensorPayloads.FlatEntry> manifest = enc.manifest() == null ? null : enc.manifest().stream()
                    .map(t -> new TensorPayloads.FlatEntry(t.name(), t.dtype(), t.shape(), t.start(), t.end())).toList();
            return WeightPayloads.decode(raw, f, manifest, o.version(), o.abortAll(),
                    f == WeightPayloads.Format.FLATTENED_BUCKET ? "flattened_bucket" : "safetensors");
        } catch (IOException e) {
            throw new Undecodable("could not read the tensors: " + e.getMessage());
        }
    }

    private static WeightOutcome.Refused refused(WeightOutcome.Reason reason, String message) {
        return new WeightOutcome.Refused(reason, message);
    }
}
