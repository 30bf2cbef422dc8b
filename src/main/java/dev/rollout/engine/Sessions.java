package dev.rollout.engine;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

/**
 * SGLang's sessions, on the engine thread: each open session remembers its requests as a tree
 * (a request continues an earlier one, or starts a new root), so that a request that names an
 * earlier one in {@code session_params} gets that request's prompt and output before its own
 * input, and keeps the KV of what came before it instead of computing it again.
 *
 * <p><b>Pinning.</b> When a session's request ends, the session holds the cached blocks of its
 * whole history (prompt and output) for the next turn, so the prefix cache cannot evict them
 * while the session is open. Each session pins at most the capacity it reserved when it opened
 * ({@code capacity_of_str_len}, counted in tokens), and all sessions together reserve at most
 * {@link SessionLimits#maxPinnedTokens}: opening beyond that is refused, never queued. Pins are a
 * preference, not a promise: when a waiting request cannot be admitted and nothing runs, the
 * least recently used session's pins are given back first, so a pin can never make a request wait
 * forever; a prefix-cache reset (a new weight version, a flush, a memory release) drops them all,
 * since the KV they kept is stale. A turn whose pins are gone still works: it recomputes.
 *
 * <p><b>Streaming sessions</b> (SGLang's {@code "streaming": true}): a linear conversation. A turn
 * always continues the session's last turn that ended well ({@code rid} may be omitted), one turn
 * runs at a time, and {@code offset}, {@code replace} and {@code drop_previous_output} are refused.
 * A turn becomes the session's history only when it ends well (a stop or its length); an aborted
 * one (cut short, timed out, its client gone) is forgotten, and the next turn continues from the
 * turn before it, as SGLang rolls its streaming sessions back.
 *
 * <p>Whether the client streams a turn's output ({@code "stream": true}) changes nothing here: a
 * streamed turn joins its session exactly as a whole one does, when it ends, before its last
 * snapshot is sent (so a client that reads that snapshot may send the next turn at once).
 *
 * <p>Pure Java, no tensors; only {@link LlmEngine} calls it, between steps.
 */
final class Sessions {
    /** Cuts a running request short (a replaced turn); the engine finishes it with an abort. */
    interface Aborter {
        void abort(Sequence seq, String message);
    }

    private final BlockManager blocks;
    private final Aborter aborter;
    private final Map<String, Session> open = new LinkedHashMap<>();
    private SessionLimits limits;
    private long reservedTokens;
    private int pinnedBlocks;

    Sessions(BlockManager blocks, Aborter aborter, SessionLimits limits) {
        this.blocks = blocks;
        this.aborter = aborter;
        this.limits = limits;
    }

    void limit(SessionLimits limits) {
        this.limits = limits;
    }

    int numOpen() {
        return open.size();
    }

    /** Blocks held by session pins now (each counted once per session that pins it). */
    int numPinnedBlocks() {
        return pinnedBlocks;
    }

    // ---- open and close -------------------------------------------------------------------

    /** Opens a session; answers its id (a new random one when {@code id} is null). */
    String open(String id, long capacityTokens, Duration timeout, long nowNanos) {
        return open(id, capacityTokens, false, timeout, nowNanos);
    }

    /** Opens a session, a streaming one (a linear conversation, see the class comment) when {@code streaming}. */
    String open(String id, long capacityTokens, boolean streaming, Duration timeout, long nowNanos) {
        if (capacityTokens < 0) throw new IllegalArgumentException("capacity_of_str_len cannot be negative, got " + capacityTokens);
        if (id != null && open.containsKey(id))
            throw new IllegalArgumentException("Failed to open the session: a session with id '" + id + "' is still open");
        if (open.size() >= limits.maxOpen())
            throw new SessionLimitExceeded(open.size() + " sessions are open, the server's limit (rollout.sessions.max-open); "
                    + "close one first");
        if (capacityTokens > limits.maxPinnedTokens())
            throw new IllegalArgumentException("capacity_of_str_len " + capacityTokens + " is more than this server lets one session "
                    + "keep in the KV cache (" + limits.maxPinnedTokens() + " tokens, rollout.sessions.max-pinned-tokens)");
        if (reservedTokens + capacityTokens > limits.maxPinnedTokens())
            throw new SessionLimitExceeded("the open sessions have reserved " + reservedTokens + " of the " + limits.maxPinnedTokens()
                    + " KV tokens sessions may keep (rollout.sessions.max-pinned-tokens); close a session or ask for at most "
                    + (limits.maxPinnedTokens() - reservedTokens));
        String sid = id != null ? id : UUID.randomUUID().toString().replace("-", "");
        open.put(sid, new Session(sid, capacityTokens, streaming, timeout == null ? 0 : timeout.toNanos(), nowNanos));
        reservedTokens += capacityTokens;
        return sid;
    }

    /**
     * Closes a session: its pins are given back and it forgets its requests. Requests of it that
     * still run go on to their end (as in SGLang) but pin nothing. Answers whether it was open.
     */
    boolean close(String id) {
        Session s = open.remove(id);
        if (s == null) return false;
        for (Node n : s.nodes.values()) n.removed = true;
        s.nodes.clear();
        if (s.inFlight != null) s.inFlight.removed = true;  // it runs on to its end and joins nothing
        s.inFlight = null;
        for (int block : s.pins.keySet()) release(block);
        s.pins.clear();
        reservedTokens -= s.capacityTokens;
        return true;
    }

    /** Closes the sessions idle for longer than the timeout they opened with (housekeeping). */
    void expire(long nowNanos) {
        List<String> idle = new ArrayList<>();
        for (Session s : open.values()) if (s.timeoutNanos > 0 && nowNanos - s.lastActiveNanos > s.timeoutNanos) idle.add(s.id);
        idle.forEach(this::close);
    }

    // ---- turns ----------------------------------------------------------------------------

    /**
     * Gives each sequence with a turn its session's history before its own prompt. Every turn is
     * checked before anything changes: a refusal ({@link IllegalArgumentException}, naming the
     * problem, or {@link SessionLimitExceeded}) leaves the sessions as they were and queues nothing.
     */
    void bind(List<Sequence> seqs, Map<String, SessionTurn> turns, int maxModelLen, long nowNanos) {
        if (turns.isEmpty()) return;
        List<Plan> plans = new ArrayList<>();
        for (Sequence seq : seqs) {
            SessionTurn t = turns.get(seq.rid);
            if (t != null) plans.add(plan(seq, t, maxModelLen));
        }
        if (plans.size() > 1)  // one turn per command keeps the check-then-apply above exact
            throw new IllegalArgumentException("one request per call may continue a session");
        for (Plan p : plans) apply(p, nowNanos);
    }

    private record Plan(Sequence seq, Session session, Node parent, List<Node> forget, int keep, boolean dropBos) {}

    private Plan plan(Sequence seq, SessionTurn t, int maxModelLen) {
        Session s = open.get(t.sessionId());
        if (s == null) throw new IllegalArgumentException("Invalid request: session id " + t.sessionId() + " does not exist");
        if (s.streaming) return planStreaming(seq, t, s, maxModelLen);
        Node parent = null;
        List<Node> forget = List.of();
        if (t.parentRid() != null) {
            parent = s.nodes.get(t.parentRid());
            if (parent == null)
                throw new IllegalArgumentException("Invalid request session id: session_params.rid '" + t.parentRid()
                        + "' is not a request of session " + s.id + " (never sent in it, or forgotten by a replace)");
            if (!t.replace() && parent.running != null)
                throw new IllegalArgumentException("Session request is appending to a request that hasn't finished: '"
                        + t.parentRid() + "' still runs (replace: true cuts it short instead)");
            if (t.replace()) forget = descendants(parent);
        } else if (t.replace()) {
            forget = new ArrayList<>(s.nodes.values());
        }
        Node same = s.nodes.get(seq.rid);
        if (same != null && !forget.contains(same))
            throw new IllegalArgumentException("rid '" + seq.rid + "' is already a request of session " + s.id + "; send a new rid");
        if (s.nodes.size() - forget.size() >= limits.maxRequestsPerSession())
            throw new SessionLimitExceeded("session " + s.id + " remembers " + limits.maxRequestsPerSession() + " requests, the server's "
                    + "limit (rollout.sessions.max-requests); close it, or start over with replace: true and no rid");
        int base = parent == null ? 0 : t.dropPreviousOutput() ? parent.promptLen : parent.length();
        int keep = parent == null ? 0 : sliceEnd(base, t.offset());
        return checked(seq, t, s, parent, forget, keep, maxModelLen);
    }

    /**
     * A streaming session's turn: it continues the last turn that ended well, whatever {@code rid}
     * says, in SGLang; here {@code rid} may name that turn or be null, and naming another one is
     * refused (the client expects a history it would not get).
     */
    private Plan planStreaming(Sequence seq, SessionTurn t, Session s, int maxModelLen) {
        // SGLang's messages, as 400s before anything is written (SGLang aborts the turn instead)
        if (s.inFlight != null)
            throw new IllegalArgumentException("Streaming session already has an active request ('" + s.inFlight.rid
                    + "' still runs); send the next turn after it ends");
        if (t.replace()) throw new IllegalArgumentException("Streaming sessions do not support replace.");
        if (t.dropPreviousOutput()) throw new IllegalArgumentException("Streaming sessions do not support drop_previous_output.");
        if (t.offset() != 0) throw new IllegalArgumentException("Streaming sessions do not support offset.");
        Node last = s.nodes.isEmpty() ? null : s.nodes.values().iterator().next();
        if (t.parentRid() != null && (last == null || !last.rid.equals(t.parentRid())))
            throw new IllegalArgumentException("Invalid request session id: session_params.rid '" + t.parentRid() + "' is not the last "
                    + "finished turn of streaming session " + s.id + " (" + (last == null ? "it has none" : "that is '" + last.rid + "'")
                    + "); a streaming session continues only its last turn: send rid null or '"
                    + (last == null ? "" : last.rid) + "'");
        if (last != null && last.rid.equals(seq.rid))
            throw new IllegalArgumentException("rid '" + seq.rid + "' is already a request of session " + s.id + "; send a new rid");
        return checked(seq, t, s, last, List.of(), last == null ? 0 : last.length(), maxModelLen);
    }

    /** The checks every turn passes, once its parent and the history it keeps are known. */
    private Plan checked(Sequence seq, SessionTurn t, Session s, Node parent, List<Node> forget, int keep, int maxModelLen) {
        boolean dropBos = parent != null && t.bosTokenId() >= 0 && seq.numTokens() > 1 && seq.tokens.get(0) == t.bosTokenId();
        int sent = seq.numTokens() - (dropBos ? 1 : 0);
        long total = (long) keep + sent;
        if (total >= maxModelLen)
            throw new IllegalArgumentException("The input (" + total + " tokens: " + keep + " from the session's history and "
                    + sent + " sent) is longer than the model's context length (" + maxModelLen + " tokens).");
        if (blocks.blocksFor((int) total + 1) > blocks.numBlocks())
            throw new IllegalArgumentException("The input (" + total + " tokens with the session's history) is more than the KV cache "
                    + "holds (" + (long) blocks.numBlocks() * blocks.blockSize() + " tokens)");
        if (seq.logprobs.startLen() >= total)
            throw new IllegalArgumentException("logprob_start_len (" + seq.logprobs.startLen() + ") is higher than the number of input "
                    + "tokens (" + total + ", with the session's history). Request with a lower logprob_start_len.");
        return new Plan(seq, s, parent, forget, keep, dropBos);
    }

    private void apply(Plan p, long nowNanos) {
        Session s = p.session();
        for (Node n : p.forget()) forget(s, n, "replaced by a later request in its session");
        if (p.parent() != null) {
            p.parent().children.removeIf(c -> c.removed);
            if (p.parent().running != null) aborter.abort(p.parent().running, "replaced by a later request in its session");
        }
        int[] history = p.parent() == null ? new int[0] : prefix(p.parent(), p.keep());
        Sequence seq = p.seq();
        seq.prependHistory(history, p.dropBos());
        Node node = new Node(s, seq.rid, p.parent(), p.keep());
        node.running = seq;
        node.promptLen = seq.promptLen;
        node.own = seq.tokens.toArray(p.keep(), seq.numTokens());
        if (s.streaming) {
            s.inFlight = node;  // it joins the session when it ends well (finished)
        } else {
            if (p.parent() != null) p.parent().children.add(node);
            s.nodes.put(seq.rid, node);
        }
        s.lastActiveNanos = nowNanos;
        seq.sessionNode = node;
    }

    /** Python's {@code [:offset]} end on a list of {@code len}: 0 (SGLang's "no offset") keeps it all. */
    static int sliceEnd(int len, int offset) {
        if (offset == 0) return len;
        if (offset > 0) return Math.min(offset, len);
        return Math.max(0, len + offset);
    }

    /**
     * Called as a session's request ends, before its blocks are freed: keeps its history and pins
     * its KV. {@code aborted} says it was cut short: a plain session keeps what it made (as SGLang's
     * tree keeps an aborted request), a streaming session forgets the turn.
     */
    void finished(Sequence seq, boolean aborted, long nowNanos) {
        Node n = seq.sessionNode;
        if (n == null) return;
        seq.sessionNode = null;
        if (n.removed) return;
        if (n.session.streaming) {
            finishedStreaming(n, seq, aborted, nowNanos);
            return;
        }
        n.running = null;
        n.own = seq.tokens.toArray(n.parentKeep, seq.numTokens());
        n.session.lastActiveNanos = nowNanos;
        pin(n, seq);
    }

    /**
     * A streaming session's turn ends: if it ended well it becomes the session's one remembered
     * turn, holding its whole history itself (so that nothing before it is kept), with its KV
     * pinned in place of the previous turn's; an aborted turn is dropped.
     */
    private void finishedStreaming(Node n, Sequence seq, boolean aborted, long nowNanos) {
        Session s = n.session;
        s.inFlight = null;
        s.lastActiveNanos = nowNanos;
        n.running = null;
        n.removed = true;
        if (aborted) return;
        Node turn = new Node(s, n.rid, null, 0);
        turn.own = seq.tokens.toArray(0, seq.numTokens());
        turn.promptLen = n.promptLen;
        for (Node old : s.nodes.values()) {
            old.removed = true;
            unpin(s, old);  // the running turn still holds the blocks they share: unpinning frees none of them
        }
        s.nodes.clear();
        s.nodes.put(turn.rid, turn);
        pin(turn, seq);
    }

    /**
     * Pins the cached blocks that hold {@code seq}'s history, the ones the next turn's lookup
     * will find, as far as the session's capacity allows (a prefix: a block is useless without
     * the ones before it).
     */
    private void pin(Node n, Sequence seq) {
        Session s = n.session;
        long capacityBlocks = s.capacityTokens / blocks.blockSize();
        List<Integer> hits = blocks.findCached(seq, seq.numTokens());
        List<Integer> mine = new ArrayList<>();
        for (int id : hits) {
            Integer count = s.pins.get(id);
            if (count == null) {
                if (s.pins.size() + 1 > capacityBlocks) break;
                blocks.retain(id);
                pinnedBlocks++;
                s.pins.put(id, 1);
            } else {
                s.pins.put(id, count + 1);
            }
            mine.add(id);
        }
        n.pinned = mine.stream().mapToInt(Integer::intValue).toArray();
    }

    private void unpin(Session s, Node n) {
        for (int id : n.pinned) {
            Integer count = s.pins.get(id);
            if (count == null) continue;
            if (count == 1) {
                s.pins.remove(id);
                release(id);
            } else {
                s.pins.put(id, count - 1);
            }
        }
        n.pinned = new int[0];
    }

    private void release(int block) {
        blocks.release(block);
        pinnedBlocks--;
    }

    private void forget(Session s, Node n, String why) {
        n.removed = true;
        s.nodes.remove(n.rid);
        unpin(s, n);
        if (n.running != null) {
            Sequence running = n.running;
            n.running = null;
            aborter.abort(running, why);
        }
    }

    private static List<Node> descendants(Node root) {
        List<Node> out = new ArrayList<>();
        Deque<Node> todo = new ArrayDeque<>(root.children);
        while (!todo.isEmpty()) {
            Node n = todo.pop();
            if (n.removed) continue;
            out.add(n);
            todo.addAll(n.children);
        }
        return out;
    }

    /** The first {@code k} tokens of {@code n}'s history, walking up its ancestors without recursion. */
    static int[] prefix(Node n, int k) {
        List<Node> chain = new ArrayList<>();
        List<Integer> takes = new ArrayList<>();
        for (Node cur = n; cur != null && k > 0; cur = cur.parent) {
            int fromParent = Math.min(k, cur.parentKeep);
            chain.add(cur);
            takes.add(k - fromParent);
            k = fromParent;
        }
        IntList out = new IntList();
        for (int i = chain.size() - 1; i >= 0; i--) {
            int[] own = chain.get(i).own;
            for (int j = 0; j < takes.get(i); j++) out.add(own[j]);
        }
        return out.toArray();
    }

    // ---- pressure and resets -------------------------------------------------------------

    /**
     * Gives back the pins of the least recently used session that has any; answers whether it
     * freed something. The engine calls it when a waiting request cannot be admitted and nothing
     * runs, so that pins never make a request wait forever.
     */
    boolean yieldPins() {
        Session lru = null;
        for (Session s : open.values())
            if (!s.pins.isEmpty() && (lru == null || s.lastActiveNanos < lru.lastActiveNanos)) lru = s;
        if (lru == null) return false;
        dropPins(lru);
        return true;
    }

    /** Gives back every pin (the prefix cache was reset, so what they kept can never be found again). */
    void dropAllPins() {
        for (Session s : open.values()) dropPins(s);
    }

    private void dropPins(Session s) {
        for (Node n : s.nodes.values()) n.pinned = new int[0];
        for (int block : s.pins.keySet()) release(block);
        s.pins.clear();
    }

    /** Tokens the session's pins hold now (for tests and status). */
    long pinnedTokens(String id) {
        Session s = open.get(id);
        return s == null ? 0 : (long) s.pins.size() * blocks.blockSize();
    }

    /** The rids a session remembers (for tests). */
    Set<String> rids(String id) {
        Session s = open.get(id);
        return s == null ? Set.of() : new HashSet<>(s.nodes.keySet());
    }

    private static final class Session {
        final String id;
        final long capacityTokens;
        final boolean streaming;
        /** A streaming session's running turn (it is in {@link #nodes} only once it ends well), else null. */
        Node inFlight;
        final long timeoutNanos;
        long lastActiveNanos;
        final Map<String, Node> nodes = new HashMap<>();
        /** Pinned block → how many of this session's requests pin it; the session holds one reference per block. */
        final Map<Integer, Integer> pins = new HashMap<>();

        Session(String id, long capacityTokens, boolean streaming, long timeoutNanos, long nowNanos) {
            this.id = id;
            this.capacityTokens = capacityTokens;
            this.streaming = streaming;
            this.timeoutNanos = timeoutNanos;
            this.lastActiveNanos = nowNanos;
        }
    }

    /**
     * One request of a session. Its history is its parent's first {@code parentKeep} tokens, then
     * {@code own}: what it sent, and its output once it ends. Storing only that keeps a long
     * conversation linear in memory instead of quadratic.
     */
    static final class Node {
        final Session session;
        final String rid;
        final Node parent;
        final int parentKeep;
        final List<Node> children = new ArrayList<>();
        Sequence running;
        int[] own = new int[0];
        int promptLen;
        int[] pinned = new int[0];
        boolean removed;

        Node(Session session, String rid, Node parent, int parentKeep) {
            this.session = session;
            this.rid = rid;
            this.parent = parent;
            this.parentKeep = parentKeep;
        }

        /** Tokens of its history now: a running request's grow with its output. */
        int length() {
            return running != null ? running.numTokens() : parentKeep + own.length;
        }
    }
}
