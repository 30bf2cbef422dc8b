package dev.rollout.client;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

/**
 * Data-parallel replicas behind one handle: several rollout servers, on one machine or behind a
 * Kubernetes headless Service. Each generation goes to the server with the fewest requests this
 * router has outstanding there, except that calls with the same affinity key (a GRPO group, a
 * conversation) go where the key went first, so that the server's prefix cache holds their
 * shared prompt. Weight pushes go to every server.
 */
public final class RolloutRouter {
    /** Affinity keys remembered at most; the least recently used is forgotten first. */
    static final int MAX_KEYS = 100_000;

    private final List<RolloutClient> servers;
    private final AtomicInteger[] outstanding;
    private final AtomicLong[] dispatched;
    private final AtomicInteger next = new AtomicInteger();
    private final Map<String, Integer> sticky = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Integer> eldest) {
            return size() > MAX_KEYS;
        }
    };

    public RolloutRouter(List<RolloutClient> servers) {
        if (servers.isEmpty()) throw new IllegalArgumentException("a router needs at least one server");
        this.servers = List.copyOf(servers);
        this.outstanding = new AtomicInteger[servers.size()];
        this.dispatched = new AtomicLong[servers.size()];
        for (int i = 0; i < servers.size(); i++) {
            outstanding[i] = new AtomicInteger();
            dispatched[i] = new AtomicLong();
        }
    }

    /** Waits until every server is ready, within {@code timeout} overall. */
    public void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        for (RolloutClient s : servers) s.awaitReady(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
    }

    /**
     * Generates on the server for {@code affinityKey} (null: the least loaded one), without
     * blocking.
     */
    public CompletableFuture<Generation> generateAsync(String affinityKey, int[] inputIds, Sampling sampling) {
        int i = choose(affinityKey);
        outstanding[i].incrementAndGet();
        dispatched[i].incrementAndGet();
        CompletableFuture<Generation> call;
        try {
            call = servers.get(i).generateAsync(inputIds, sampling);
        } catch (RuntimeException e) {
            outstanding[i].decrementAndGet();
            throw e;
        }
        return call.whenComplete((g, e) -> outstanding[i].decrementAndGet());
    }

    /** Pushes the same buckets to every server at once, as one atomic update each; returns each server's result, in order. */
    public List<PushResult> pushWeights(List<byte[]> buckets, String weightVersion) {
        return onEveryServer(s -> s.pushWeights(buckets, weightVersion));
    }

    /** Pushes one safetensors file to every server at once, outside a session (SGLang's semantics). */
    public List<PushResult> pushWeights(byte[] safetensors, String weightVersion) {
        return onEveryServer(s -> s.pushWeights(safetensors, weightVersion));
    }

    private List<PushResult> onEveryServer(Function<RolloutClient, PushResult> push) {
        List<CompletableFuture<PushResult>> pushes = new ArrayList<>();
        for (RolloutClient s : servers) pushes.add(CompletableFuture.supplyAsync(() -> push.apply(s)));
        List<PushResult> out = new ArrayList<>();
        for (CompletableFuture<PushResult> p : pushes) {
            try {
                out.add(p.join());
            } catch (CompletionException e) {
                throw e.getCause() instanceof RolloutClientException r ? r : e;
            }
        }
        return out;
    }

    /** The server that {@code affinityKey} goes to (choosing and remembering one if it is new); null: the least loaded. */
    int choose(String affinityKey) {
        if (affinityKey == null) return leastLoaded();
        synchronized (sticky) {
            Integer i = sticky.get(affinityKey);
            if (i == null) {
                i = leastLoaded();
                sticky.put(affinityKey, i);
            }
            return i;
        }
    }

    /** The fewest outstanding requests; ties rotate, so that an idle router spreads its first calls. */
    private int leastLoaded() {
        int n = servers.size(), start = Math.floorMod(next.getAndIncrement(), n), best = start;
        for (int k = 1; k < n; k++) {
            int i = (start + k) % n;
            if (outstanding[i].get() < outstanding[best].get()) best = i;
        }
        return best;
    }

    public int size() {
        return servers.size();
    }

    /** Requests this router has sent to server {@code i} so far. */
    public long dispatched(int i) {
        return dispatched[i].get();
    }

    /** Requests this router has in flight on server {@code i} now. */
    public int outstanding(int i) {
        return outstanding[i].get();
    }
}
