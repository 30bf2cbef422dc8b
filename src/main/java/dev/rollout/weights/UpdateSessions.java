package dev.rollout.weights;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.WeightUpdate;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.logging.Logger;
import org.bytedeco.pytorch.Tensor;

/**
 * The begin/end update session and the idempotency keys of buckets, under one lock: every
 * decision about where a bucket goes (staged, applied now, dropped as a retry, refused) is made
 * in one call, so that no session can open or close between a check and the act it guards.
 *
 * <p>Buckets pushed between begin and end are staged, not served; end hands all of them to the
 * engine as one update. A session that is aborted, fails, or outlives its deadline is rolled
 * back: its staged tensors are freed and the served weights were never touched. The deadline is
 * enforced by the engine loop's housekeeping tick, so an abandoned session is freed without
 * waiting for another request.
 */
final class UpdateSessions implements EngineLoop.Housekeeping {
    private static final Logger LOG = Logger.getLogger(UpdateSessions.class.getName());
    private static final int REMEMBERED_KEYS = 4096;
    private static final int REMEMBERED_SESSIONS = 256;

    private static final class Session {
        final String id;
        final long deadlineNanos;
        final Map<String, Tensor> staged = new LinkedHashMap<>();
        final Set<Long> seqs = new LinkedHashSet<>();
        long bytes;

        Session(String id, Duration timeout) {
            this.id = id;
            this.deadlineNanos = System.nanoTime() + timeout.toNanos();
        }
    }

    /** Where a bucket goes: the outcome now, or to the engine with its key claimed. */
    sealed interface Route {
        record Done(WeightOutcome outcome) implements Route {}

        record ApplyNow() implements Route {}
    }

    /** What ending the session gives: its staged tensors as one update, or why there is nothing to apply. */
    sealed interface Take {
        record Ready(String updateId, WeightUpdate update) implements Take {}

        record Nothing(WeightOutcome refusal) implements Take {}
    }

    private Session open;
    private SessionOutcome last;
    /** Sessions that have ended, so that a late bucket naming one is refused rather than applied alone. */
    private final Map<String, SessionOutcome> closed = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, SessionOutcome> e) {
            return size() > REMEMBERED_SESSIONS;
        }
    };
    /** Keys (update id + bucket sequence) of buckets applied outside a session, oldest first. */
    private final LinkedHashSet<String> appliedKeys = new LinkedHashSet<>();

    synchronized WeightOutcome begin(String updateId, Duration timeout) {
        expire(System.nanoTime());
        if (open != null) {
            if (open.id.equals(updateId)) return new WeightOutcome.Begun(open.id);  // a retried begin
            return conflict("weight update " + open.id + " is already open; end or abort it first");
        }
        open = new Session(updateId == null || updateId.isBlank() ? UUID.randomUUID().toString() : updateId, timeout);
        return new WeightOutcome.Begun(open.id);
    }

    /**
     * Decides where {@code bucket} goes and, when it is staged or dropped, takes care of its
     * tensors. {@link Route.ApplyNow} claims the bucket's idempotency key: call {@link #unclaim}
     * if the apply then fails, so that a retry is applied.
     */
    synchronized Route route(String updateId, Long bucketSeq, WeightUpdate bucket) {
        expire(System.nanoTime());
        if (open != null) {
            if (bucket.version() != null) return drop(bucket, badRequest("weight_version belongs on end_weight_update while an update session is open"));
            if (updateId != null && !updateId.equals(open.id))
                return drop(bucket, conflict("bucket belongs to update " + updateId + " but " + open.id + " is open"));
            if (bucketSeq != null && !open.seqs.add(bucketSeq))
                return drop(bucket, new WeightOutcome.Staged(open.id, bucket.tensors().size(), bucketSeq, false));
            bucket.tensors().forEach((name, t) -> {
                Tensor old = open.staged.put(name, t);
                if (old != null) old.close();
            });
            open.bytes += bucket.bytes();
            return new Route.Done(new WeightOutcome.Staged(open.id, bucket.tensors().size(), bucketSeq, true));
        }
        SessionOutcome ended = updateId == null ? null : closed.get(updateId);
        if (ended != null)
            return drop(bucket, conflict("update " + updateId + " is no longer open: it was " + ended.result().label() + " ("
                    + ended.message() + ")"));
        if (updateId == null || bucketSeq == null) return new Route.ApplyNow();
        String key = updateId + "#" + bucketSeq;
        if (!appliedKeys.add(key)) return drop(bucket, new WeightOutcome.AppliedBefore(updateId, bucketSeq, null));
        if (appliedKeys.size() > REMEMBERED_KEYS) appliedKeys.remove(appliedKeys.iterator().next());
        return new Route.ApplyNow();
    }

    /** Forgets the key of a bucket whose apply failed, so that a retry is applied. */
    synchronized void unclaim(String updateId, Long bucketSeq) {
        if (updateId != null && bucketSeq != null) appliedKeys.remove(updateId + "#" + bucketSeq);
    }

    /** Closes the open session and returns everything it staged as one update. */
    synchronized Take take(String updateId, String version, boolean abortAll) {
        expire(System.nanoTime());
        if (open == null) return new Take.Nothing(conflict("no weight update is open" + lastFor(updateId)));
        if (updateId != null && !updateId.equals(open.id))
            return new Take.Nothing(conflict("update " + updateId + " is not the open one (" + open.id + ")"));
        Session s = open;
        open = null;
        if (s.staged.isEmpty()) {
            record(s.id, SessionOutcome.Result.EMPTY, "no buckets were pushed; nothing changed");
            return new Take.Nothing(badRequest("update " + s.id + " staged no tensors"));
        }
        // recorded as ended now, not when the engine answers: a late or retried bucket of this
        // session meanwhile is refused, never applied on its own
        record(s.id, SessionOutcome.Result.COMMITTING, "handed to the engine");
        return new Take.Ready(s.id, new WeightUpdate(s.staged, version, abortAll, "session", s.bytes));
    }

    /** Drops the open session (the served weights never changed). */
    synchronized WeightOutcome abort(String updateId, String why) {
        expire(System.nanoTime());
        if (open == null || (updateId != null && !updateId.equals(open.id)))
            return conflict("no weight update " + (updateId == null ? "" : updateId + " ") + "is open");
        String id = open.id;
        rollBack(why);
        return new WeightOutcome.Aborted(id);
    }

    synchronized void record(String id, SessionOutcome.Result result, String message) {
        last = new SessionOutcome(id, result, message, System.currentTimeMillis());
        closed.put(id, last);
    }

    /** Rolls back the open session once it is past its deadline. Called by the engine loop's housekeeping. */
    @Override
    public synchronized void tick(long nowNanos) {
        expire(nowNanos);
    }

    /** The open session, or null; does not expire it (the housekeeping tick does). */
    synchronized SessionView openSession() {
        if (open == null) return null;
        return new SessionView(open.id, open.staged.size(), open.bytes, open.seqs.size(),
                Math.max(0, (open.deadlineNanos - System.nanoTime()) / 1e9));
    }

    synchronized SessionOutcome lastOutcome() {
        return last;
    }

    synchronized boolean isOpen() {
        expire(System.nanoTime());
        return open != null;
    }

    private void expire(long nowNanos) {
        if (open != null && nowNanos - open.deadlineNanos > 0) rollBack("timed out before end_weight_update");
    }

    private void rollBack(String why) {
        LOG.warning(() -> "weight update " + open.id + " rolled back: " + why);
        open.staged.values().forEach(Tensor::close);
        record(open.id, SessionOutcome.Result.ROLLED_BACK, why);
        open = null;
    }

    private String lastFor(String updateId) {
        return last != null && last.updateId().equals(updateId)
                ? " (" + updateId + " was " + last.result().label() + ": " + last.message() + ")" : "";
    }

    private static Route drop(WeightUpdate bucket, WeightOutcome outcome) {
        bucket.release();
        return new Route.Done(outcome);
    }

    private static WeightOutcome.Refused conflict(String message) {
        return new WeightOutcome.Refused(WeightOutcome.Reason.CONFLICT, message);
    }

    private static WeightOutcome.Refused badRequest(String message) {
        return new WeightOutcome.Refused(WeightOutcome.Reason.BAD_REQUEST, message);
    }
}
