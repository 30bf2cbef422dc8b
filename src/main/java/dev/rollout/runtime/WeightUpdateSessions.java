package dev.rollout.runtime;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.WeightUpdate;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.logging.Logger;
import org.bytedeco.pytorch.Tensor;

/**
 * Atomic, versioned weight updates. Buckets pushed between {@code begin_weight_update} and
 * {@code end_weight_update} are staged, not served; {@code end} applies all of them in one go
 * between two engine steps, so no request ever sees half an update. A session that is aborted,
 * fails, or outlives its timeout is rolled back: the staged tensors are dropped and the served
 * weights were never touched.
 *
 * <p>Every bucket may carry an idempotency key (update id + bucket sequence number): a client that
 * retries after a timeout does not apply the same bucket twice.
 */
public final class WeightUpdateSessions {
    private static final Logger LOG = Logger.getLogger(WeightUpdateSessions.class.getName());
    private static final int REMEMBERED_KEYS = 4096;

    /** Something a caller did wrong or too late: the message says what. */
    public static final class Refused extends RuntimeException {
        public final int status;

        Refused(int status, String message) {
            super(message, null, false, false);
            this.status = status;
        }
    }

    private static final class Session {
        final String id;
        final long deadlineNanos;
        final Map<String, Tensor> staged = new LinkedHashMap<>();
        final Set<Long> seqs = new HashSet<>();
        long bytes;

        Session(String id, Duration timeout) {
            this.id = id;
            this.deadlineNanos = System.nanoTime() + timeout.toNanos();
        }
    }

    /** How the last session ended, for /rl/state. */
    public record Outcome(String updateId, String result, String message, long atMillis) {}

    private Session open;
    private Outcome lastOutcome;
    /** Sessions that have ended, so that a late bucket naming one is refused rather than applied alone. */
    private final Map<String, Outcome> closed = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Outcome> e) {
            return size() > 256;
        }
    };
    private final Deque<String> appliedKeys = new ArrayDeque<>();
    private final Set<String> appliedKeySet = new HashSet<>();

    public synchronized String begin(String updateId, Duration timeout) {
        expire();
        if (open != null) {
            if (open.id.equals(updateId)) return open.id;  // a retried begin
            throw new Refused(409, "weight update " + open.id + " is already open; end or abort it first");
        }
        open = new Session(updateId == null || updateId.isBlank() ? UUID.randomUUID().toString() : updateId, timeout);
        return open.id;
    }

    /** True when a session is open (buckets go to it rather than to the model). */
    public synchronized boolean isOpen() {
        expire();
        return open != null;
    }

    public synchronized String openId() {
        expire();
        return open == null ? null : open.id;
    }

    /**
     * Stages a bucket in the open session. Returns false (and drops the tensors) when this bucket
     * sequence number was staged before: a retry.
     */
    public synchronized boolean stage(String updateId, Long bucketSeq, WeightUpdate bucket) {
        Map<String, Tensor> tensors = bucket.tensors();
        long bytes = bucket.bytes();
        expire();
        if (open == null) {
            tensors.values().forEach(Tensor::close);
            throw new Refused(409, "no weight update is open" + (lastOutcome != null && lastOutcome.updateId().equals(updateId)
                    ? " (" + updateId + " was " + lastOutcome.result() + ": " + lastOutcome.message() + ")" : ""));
        }
        if (updateId != null && !updateId.equals(open.id)) {
            tensors.values().forEach(Tensor::close);
            throw new Refused(409, "bucket belongs to update " + updateId + " but " + open.id + " is open");
        }
        if (bucketSeq != null && !open.seqs.add(bucketSeq)) {
            tensors.values().forEach(Tensor::close);
            return false;
        }
        tensors.forEach((name, t) -> {
            Tensor old = open.staged.put(name, t);
            if (old != null) old.close();
        });
        open.bytes += bytes;
        return true;
    }

    /** Closes the session and applies everything staged, as one update. */
    public CompletableFuture<LlmEngine.UpdateRecord> end(String updateId, String version, boolean abortAll, Duration wait,
                                                         EngineLoop loop) {
        Session s;
        synchronized (this) {
            expire();
            if (open == null) throw new Refused(409, "no weight update is open");
            if (updateId != null && !updateId.equals(open.id))
                throw new Refused(409, "update " + updateId + " is not the open one (" + open.id + ")");
            s = open;
            open = null;
        }
        if (s.staged.isEmpty()) {
            record(s.id, "empty", "no buckets were pushed; nothing changed");
            return CompletableFuture.failedFuture(new IllegalArgumentException("update " + s.id + " staged no tensors"));
        }
        WeightUpdate update = new WeightUpdate(s.staged, version, abortAll, "session", s.bytes);
        return loop.updateWeights(update, wait).whenComplete((r, t) -> {
            if (t == null) record(s.id, "committed", "applied " + r.numTensors() + " tensors as version " + r.version());
            else record(s.id, "rolled back", String.valueOf(t.getCause() != null ? t.getCause().getMessage() : t.getMessage()));
        });
    }

    /** Drops the open session (the served weights never changed). */
    public synchronized void abort(String updateId, String why) {
        if (open == null || (updateId != null && !updateId.equals(open.id)))
            throw new Refused(409, "no weight update " + (updateId == null ? "" : updateId + " ") + "is open");
        rollBack(why);
    }

    /** Remembers an applied (update id, bucket) key; false if it was applied before. */
    public synchronized boolean firstTime(String updateId, Long bucketSeq) {
        if (updateId == null || bucketSeq == null) return true;
        String key = updateId + "#" + bucketSeq;
        if (!appliedKeySet.add(key)) return false;
        appliedKeys.addLast(key);
        if (appliedKeys.size() > REMEMBERED_KEYS) appliedKeySet.remove(appliedKeys.removeFirst());
        return true;
    }

    /** Forgets a key whose apply failed, so that a retry is applied. */
    public synchronized void forget(String updateId, Long bucketSeq) {
        if (updateId == null || bucketSeq == null) return;
        String key = updateId + "#" + bucketSeq;
        if (appliedKeySet.remove(key)) appliedKeys.remove(key);
    }

    public synchronized Outcome lastOutcome() {
        expire();
        return lastOutcome;
    }

    /** Rolls back a session past its deadline; called on every access and by a timer. */
    public synchronized void expire() {
        if (open != null && System.nanoTime() > open.deadlineNanos) rollBack("timed out before end_weight_update");
    }

    public synchronized Map<String, Object> describeOpen() {
        if (open == null) return null;
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("update_id", open.id);
        m.put("staged_tensors", open.staged.size());
        m.put("staged_bytes", open.bytes);
        m.put("buckets", open.seqs.size());
        m.put("seconds_left", Math.max(0, (open.deadlineNanos - System.nanoTime()) / 1e9));
        return m;
    }

    private void rollBack(String why) {
        LOG.warning(() -> "weight update " + open.id + " rolled back: " + why);
        open.staged.values().forEach(Tensor::close);
        record(open.id, "rolled back", why);
        open = null;
    }

    private synchronized void record(String id, String result, String message) {
        lastOutcome = new Outcome(id, result, message, System.currentTimeMillis());
        closed.put(id, lastOutcome);
    }

    /** How the session {@code updateId} ended, or null if it is open or was never a session. */
    public synchronized Outcome closed(String updateId) {
        expire();
        if (updateId == null || (open != null && open.id.equals(updateId))) return null;
        return closed.get(updateId);
    }
}
