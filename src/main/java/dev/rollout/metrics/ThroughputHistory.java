package dev.rollout.metrics;

import dev.rollout.engine.EngineStats;
import jakarta.annotation.PreDestroy;
import jakarta.annotation.Resource;
import jakarta.enterprise.concurrent.ManagedScheduledExecutorService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.context.Initialized;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The last five minutes of throughput and load, one point a second, for the status page: the
 * server keeps the history so that a page opened late still shows the recent past. Rates come
 * from {@link EngineMetrics}' step counters, which count as steps run, not as sequences finish.
 */
@ApplicationScoped
public class ThroughputHistory {
    static final int POINTS = 300;
    static final long INTERVAL_MS = 1000;

    /** One second: tokens generated and computed per second, and the load at its end. */
    public record Point(long atMillis, double sampledPerSecond, double computedPerSecond, int running, int waiting, double kvUsage) {}

    @Inject
    EngineMetrics metrics;

    @Resource(lookup = "java:comp/DefaultManagedScheduledExecutorService")
    ManagedScheduledExecutorService timer;

    private final ArrayDeque<Point> points = new ArrayDeque<>();
    private ScheduledFuture<?> task;
    private long lastNanos, lastSampled, lastComputed;

    void start(@Observes @Initialized(ApplicationScoped.class) Object init) {
        lastNanos = System.nanoTime();
        task = timer.scheduleAtFixedRate(this::sample, INTERVAL_MS, INTERVAL_MS, TimeUnit.MILLISECONDS);
    }

    @PreDestroy
    void stop() {
        if (task != null) task.cancel(false);
    }

    private void sample() {
        long now = System.nanoTime(), sampled = metrics.sampledTokens(), computed = metrics.stepTokens();
        double dt = Math.max(1e-3, (now - lastNanos) / 1e9);
        EngineStats s = metrics.stats();
        Point p = new Point(System.currentTimeMillis(), (sampled - lastSampled) / dt, (computed - lastComputed) / dt,
                s == null ? 0 : s.numRunning(), s == null ? 0 : s.numWaiting(), s == null ? 0 : s.tokenUsage());
        lastNanos = now;
        lastSampled = sampled;
        lastComputed = computed;
        synchronized (points) {
            if (points.size() == POINTS) points.removeFirst();
            points.addLast(p);
        }
    }

    /** Oldest first. */
    public List<Point> points() {
        synchronized (points) {
            return List.copyOf(points);
        }
    }
}
