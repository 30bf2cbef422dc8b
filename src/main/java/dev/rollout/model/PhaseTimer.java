package dev.rollout.model;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The GPU time of each phase of decode steps (eager: each layer's GEMMs, attention, fused ops, the
 * LM head; replayed from a CUDA graph: the replay as one phase, a step that captured its graph left
 * out; then sampling, up to the host's copy of its tokens), from CUDA events recorded between the
 * phases on the compute stream. A benchmark's profile (EngineBench
 * --phase-profile) where Nsight tools are missing or too slow: the events measure what the GPU
 * spent, not what the host did, as long as the host stays ahead of the GPU within the step. A
 * step's wall time less the sum of its phases is then the host's work the GPU waited for (what
 * overlapping host and GPU work could win). Off by default, and then free: {@link #OFF} records
 * nothing. Never on during a graph's capture ({@code DecodeGraphs} turns it off), where its
 * events would become nodes of the graph.
 */
public final class PhaseTimer {
    public static final PhaseTimer OFF = new PhaseTimer(false);

    private final boolean on;
    private final List<Long> events = new ArrayList<>();  // CUDA events (RolloutCuda), reused step after step
    private final List<String> phases = new ArrayList<>();      // the phase that ends at each event
    private final Map<String, double[]> totals = new LinkedHashMap<>();  // phase -> {ms, marks}
    private int used, steps;

    private PhaseTimer(boolean on) {
        this.on = on;
    }

    public static PhaseTimer cuda() {
        return new PhaseTimer(true);
    }

    /** Starts a step: the first event. */
    public void begin() {
        if (!on) return;
        used = 0;
        phases.clear();
        record();
    }

    /** Ends {@code phase}: the GPU time from the event before to this one is its. */
    public void mark(String phase) {
        if (!on || used == 0) return;
        phases.add(phase);
        record();
    }

    /** Ends a step: waits for its last event, and adds its phases when {@code count} (decode-only steps). */
    public void endStep(boolean count) {
        if (!on || used == 0) return;
        RolloutCuda.eventSynchronize(events.get(used - 1));
        if (count) {
            for (int i = 1; i < used; i++) {
                double[] t = totals.computeIfAbsent(phases.get(i - 1), k -> new double[2]);
                t[0] += RolloutCuda.eventElapsedMs(events.get(i - 1), events.get(i));
                t[1]++;
            }
            steps++;
        }
        used = 0;
    }

    /** Each phase's mean GPU milliseconds per counted step, in first-seen order, and how often it ran per step. */
    public Map<String, double[]> perStep() {
        Map<String, double[]> out = new LinkedHashMap<>();
        totals.forEach((k, v) -> out.put(k, new double[] {v[0] / Math.max(1, steps), v[1] / Math.max(1, steps)}));
        return out;
    }

    public int steps() {
        return steps;
    }

    public void reset() {
        totals.clear();
        steps = 0;
    }

    private void record() {
        if (used == events.size()) events.add(RolloutCuda.eventCreate());
        RolloutCuda.eventRecord(events.get(used++));
    }
}
