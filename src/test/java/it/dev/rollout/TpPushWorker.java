package it.dev.rollout;

import dev.rollout.client.RolloutClient;
import dev.rollout.model.Safetensors;
import dev.rollout.trainer.TpWeightPusher;
import dev.rollout.trainer.TrainerGroup;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One rank of a tensor-parallel trainer, as its own JVM (TpPushIT starts several): it holds its
 * shard of every parameter of a checkpoint, split as Megatron splits them (attention output and
 * MLP down projections along dim 1, other matrices along dim 0, vectors whole), and pushes
 * through {@link TpWeightPusher}. Rank 0 prints what it sent.
 *
 *   TpPushWorker RANK WORLD STORE_PORT CHECKPOINT_DIR SERVER_URL ADMIN_KEY BUCKET_BYTES VERSION
 */
public final class TpPushWorker {
    public static void main(String[] a) throws Exception {
        int rank = Integer.parseInt(a[0]), world = Integer.parseInt(a[1]), port = Integer.parseInt(a[2]);
        Path dir = Path.of(a[3]);
        long bucketBytes = Long.parseLong(a[6]);
        Map<String, TpWeightPusher.Shard> shards = new LinkedHashMap<>();
        for (var e : Safetensors.readHeader(dir.resolve("model.safetensors")).entrySet()) {
            Tensor whole = bf16(Safetensors.map(e.getValue()), e.getValue().shape());
            int dim = whole.dim() < 2 ? -1 : e.getKey().contains("o_proj") || e.getKey().contains("down_proj") ? 1 : 0;
            shards.put(e.getKey(), dim < 0 ? TpWeightPusher.Shard.replicated(whole)
                    : TpWeightPusher.Shard.split(whole.chunk(world, dim).get(rank).contiguous(), dim));
        }
        try (TrainerGroup group = TrainerGroup.join("127.0.0.1", port, rank, world, Duration.ofSeconds(120));
             RolloutClient client = rank == 0
                     ? RolloutClient.connect(URI.create(a[4]), RolloutClient.Options.defaults().withAdminApiKey(a[5])) : null) {
            TpWeightPusher.Result r = new TpWeightPusher(group, client).push(shards, bucketBytes, a[7]);
            System.out.printf("PUSHED rank=%d buckets=%d updates=%d tensors=%d version=%s%n", rank, r.buckets(), r.httpUpdates(),
                    r.server() == null ? 0 : r.server().numTensors(), r.server() == null ? "-" : r.server().weightVersion());
        }
    }

    /** The stored bf16 bytes as a tensor of its own. */
    private static Tensor bf16(ByteBuffer stored, long[] shape) {
        Tensor t = torch.empty(shape, new TensorOptions(ScalarType.BFloat16), new org.bytedeco.pytorch.MemoryFormatOptional());
        byte[] b = new byte[stored.remaining()];
        stored.duplicate().get(b);
        new BytePointer(t.data_ptr()).capacity(b.length).put(b);
        return t;
    }
}
