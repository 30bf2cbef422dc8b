package dev.rollout.weights;

import dev.rollout.dist.C10d;
import dev.rollout.dist.WeightSyncGroup;
import dev.rollout.model.Checkpoint;
import dev.rollout.model.TensorLayout;
import dev.rollout.model.TensorPayloads;
import dev.rollout.model.Torch;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 * server is rank {@code rank_offset + tp_rank}. Receiving a push is a set of broadcasts into fresh
 * tensors, on the caller's thread (the engine thread only copies, as for every transport), one
 * push at a time per group, since collectives must meet in the same order on every rank.
 *
 * <p>A push's tensors are all received before anything is checked against the served model, so
 * that a wrong name costs a 400 and not the group: the trainer broadcasts whatever it announced,
 * and a receiver that skipped a tensor would leave the group out of step. Only what cannot be
 * received at all (an unknown dtype, a shape too large) leaves the group broken, and says so.
 */
public final class WeightGroups implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WeightGroups.class.getName());

    /** SGLang's {@code InitWeightsUpdateGroupReqInput}. */
    public record Spec(String masterAddress, int masterPort, int rankOffset, int worldSize, String groupName, String backend) {}

    /** One tensor a push announces: SGLang's names[i], dtypes[i], shapes[i]. */
    public record Announced(String name, String dtype, long[] shape) {}

    /** A group joined, for the answer and for /rl/state. */
    public record Joined(String groupName, int rank, int worldSize, String backend) {}

    /**
     * @param timeout  how long forming a group and each push's broadcasts may take, unless init names its own
     * @param device   where NCCL receives (gloo receives in host memory)
     * @param tpSize   the server's ranks: rank_offset .. rank_offset + tpSize - 1 in the group
     * @param maxBytes the most one push may announce (a bound against a shape that would exhaust memory)
     */
    public record Settings(Duration timeout, String device, int tpSize, long maxBytes) {}

    private record Member(WeightSyncGroup group, ReentrantLock turn) {}

    private final Settings settings;
    private final Map<String, Member> groups = new ConcurrentHashMap<>();

    public WeightGroups(Settings settings) {
        this.settings = settings;
    }

    /**
     * Forms the group with the trainer; returns once every rank has met, or refuses within
     * {@code timeout} (null: the configured one), which stays the group's timeout for every push.
     */
    public WeightOutcome init(Spec spec, Duration timeout) {
        Duration limit = timeout == null ? settings.timeout() : timeout;
        C10d.Backend backend;
        try {
            backend = C10d.Backend.parse(spec.backend());
        } catch (IllegalArgumentException e) {
            return refused(WeightOutcome.Reason.BAD_REQUEST, e.getMessage());
        }
        String problem = checkSpec(spec, backend);
        if (problem != null) return refused(WeightOutcome.Reason.BAD_REQUEST, problem);
        // claim the name before the (long) rendezvous, so that two inits of one name cannot both form it
        Member claim = new Member(null, new ReentrantLock());
        if (groups.putIfAbsent(spec.groupName(), claim) != null)
            return refused(WeightOutcome.Reason.CONFLICT, "a weight update group named '" + spec.groupName()
                    + "' exists; destroy it (destroy_weights_update_group) before forming it again");
        int rank = spec.rankOffset();  // + tp_rank: one rank today
        try {
            WeightSyncGroup g = WeightSyncGroup.join(spec.masterAddress(), spec.masterPort(), rank, spec.worldSize(), spec.groupName(),
                    backend, limit);
            groups.put(spec.groupName(), new Member(g, claim.turn()));
            LOG.info(() -> "joined weight update group '" + spec.groupName() + "' at " + spec.masterAddress() + ":" + spec.masterPort()
                    + " as rank " + rank + " of " + spec.worldSize() + " (" + backend.name().toLowerCase() + ")");
            return new WeightOutcome.GroupJoined(new Joined(spec.groupName(), rank, spec.worldSize(), backend.name().toLowerCase()));
        } catch (WeightSyncGroup.GroupException e) {
            groups.remove(spec.groupName(), claim);
            return refused(WeightOutcome.Reason.BAD_REQUEST, e.getMessage());
        }
    }

    private String checkSpec(Spec spec, C10d.Backend backend) {
        if (settings.tpSize() > 1)  // every server rank would have to join, at rank_offset + its rank, and receive each broadcast
            return "init_weights_update_group is not supported yet with the model in " + settings.tpSize()
                    + " tensor-parallel shards (rollout.tp-size)";
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

    /**
     * Receives the tensors a push announces, broadcast by the trainer's rank 0 in the order
     * given; the caller checks and applies them. Throws {@link Refusal} with what the caller
     * should be told.
     */
    public Map<String, Tensor> receive(String groupName, List<Announced> tensors, boolean flattened) throws Refusal {
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
            List<Tensor> buffers;
            try {
                buffers = flattened ? List.of(allocateFlat(tensors, g.backend())) : allocate(tensors, g.backend());
            } catch (IOException | RuntimeException e) {
                g.markBroken("a push could not be received (" + e.getMessage() + "), so its broadcasts were never met");
                throw new Refusal(WeightOutcome.Reason.BAD_REQUEST, e.getMessage() + "; the trainer's broadcasts of this update were not "
                        + "received, so group '" + groupName + "' is out of step: destroy it and form it again");
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
        } finally {
            m.turn().unlock();
        }
    }

    /** Empty tensors for every announced one, after checking that all of them can be: none or all. */
    private List<Tensor> allocate(List<Announced> tensors, C10d.Backend backend) throws IOException {
        long total = 0;
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Announced a : tensors) {
            if (!names.add(a.name())) throw new IOException(a.name() + " is announced twice");
            String dtype = TensorPayloads.safetensorsDtype(a.dtype());
            total += TensorLayout.nbytes(a.shape(), dev.rollout.model.Safetensors.bytesPer(dtype), a.name());
            if (total > settings.maxBytes())
                throw new IOException("the update announces more than " + settings.maxBytes() + " bytes");
        }
        Device device = receiveDevice(backend);
        List<Tensor> out = new ArrayList<>(tensors.size());
        for (Announced a : tensors) {
            out.add(Torch.empty(Torch.options(Checkpoint.scalarType(TensorPayloads.safetensorsDtype(a.dtype())), device), a.shape()));
        }
        return out;
    }

    /**
     * SGLang's flattened bucket on this route: one uint8 broadcast holding each announced
     * tensor's row-major bytes, in the order announced, without padding.
     */
    private Tensor allocateFlat(List<Announced> tensors, C10d.Backend backend) throws IOException {
        List<TensorPayloads.FlatEntry> manifest = manifest(tensors);
        long total = manifest.isEmpty() ? 0 : manifest.get(manifest.size() - 1).end();
        if (total > settings.maxBytes()) throw new IOException("the update announces more than " + settings.maxBytes() + " bytes");
        TensorPayloads.checkManifest(manifest, total);
        return Torch.empty(Torch.options(torch.ScalarType.Byte, receiveDevice(backend)), total);
    }

    /** The byte ranges of a flattened bucket: running sums of the announced tensors' sizes. */
    private static List<TensorPayloads.FlatEntry> manifest(List<Announced> tensors) throws IOException {
        List<TensorPayloads.FlatEntry> out = new ArrayList<>(tensors.size());
        long at = 0;
        for (Announced a : tensors) {
            long n = TensorLayout.nbytes(a.shape(), dev.rollout.model.Safetensors.bytesPer(TensorPayloads.safetensorsDtype(a.dtype())), a.name());
            out.add(new TensorPayloads.FlatEntry(a.name(), a.dtype(), a.shape(), at, at + n));
            at += n;
        }
        return out;
    }

    private Device receiveDevice(C10d.Backend backend) {
        return new Device(backend == C10d.Backend.NCCL ? settings.device() : "cpu");
    }

    /** Leaves the group and forgets it. */
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
            m.group().close();
            LOG.info(() -> "left weight update group '" + groupName + "'");
            return new WeightOutcome.GroupLeft(groupName);
        } finally {
            m.turn().unlock();
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
        for (Member m : groups.values()) if (m.group() != null) m.group().close();
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
