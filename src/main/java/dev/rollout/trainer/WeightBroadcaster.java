package dev.rollout.trainer;

import dev.rollout.dist.C10d;
import dev.rollout.client.PushResult;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.RolloutClientException;
import dev.rollout.dist.WeightSyncGroup;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.bytedeco.pytorch.Tensor;

/**
 * A trainer's rank 0 pushing weights to a server by broadcast, the path of slime, AReaL and
 * SGLang's own test (init_weights_update_group, update_weights_from_distributed,
 * destroy_weights_update_group): this process hosts the group's rendezvous and broadcasts; the
 * server's tensor-parallel ranks join as ranks 1 to tp_size. Each call and its broadcasts run side by side,
 * as they must: the server answers a call only once the collectives it announces are done.
 */
public final class WeightBroadcaster implements AutoCloseable {
    private final RolloutClient client;
    private final WeightSyncGroup group;

    private WeightBroadcaster(RolloutClient client, WeightSyncGroup group) {
        this.client = client;
        this.group = group;
    }

    /**
     * Forms the group named {@code groupName} with the server: asks it to join at
     * {@code host:port} (an address of this machine that the server can reach) and joins as rank
     * 0 meanwhile. Fails within {@code timeout} if the server does not come.
     */
    public static WeightBroadcaster form(RolloutClient client, String host, int port, String groupName, C10d.Backend backend,
                                         Duration timeout) throws WeightSyncGroup.GroupException {
        int world = 1 + client.tpSize();   // this process, then every rank of the server
        CompletableFuture<?> joining = client.initWeightsUpdateGroup(host, port, 1, world, groupName, backend.name().toLowerCase(), timeout);
        WeightSyncGroup group;
        try {
            group = WeightSyncGroup.join(host, port, 0, world, groupName, backend, timeout);
        } catch (WeightSyncGroup.GroupException e) {
            // the server's own answer says more than the timeout does, when it came
            String server = answerOrNull(joining);
            throw server == null ? e : new WeightSyncGroup.GroupException(e.getMessage() + "; the server said: " + server, e);
        }
        try {
            joining.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            group.close();
            throw new WeightSyncGroup.GroupException("the server did not confirm the group '" + groupName + "': " + cause(e), e);
        }
        return new WeightBroadcaster(client, group);
    }

    /**
     * Pushes {@code tensors} (Hugging Face names; any floating dtype, in host memory for gloo) as
     * one update, stamped {@code version}: announces them, broadcasts each in order, and returns
     * the server's answer once it has applied them.
     */
    public PushResult push(Map<String, Tensor> tensors, String version) throws WeightSyncGroup.GroupException {
        List<RolloutClient.BroadcastTensor> announced = new ArrayList<>();
        List<Tensor> order = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            Tensor t = e.getValue().contiguous();
            long[] shape = new long[(int) t.dim()];
            for (int i = 0; i < shape.length; i++) shape[i] = t.size(i);
            announced.add(new RolloutClient.BroadcastTensor(e.getKey(), dtypeName(t), shape));
            order.add(t);
        }
        CompletableFuture<PushResult> answer = client.updateWeightsFromDistributed(group.name(), announced, version);
        try {
            group.broadcastFromRank0(order);
        } catch (WeightSyncGroup.GroupException e) {
            String server = answerOrNull(answer);
            throw server == null ? e : new WeightSyncGroup.GroupException(e.getMessage() + "; the server said: " + server, e);
        }
        try {
            return answer.get(group.timeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RolloutClientException r) throw r;
            throw new IllegalStateException(e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("the server did not answer within " + group.timeout().toSeconds() + " s of the broadcasts");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    public WeightSyncGroup group() {
        return group;
    }

    /** Asks the server to leave the group, then leaves it. */
    @Override
    public void close() {
        try {
            client.destroyWeightsUpdateGroup(group.name());
        } finally {
            group.close();
        }
    }

    /** torch's name of a tensor's dtype, as SGLang's request carries it. */
    static String dtypeName(Tensor t) {
        return switch (t.scalar_type().intern()) {  // intern(): JavaCPP returns native enums as new instances
            case Float -> "float32";
            case BFloat16 -> "bfloat16";
            case Half -> "float16";
            case Double -> "float64";
            default -> throw new IllegalArgumentException("weights are floating point, not " + t.scalar_type());
        };
    }

    /** A finished call's refusal, in the server's words, or null when it has not finished or succeeded. */
    private static String answerOrNull(CompletableFuture<?> f) {
        try {
            f.get(2, TimeUnit.SECONDS);
            return null;
        } catch (ExecutionException e) {
            return cause(e);
        } catch (Exception e) {
            return null;
        }
    }

    private static String cause(Exception e) {
        Throwable c = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        return c.getMessage();
    }
}
