package dev.rollout.trainer;

import dev.rollout.client.PushResult;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.RolloutClientException;
import dev.rollout.client.WeightBuckets;
import dev.rollout.safetensors.SafetensorsWriter;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Pushes the weights of a tensor-parallel trainer, veRL's {@code VerlEngine} role: each rank holds
 * a shard of every parameter; the ranks all-gather them over the group, and rank 0 alone
 * assembles the full tensors, cuts them into safetensors buckets and sends each over HTTP as one
 * update of one atomic session. The other ranks have no client and never open a connection.
 *
 * <p>Every rank must call {@link #push} with the same parameter names in the same order and the
 * same bucket size: the buckets are planned from the shards' shapes alone, so all ranks meet in
 * the same collectives. Whatever happens to rank 0's HTTP calls, every rank takes part in every
 * gather, and rank 0 then tells the others whether the push succeeded; no rank is left waiting.
 */
public final class TpWeightPusher {
    /**
     * A rank's part of one parameter: split evenly over the ranks along {@code dim} (0 for a
     * column-parallel weight, 1 for a row-parallel one), or, with {@code dim} -1, the whole
     * parameter, the same on every rank. gloo gathers host memory: GPU shards are copied first.
     */
    public record Shard(Tensor tensor, int dim) {
        public static Shard split(Tensor part, int dim) {
            return new Shard(part, dim);
        }

        public static Shard replicated(Tensor whole) {
            return new Shard(whole, -1);
        }
    }

    /** What a push did: on rank 0 the buckets, the HTTP updates sent and the server's answer; elsewhere no updates and no answer. */
    public record Result(int buckets, int httpUpdates, PushResult server) {}

    private final TrainerGroup group;
    private final RolloutClient client;

    /** @param rank0Client the server's client on rank 0; null on every other rank */
    public TpWeightPusher(TrainerGroup group, RolloutClient rank0Client) {
        if ((group.rank() == 0) != (rank0Client != null))
            throw new IllegalArgumentException("rank 0, and only rank 0, pushes over HTTP: rank " + group.rank()
                    + (rank0Client == null ? " needs a client" : " must not have a client"));
        this.group = group;
        this.client = rank0Client;
    }

    public Result push(Map<String, Shard> params, long bucketBytes, String weightVersion) {
        List<List<String>> buckets = plan(params, bucketBytes);
        RolloutClient.UpdateSession session = null;
        RuntimeException failure = null;
        PushResult answer = null;
        int updates = 0;
        if (client != null && buckets.size() > 1) {
            try {
                session = client.beginWeightUpdate();
            } catch (RolloutClientException e) {
                failure = e;
            }
        }
        for (List<String> bucket : buckets) {
            Map<String, SafetensorsWriter.Tensor> full = new LinkedHashMap<>();
            try (PointerScope scope = new PointerScope()) {
                for (String name : bucket) {
                    Tensor whole = gather(name, params.get(name));
                    if (client != null) full.put(name, hostBytes(name, whole));
                }
            }
            if (client == null || failure != null) continue;  // rank 0 keeps gathering after a failure: the others are in the gathers
            try {
                byte[] body = SafetensorsWriter.bytes(full);
                if (session == null) answer = client.pushWeights(body, weightVersion);
                else session.pushBucket(body);
                updates++;
            } catch (RuntimeException e) {
                failure = e;
            }
        }
        if (session != null) {
            try {
                if (failure == null) answer = session.commit(weightVersion);
                else session.abort();
            } catch (RuntimeException e) {
                if (failure == null) failure = e;
                else failure.addSuppressed(e);
            }
        }
        boolean failed = agreeOnFailure(failure != null);
        if (failure != null) throw failure;
        if (failed) throw new IllegalStateException("rank 0's push of " + weightVersion + " failed (its log says why); rank "
                + group.rank() + " gathered its shards");
        return new Result(buckets.size(), updates, answer);
    }

    /** The buckets, from the full tensors' sizes: the same on every rank. */
    private List<List<String>> plan(Map<String, Shard> params, long bucketBytes) {
        Map<String, Long> sizes = new LinkedHashMap<>();
        params.forEach((name, s) -> sizes.put(name, s.tensor().nbytes() * (s.dim() < 0 ? 1 : group.world())));
        return WeightBuckets.plan(sizes, bucketBytes);
    }

    /** The whole parameter on this rank's host: the shards concatenated along their dim. */
    private Tensor gather(String name, Shard s) {
        Tensor part = s.tensor().cpu();
        if (s.dim() < 0 || group.world() == 1) return part.contiguous();
        if (s.dim() >= part.dim()) throw new IllegalArgumentException(name + ": split dim " + s.dim() + " of a " + part.dim() + "-D shard");
        // all-gather concatenates along dim 0: move the split dim there and back
        Tensor moved = part.movedim(s.dim(), 0).contiguous();  // (d, ...) with d = this rank's slice of the split dim
        long[] shape = moved.sizes().vec().get();
        shape[0] *= group.world();
        TensorOptions like = moved.options();
        Tensor all = torch.empty(shape, like, new MemoryFormatOptional());  // (world * d, ...)
        group.allGather(all, moved);
        return all.movedim(0, s.dim()).contiguous();
    }

    private static SafetensorsWriter.Tensor hostBytes(String name, Tensor t) {
        String dtype = switch (t.scalar_type().intern()) {  // intern(): JavaCPP returns native enums as new instances
            case BFloat16 -> "BF16";
            case Half -> "F16";
            case Float -> "F32";
            case Double -> "F64";
            default -> throw new IllegalArgumentException(name + ": weights are floating point, not " + t.scalar_type());
        };
        if (t.nbytes() > Integer.MAX_VALUE - 8)
            throw new IllegalArgumentException(name + ": " + t.nbytes() + " bytes do not fit one Java array (2 GiB)");
        byte[] b = new byte[(int) t.nbytes()];
        new BytePointer(t.data_ptr()).capacity(b.length).get(b);
        return new SafetensorsWriter.Tensor(dtype, t.sizes().vec().get(), ByteBuffer.wrap(b));
    }

    /** Rank 0's verdict, on every rank. */
    private boolean agreeOnFailure(boolean rank0Failed) {
        try (PointerScope scope = new PointerScope()) {
            Tensor flag = torch.zeros(new long[] {1}, new TensorOptions(ScalarType.Int));
            if (group.rank() == 0 && rank0Failed) flag.fill_(new org.bytedeco.pytorch.Scalar(1));
            group.broadcastFromRank0(flag);
            return flag.item_int() != 0;
        }
    }
}
