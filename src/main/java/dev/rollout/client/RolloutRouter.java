package dev.rollout.client;

import dev.rollout.safetensors.SafetensorsWriter;
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
 *
 * <p>Failover: a server that does not answer (connection refused or lost, no HTTP status) is left
 * out for a cool-off period and the generation goes to another one; its affinity keys move with
 * it. A generation is retried only then, never after an HTTP answer (a refusal would be refused
 * again). A server whose weight push failed is left out until a later push to it succeeds: it
 * would serve the old policy.
 */
public final class RolloutRouter {
    /** Affinity keys remembered at most; the least recently used is forgotten first. */
    static final int MAX_KEYS = 100_000;
    static final Duration DEFAULT_COOL_OFF = Duration.ofSeconds(10);

    private final List<RolloutClient> servers;
    private final AtomicInteger[] outstanding;
    private final AtomicLong[] dispatched;
    private final AtomicLong[] downUntil;       // System.nanoTime() before which a server is left out
    private final boolean[] stale;              // its last push failed; guarded by this
    private final long coolOffNanos;
    private final AtomicInteger next = new AtomicInteger();
    private final Map<String, Integer> sticky = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Integer> eldest) {
            return size() > MAX_KEYS;
        }
    };

    public RolloutRouter(List<RolloutClient> servers) {
        this(servers, DEFAULT_COOL_OFF);
    }

    /** @param coolOff how long a server that did not answer is left out before it is tried again */
    public RolloutRouter(List<RolloutClient> servers, Duration coolOff) {
        if (servers.isEmpty()) throw new IllegalArgumentException("a router needs at least one server");
        this.servers = List.copyOf(servers);
        this.outstanding = new AtomicInteger[servers.size()];
        this.dispatched = new AtomicLong[servers.size()];
        this.downUntil = new AtomicLong[servers.size()];
        this.stale = new boolean[servers.size()];
        this.coolOffNanos = coolOff.toNanos();
        for (int i = 0; i < servers.size(); i++) {
            outstanding[i] = new AtomicInteger();
            dispatched[i] = new AtomicLong();
            downUntil[i] = new AtomicLong(System.nanoTime());
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
        return attempt(affinityKey, inputIds, sampling, servers.size());
    }

    /** One try, and on no answer another on a different server, up to one try per server. */
    private CompletableFuture<Generation> attempt(String affinityKey, int[] inputIds, Sampling sampling, int triesLeft) {
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
        return call.handle((g, e) -> {
            outstanding[i].decrementAndGet();
            if (e == null) return CompletableFuture.completedFuture(g);
            Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
            if (cause instanceof RolloutClientException r && r.status() == 0) {  // no answer: this server is out for now
                downUntil[i].set(System.nanoTime() + coolOffNanos);
                if (triesLeft > 1 && availableCount() > 0) return attempt(affinityKey, inputIds, sampling, triesLeft - 1);  // i is out now
            }
            return CompletableFuture.<Generation>failedFuture(cause);
        }).thenCompose(f -> f);
    }

    /** Pushes the same buckets to every server at once, as one atomic update each; returns each server's result, in order. */
    public List<PushResult> pushWeights(List<byte[]> buckets, String weightVersion) {
        return onEveryServer(s -> s.pushWeights(buckets, weightVersion));
    }

    /** Pushes named tensors in safetensors buckets to every server at once ({@link RolloutClient#pushTensors}). */
    public List<PushResult> pushTensors(Map<String, SafetensorsWriter.Tensor> tensors, long bucketBytes, String weightVersion) {
        return onEveryServer(s -> s.pushTensors(tensors, bucketBytes, weightVersion));
    }

    /** Pushes one safetensors file to every server at once, outside a session (SGLang's semantics). */
    public List<PushResult> pushWeights(byte[] safetensors, String weightVersion) {
        return onEveryServer(s -> s.pushWeights(safetensors, weightVersion));
    }

    /**
     * Runs a push on every server at once and waits for all of them. A server whose push fails is
     * left out of generation until a later push to it succeeds; the first failure is thrown once
     * every push has ended.
     */
    private List<PushResult> onEveryServer(Function<RolloutClient, PushResult> push) {
        List<CompletableFuture<PushResult>> pushes = new ArrayList<>();
        for (RolloutClient s : servers) pushes.add(CompletableFuture.supplyAsync(() -> push.apply(s)));
        List<PushResult> out = new ArrayList<>();
        RuntimeException first = null;
        for (int i = 0; i < pushes.size(); i++) {
            try {
                out.add(pushes.get(i).join());
                synchronized (this) {
                    stale[i] = false;
                }
            } catch (CompletionException e) {
                synchronized (this) {
                    stale[i] = true;
                }
                if (first == null) first = e.getCause() instanceof RolloutClientException r ? r : e;
            }
        }
        if (first != null) throw first;
        return out;
    }

    /** The server that {@code affinityKey} goes to (choosing and remembering one if it is new or out); null: the least loaded. */
    int choose(String affinityKey) {
        if (affinityKey == null) return leastLoaded();
        synchronized (sticky) {
            Integer i = sticky.get(affinityKey);
            if (i == null || (!available(i) && availableCount() > 0)) {
                i = leastLoaded();
                sticky.put(affinityKey, i);
            }
            return i;
        }
    }

    /**
     * The available server with the fewest outstanding requests (every server when none is
     * available); ties rotate, so that an idle router spreads its first calls.
     */
    private int leastLoaded() {
        int n = servers.size(), start = Math.floorMod(next.getAndIncrement(), n);
        boolean any = availableCount() > 0;
        int best = -1;
        for (int k = 0; k < n; k++) {
            int i = (start + k) % n;
            if (any && !available(i)) continue;
            if (best < 0 || outstanding[i].get() < outstanding[best].get()) best = i;
        }
        return best;
    }

    /** Whether server {@code i} takes generations now: it answered lately, and its last push did not fail. */
    public boolean available(int i) {
        synchronized (this) {
            if (stale[i]) return false;
        }
        return System.nanoTime() - downUntil[i].get() >= 0;
    }

    private int availableCount() {
        int c = 0;
        for (int i = 0; i < servers.size(); i++) if (available(i)) c++;
        return c;
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
