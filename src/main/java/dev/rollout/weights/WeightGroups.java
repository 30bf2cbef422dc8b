package dev.rollout.weights;

import dev.rollout.dist.C10d;
import dev.rollout.dist.WeightSyncGroup;
import dev.rollout.engine.EngineCommand;
import dev.rollout.model.Checkpoint;
import dev.rollout.model.TensorLayout;
import dev.rollout.model.TensorPayloads;
import dev.rollout.dist.WeightGroupOp;
import dev.rollout.model.Torch;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Logger;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The weight-update groups this server has joined (SGLang's {@code init_weights_update_group}):
 * by name, each a {@link WeightSyncGroup} in which the trainer's rank 0 broadcasts and this
 * server's tensor-parallel rank {@code i} is rank {@code rank_offset + i}. Receiving a push is a
 * set of broadcasts into fresh tensors; the engine thread then applies them as every transport's
 * (at tensor-parallel size &gt; 1, rank 0's copy reaches the other ranks as any update does). One
 * push at a time per group, since collectives must meet in the same order on every rank.
 *
 * <p>Where the operations run ({@link Ranks}): at one rank, on the caller's thread, beside the
 * steps. With several, every rank must join the group and take part in each broadcast, so rank 0
 * sends each operation to the others and the engine thread runs its own part between steps
 * ({@link EngineCommand.WeightGroupCall}); a worker runs the same code on its part
 * ({@link #follow}). Each rank then learns how every other rank fared, and all settle alike: a
 * group that one rank could not join is left by all, and a push that one rank did not receive
 * leaves the group out of step on every rank.
 *
 * <p>A push's tensors are all received before anything is checked against the served model, so
 * that a wrong name costs a 400 and not the group: the trainer broadcasts whatever it announced,
 * and a receiver that skipped a tensor would leave the group out of step. Only what cannot be
 * received at all (an unknown dtype, a shape too large) leaves the group broken, and says so.
 */
public final class WeightGroups implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WeightGroups.class.getName());

    /** A group joined, for the answer and for /rl/state: {@code rank} is this server's first. */
    public record Joined(String groupName, int rank, int worldSize, String backend) {}

    /**
     * @param timeout  how long forming a group and each push's broadcasts may take, unless init names its own
     * @param device   where NCCL receives (gloo receives in host memory)
     * @param tpSize   the server's ranks: rank_offset .. rank_offset + tpSize - 1 in the group
     * @param tpRank   this process's tensor-parallel rank (0: the server)
     * @param maxBytes the most one push may announce (a bound against a shape that would exhaust memory)
     */
    public record Settings(Duration timeout, String device, int tpSize, int tpRank, long maxBytes) {}

    /**
     * How an operation reaches every tensor-parallel rank: this rank runs {@code here}, its own
     * part, while the others run theirs, and all report how it went.
     */
    public interface Ranks {
        /** Answers each rank's problem (null where none) and what this rank's part gave; throws when the ranks could not be reached. */
        <T> WeightGroupOp.Outcome<T> run(WeightGroupOp op, Duration bound, Callable<T> here) throws Refusal;

        /** A server of one rank: its part is the whole operation, run on the caller's thread. */
        Ranks ONE = new Ranks() {
            @Override
            public <T> WeightGroupOp.Outcome<T> run(WeightGroupOp op, Duration bound, Callable<T> here) {
                WeightGroupOp.Part<T> mine = WeightGroupOp.Part.of(here);
                return new WeightGroupOp.Outcome<>(mine.value(), java.util.Collections.singletonList(mine.problem()));
            }
        };
    }

    private record Member(WeightSyncGroup group, ReentrantLock turn) {}

    /**
     * The most one push may announce: the model's parameters (their full shapes) in float64.
     * More is a mistake, not weights; every rank computes the same bound.
     */
    public static long maxPushBytes(Iterable<long[]> fullShapes) {
        long numel = 0;
        for (long[] shape : fullShapes) {
            long n = 1;
            for (long d : shape) n = Math.multiplyExact(n, d);
            numel += n;
        }
        return 8 * numel;
    }

    private final Settings settings;
    private final Ranks ranks;
    private final Map<String, Member> groups = new ConcurrentHashMap<>();

    public WeightGroups(Settings settings, Ranks ranks) {
        this.settings = settings;
        this.ranks = ranks;
    }

    /**
     * Forms the group with the trainer; returns once every rank has met, or refuses within
     * {@code timeout} (null: the configured one), which stays the group's timeout for every push.
     */
    public WeightOutcome init(WeightGroupOp.Spec spec, Duration timeout) {
        Duration limit = timeout == null ? settings.timeout() : timeout;
        String problem = checkSpec(spec);
        if (problem != null) return refusedInit(spec, WeightOutcome.Reason.BAD_REQUEST, problem);
        // claim the name before the (long) rendezvous, so that two inits of one name cannot both form it
        Member claim = new Member(null, new ReentrantLock());
        if (groups.putIfAbsent(spec.groupName(), claim) != null)
            return refusedInit(spec, WeightOutcome.Reason.CONFLICT, "a weight update group named '" + spec.groupName()
                    + "' exists; destroy it (destroy_weights_update_group) before forming it again");
        WeightGroupOp.Outcome<WeightSyncGroup> o;
        try {
            o = ranks.run(WeightGroupOp.join(spec, limit.toMillis()), limit, () -> joinAs(spec, limit));
        } catch (Refusal e) {
            groups.remove(spec.groupName(), claim);
            return refusedInit(spec, e.reason, e.getMessage());
        }
        problem = settleJoin(spec, claim, o);
        if (problem != null) return refusedInit(spec, WeightOutcome.Reason.BAD_REQUEST, problem);
        return new WeightOutcome.GroupJoined(new Joined(spec.groupName(), spec.rankOffset(), spec.worldSize(), backendName(spec)));
    }

    /** A refused init, logged: the trainer meanwhile waits on its store and sees only a timeout, so the server's log says why. */
    private static WeightOutcome refusedInit(WeightGroupOp.Spec spec, WeightOutcome.Reason reason, String problem) {
        LOG.warning(() -> "weight update group '" + spec.groupName() + "' at " + spec.masterAddress() + ":" + spec.masterPort()
                + " did not form: " + problem);
        return refused(reason, problem);
    }

    /** This rank's part of forming a group: joins it at rank_offset + its tensor-parallel rank. */
    private WeightSyncGroup joinAs(WeightGroupOp.Spec spec, Duration limit) throws Refusal {
        String problem = checkSpec(spec);
        if (problem != null) throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, problem);
        int rank = spec.rankOffset() + settings.tpRank();
        try {
            WeightSyncGroup g = WeightSyncGroup.join(spec.masterAddress(), spec.masterPort(), rank, spec.worldSize(), spec.groupName(),
                    C10d.Backend.parse(spec.backend()), limit);
            LOG.info(() -> "joined weight update group '" + spec.groupName() + "' at " + spec.masterAddress() + ":" + spec.masterPort()
                    + " as rank " + rank + " of " + spec.worldSize() + " (" + backendName(spec) + ")");
            return g;
        } catch (WeightSyncGroup.GroupException e) {
            throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, e.getMessage());
        }
    }

    /** Every rank alike: the group is kept if every rank joined it, else left by all. Returns the problem, or null. */
    private String settleJoin(WeightGroupOp.Spec spec, Member claim, WeightGroupOp.Outcome<WeightSyncGroup> o) {
        String problem = problem(o);
        if (problem == null) {
            groups.put(spec.groupName(), new Member(o.value(), claim.turn()));
            return null;
        }
        if (o.value() != null) o.value().close();
        groups.remove(spec.groupName(), claim);
        return problem;
    }

    private String checkSpec(WeightGroupOp.Spec spec) {
        C10d.Backend backend;
        try {
            backend = C10d.Backend.parse(spec.backend());
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        if (spec.groupName() == null || spec.groupName().isEmpty()) return "group_name must not be empty";
        if (spec.masterAddress() == null || spec.masterAddress().isBlank()) return "master_address is required";
        if (spec.masterPort() < 1 || spec.masterPort() > 65535) return "master_port " + spec.masterPort() + " is not a TCP port";
        if (spec.rankOffset() < 1)
            return "rank_offset must be at least 1: rank 0 is the trainer's, which broadcasts; got " + spec.rankOffset();
        if (spec.rankOffset() + settings.tpSize() > spec.worldSize())
            return "world_size " + spec.worldSize() + " has no room for this server's " + settings.tpSize() + " rank(s) from rank_offset "
                    + spec.rankOffset() + ": it must be at least " + (spec.rankOffset() + settings.tpSize());
        if (backend == C10d.Backend.NCCL && settings.device().startsWith("cpu"))
            return "backend 'nccl' needs a CUDA server; this one runs on " + settings.device() + ": use backend 'gloo'";
        return null;
    }

    private static String backendName(WeightGroupOp.Spec spec) {
        return C10d.Backend.parse(spec.backend()).name().toLowerCase(java.util.Locale.ROOT);
    }

    /**
     * The ranks' problems as the caller is told them: rank 0's alone in its own words (as at
     * one rank), else each rank's by number; null when none had one.
     */
    private static String problem(WeightGroupOp.Outcome<?> o) {
        List<String> p = o.problems();
        boolean othersFine = true;
        for (int r = 1; r < p.size(); r++) othersFine &= p.get(r) == null;
        return othersFine ? p.get(0) : o.summary();
    }

    /**
     * Receives the tensors a push announces, broadcast by the trainer's rank 0 in the order
     * given; the caller checks and applies them. Throws {@link Refusal} with what the caller
     * should be told.
     */
    public Map<String, Tensor> receive(String groupName, List<WeightGroupOp.Announced> tensors, boolean flattened) throws Refusal {
        Member m = groups.get(groupName);
        if (m == null || m.group() == null)
            throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, "no weight update group named '" + groupName
                    + "': form it first with init_weights_update_group" + known());
        if (tensors.isEmpty()) throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, "the update names no tensors");
        boolean turn;
        try {
            turn = m.turn().tryLock(m.group().timeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Refusal(WeightOutcome.Reason.UNAVAILABLE, "interrupted while waiting for the group");
        }
        if (!turn)
            throw new Refusal(WeightOutcome.Reason.CONFLICT, "another update on group '" + groupName + "' did not finish within "
                    + m.group().timeout().toSeconds() + " s");
        try {
            WeightSyncGroup g = m.group();
            if (g.broken() != null) throw new Refusal(WeightOutcome.Reason.CONFLICT, "group '" + groupName + "' is unusable: " + g.broken());
            WeightGroupOp.Outcome<Map<String, Tensor>> o = ranks.run(
                    WeightGroupOp.receive(groupName, tensors, flattened, g.timeout().toMillis()), g.timeout(),
                    () -> receiveInto(g, tensors, flattened));
            String problem = settleReceive(g, o);
            if (problem != null) throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, problem);
            return o.value();
        } finally {
            m.turn().unlock();
        }
    }

    /** This rank's part of a push: every announced tensor, received. */
    private Map<String, Tensor> receiveInto(WeightSyncGroup g, List<WeightGroupOp.Announced> tensors, boolean flattened) throws Refusal {
        List<Tensor> buffers;
        try {
            buffers = flattened ? List.of(allocateFlat(tensors, g.backend())) : allocate(tensors, g.backend());
        } catch (IOException | RuntimeException e) {
            g.markBroken("a push could not be received (" + e.getMessage() + "), so its broadcasts were never met");
            throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, e.getMessage() + "; the trainer's broadcasts of this update were not "
                    + "received, so group '" + g.name() + "' is out of step: destroy it and form it again");
        }
        try {
            g.broadcastFromRank0(buffers);
        } catch (WeightSyncGroup.GroupException e) {
            buffers.forEach(Tensor::close);
            throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, e.getMessage() + "; the served weights are unchanged");
        }
        if (flattened) {
            try (Tensor flat = buffers.get(0)) {
                return TensorPayloads.sliceFlat(flat, manifest(tensors));
            } catch (IOException e) {
                throw new IllegalStateException("the manifest was checked before the broadcast", e);
            }
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < tensors.size(); i++) out.put(tensors.get(i).name(), buffers.get(i));
        return out;
    }

    /**
     * Every rank alike: a push that any rank missed is dropped by all, and leaves the group out
     * of step with the trainer. Returns the problem, or null.
     */
    private String settleReceive(WeightSyncGroup g, WeightGroupOp.Outcome<Map<String, Tensor>> o) {
        String problem = problem(o);
        if (problem == null) return null;
        if (o.value() != null) o.value().values().forEach(Tensor::close);
        if (g != null && g.broken() == null)
            g.markBroken("a push did not reach every rank (" + problem + "), so the ranks are out of step with the trainer");
        return o.problems().get(0) != null || g == null ? problem
                : problem + "; group '" + g.name() + "' is out of step: destroy it and form it again";
    }

    /** Empty tensors for every announced one, after checking that all of them can be: none or all. */
    private List<Tensor> allocate(List<WeightGroupOp.Announced> tensors, C10d.Backend backend) throws IOException {
        long total = 0;
        java.util.Set<String> names = new java.util.HashSet<>();
        for (WeightGroupOp.Announced a : tensors) {
            if (!names.add(a.name())) throw new IOException(a.name() + " is announced twice");
            String dtype = TensorPayloads.safetensorsDtype(a.dtype());
            total += TensorLayout.nbytes(a.shape(), dev.rollout.model.Safetensors.bytesPer(dtype), a.name());
            if (total > settings.maxBytes())
                throw new IOException("the update announces more than " + settings.maxBytes() + " bytes");
        }
        Device device = receiveDevice(backend);
        List<Tensor> out = new ArrayList<>(tensors.size());
        for (WeightGroupOp.Announced a : tensors) {
            out.add(Torch.empty(Torch.options(Checkpoint.scalarType(TensorPayloads.safetensorsDtype(a.dtype())), device), a.shape()));
        }
        return out;
    }

    /**
     * SGLang's flattened bucket on this route: one uint8 broadcast holding each announced
     * tensor's row-major bytes, in the order announced, without padding.
     */
    private Tensor allocateFlat(List<WeightGroupOp.Announced> tensors, C10d.Backend backend) throws IOException {
        List<TensorPayloads.FlatEntry> manifest = manifest(tensors);
        long total = manifest.isEmpty() ? 0 : manifest.get(manifest.size() - 1).end();
        if (total > settings.maxBytes()) throw new IOException("the update announces more than " + settings.maxBytes() + " bytes");
        TensorPayloads.checkManifest(manifest, total);
        return Torch.empty(Torch.options(torch.ScalarType.Byte, receiveDevice(backend)), total);
    }

    /** The byte ranges of a flattened bucket: running sums of the announced tensors' sizes. */
    private static List<TensorPayloads.FlatEntry> manifest(List<WeightGroupOp.Announced> tensors) throws IOException {
        List<TensorPayloads.FlatEntry> out = new ArrayList<>(tensors.size());
        long at = 0;
        for (WeightGroupOp.Announced a : tensors) {
            long n = TensorLayout.nbytes(a.shape(), dev.rollout.model.Safetensors.bytesPer(TensorPayloads.safetensorsDtype(a.dtype())), a.name());
            out.add(new TensorPayloads.FlatEntry(a.name(), a.dtype(), a.shape(), at, at + n));
            at += n;
        }
        return out;
    }

    private Device receiveDevice(C10d.Backend backend) {
        return new Device(backend == C10d.Backend.NCCL ? settings.device() : "cpu");
    }

    /** Leaves the group (every rank does) and forgets it. */
    public WeightOutcome destroy(String groupName) {
        Member m = groups.get(groupName);
        if (m == null || m.group() == null)
            return refused(WeightOutcome.Reason.BAD_REQUEST, "no weight update group named '" + groupName + "'" + known());
        boolean turn;
        try {
            turn = m.turn().tryLock(m.group().timeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return refused(WeightOutcome.Reason.UNAVAILABLE, "interrupted while waiting for the group");
        }
        if (!turn) return refused(WeightOutcome.Reason.CONFLICT, "an update on group '" + groupName + "' is still receiving");
        try {
            if (!groups.remove(groupName, m)) return refused(WeightOutcome.Reason.BAD_REQUEST, "group '" + groupName + "' was destroyed already");
            Duration limit = m.group().timeout();
            try {
                ranks.run(WeightGroupOp.leave(groupName, limit.toMillis()), limit, () -> leave(m.group()));
            } catch (Refusal e) {  // the other ranks could not be told: they are lost, and their groups with them
                leave(m.group());
            }
            return new WeightOutcome.GroupLeft(groupName);
        } finally {
            m.turn().unlock();
        }
    }

    private static Void leave(WeightSyncGroup g) {
        g.close();
        LOG.info(() -> "left weight update group '" + g.name() + "'");
        return null;
    }

    /**
     * A worker: its part of an operation that rank 0 sent, settled as rank 0 settles its own.
     * The tensors of a push are dropped once received: rank 0's copy reaches every rank when the
     * update is applied, inside an update session or alone, as any transport's. Every path
     * reports to the other ranks exactly once, since they wait for it; a report that does not
     * arrive throws, and ends the worker.
     */
    public void follow(WeightGroupOp op) {
        try {
            perform(op);
        } catch (Refusal e) {
            throw new IllegalStateException("the ranks did not report on the group's " + op.op() + ": " + e.getMessage(), e);
        }
    }

    private void perform(WeightGroupOp op) throws Refusal {
        Duration limit = Duration.ofMillis(op.timeout());
        switch (op.op()) {
            case JOIN -> {
                Member claim = new Member(null, new ReentrantLock());
                Member earlier = groups.put(op.groupName(), claim);
                settleJoin(op.spec(), claim, ranks.run(op, limit, () -> {
                    if (earlier != null && earlier.group() != null) leave(earlier.group());   // rank 0 forgot it; so does this rank
                    return joinAs(op.spec(), limit);
                }));
            }
            case RECEIVE -> {
                Member m = groups.get(op.groupName());
                WeightSyncGroup g = m == null ? null : m.group();
                WeightGroupOp.Outcome<Map<String, Tensor>> o = ranks.run(op, limit, () -> {
                    if (g == null) throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, "this rank has no group named '" + op.groupName() + "'");
                    return receiveInto(g, op.tensors(), op.flattened());
                });
                if (settleReceive(g, o) == null) o.value().values().forEach(Tensor::close);
            }
            case LEAVE -> {
                Member m = groups.remove(op.groupName());
                ranks.run(op, limit, () -> m == null || m.group() == null ? null : leave(m.group()));
            }
        }
    }

    /** The groups joined now, for /rl/state. */
    public List<Joined> joined() {
        List<Joined> out = new ArrayList<>();
        for (Member m : groups.values()) {
            WeightSyncGroup g = m.group();
            if (g != null) out.add(new Joined(g.name(), g.rank(), g.world(), g.backend().name().toLowerCase()));
        }
        return out;
    }

    private String known() {
        List<String> names = joined().stream().map(Joined::groupName).sorted().toList();
        return names.isEmpty() ? " (none is formed)" : " (formed: " + String.join(", ", names) + ")";
    }

    @Override
    public void close() {
        for (Member m : groups.values()) {
            if (m.group() == null) continue;
            // a group still receiving (a thread inside its collective) is left to the process's end: freeing it would crash
            boolean idle = false;
            try {
                idle = m.turn().tryLock(1, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (!idle) {
                LOG.warning(() -> "weight update group '" + m.group().name() + "' is still receiving at shutdown; it is not freed");
                continue;
            }
            try {
                m.group().close();
            } finally {
                m.turn().unlock();
            }
        }
        groups.clear();
    }

    /** A push refused before it reached the engine. */
    public static final class Refusal extends Exception {
        final WeightOutcome.Reason reason;

        Refusal(WeightOutcome.Reason reason, String message) {
            super(message, null, false, false);
            this.reason = reason;
        }
    }

    private static WeightOutcome.Refused refused(WeightOutcome.Reason reason, String message) {
        return new WeightOutcome.Refused(reason, message);
    }
}
