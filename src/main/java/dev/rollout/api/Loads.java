package dev.rollout.api;

import dev.rollout.engine.EngineStats;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * SGLang's {@code GET /v1/loads} document (sgl-project/sglang python/sglang/srt/entrypoints/v1_loads.py
 * at 5b49fe62, with the core section of GetLoadsReqOutput as scheduler_metrics_mixin.get_loads fills
 * it): the load of each data-parallel rank (we have one, rank 0), and their sum. Built from the
 * stats the engine loop publishes after every step and command, so reading it never waits on the
 * engine. slime polls it after an abort_all until the requests sum to 0.
 *
 * <p>The optional sections (memory, spec, lora, disagg, queues) are accepted by name and left out,
 * as SGLang leaves out a section it has nothing for: we have no speculative decoding, LoRA or
 * disaggregation, and no breakdown of memory or queues beyond the core counts.
 */
public final class Loads {
    private Loads() {}

    /** SGLang's GetLoadsReqInput.VALID_SECTIONS. */
    static final Set<String> SECTIONS = Set.of("core", "memory", "spec", "lora", "disagg", "queues", "all");

    /**
     * One rank's load. {@code num_used_tokens} counts whole KV blocks (the tokens they hold room
     * for), as our cache is paged; {@code utilization} is SGLang's fallback without an SLO bound:
     * the larger of running / max_running_requests and token_usage / 0.9.
     */
    public record Load(int dpRank, int numRunningReqs, int numWaitingReqs, int numTotalReqs, long numUsedTokens,
                       long maxTotalNumTokens, double tokenUsage, double genThroughput, double cacheHitRate, double utilization,
                       int maxRunningRequests) {}

    public record Aggregate(int totalRunningReqs, int totalWaitingReqs, int totalReqs, double avgTokenUsage, double avgThroughput,
                            double avgUtilization) {}

    /** {@code timestamp} is ISO-8601 in UTC, as SGLang writes it. */
    public record Document(String timestamp, String version, int dpRankCount, List<Load> loads, Aggregate aggregate) {}

    /**
     * {@code include=core,queues}: comma-separated sections, absent or empty meaning all. Only the
     * names are checked (400 for an unknown one, as SGLang answers): core is always there, and
     * we have none of the others to add.
     */
    static void checkInclude(String raw) {
        if (raw == null || raw.isBlank()) return;
        Set<String> invalid = new TreeSet<>();
        for (String s : raw.split(",")) invalid.add(s.strip());
        invalid.removeAll(SECTIONS);
        if (!invalid.isEmpty())
            throw ApiException.badRequest("Invalid include sections: " + invalid + ". Valid options: " + new TreeSet<>(SECTIONS));
    }

    /** {@code format}: json (the default) or prometheus; SGLang answers JSON to any other value, we name the mistake. */
    static boolean prometheusFormat(String raw) {
        if (raw == null || raw.equals("json")) return false;
        if (raw.equals("prometheus")) return true;
        throw ApiException.badRequest("format must be json or prometheus, not \"" + raw + "\"");
    }

    /** {@code dp_rank=N}: only that rank's load; absent means every rank. */
    static Integer dpRank(String raw) {
        if (raw == null) return null;
        try {
            return Integer.parseInt(raw.strip());
        } catch (NumberFormatException e) {
            throw ApiException.badRequest("dp_rank must be an integer, not \"" + raw + "\"");
        }
    }

    /** Rank 0's load from the engine's published stats and the metrics' recent rates. */
    static Load load(EngineStats st, int maxRunningRequests, double genThroughput, double cacheHitRate) {
        double usage = st.tokenUsage();
        double utilization = Math.max(maxRunningRequests == 0 ? 0 : (double) st.numRunning() / maxRunningRequests, usage / 0.9);
        return new Load(0, st.numRunning(), st.numWaiting(), st.numRunning() + st.numWaiting(), (long) st.usedBlocks() * st.blockSize(),
                (long) st.totalBlocks() * st.blockSize(), round(usage, 4), round(genThroughput, 2), round(cacheHitRate, 4),
                round(utilization, 4), maxRunningRequests);
    }

    static Document document(List<Load> all, Integer dpRank, String version, Instant now) {
        List<Load> loads = all.stream().filter(l -> dpRank == null || l.dpRank() == dpRank).toList();
        int n = loads.size();
        Aggregate sum = new Aggregate(loads.stream().mapToInt(Load::numRunningReqs).sum(), loads.stream().mapToInt(Load::numWaitingReqs).sum(),
                loads.stream().mapToInt(Load::numTotalReqs).sum(),
                n == 0 ? 0 : round(loads.stream().mapToDouble(Load::tokenUsage).sum() / n, 4),
                n == 0 ? 0 : round(loads.stream().mapToDouble(Load::genThroughput).sum() / n, 2),
                n == 0 ? 0 : round(loads.stream().mapToDouble(Load::utilization).sum() / n, 4));
        return new Document(now.toString(), version, n, loads, sum);
    }

    /** {@code format=prometheus}: one gauge per numeric field, labelled by rank, in the text exposition format. */
    static String prometheus(List<Load> loads) {
        Map<String, Function<Load, Number>> gauges = new LinkedHashMap<>();
        gauges.put("num_running_reqs", Load::numRunningReqs);
        gauges.put("num_waiting_reqs", Load::numWaitingReqs);
        gauges.put("num_total_reqs", Load::numTotalReqs);
        gauges.put("num_used_tokens", Load::numUsedTokens);
        gauges.put("max_total_num_tokens", Load::maxTotalNumTokens);
        gauges.put("token_usage", Load::tokenUsage);
        gauges.put("gen_throughput", Load::genThroughput);
        gauges.put("cache_hit_rate", Load::cacheHitRate);
        gauges.put("utilization", Load::utilization);
        gauges.put("max_running_requests", Load::maxRunningRequests);
        StringBuilder out = new StringBuilder();
        gauges.forEach((name, value) -> {
            out.append("# TYPE sglang_").append(name).append(" gauge\n");
            for (Load l : loads)
                out.append("sglang_").append(name).append("{dp_rank=\"").append(l.dpRank()).append("\"} ").append(value.apply(l)).append('\n');
        });
        return out.toString();
    }

    private static double round(double v, int places) {
        double f = Math.pow(10, places);
        return Math.round(v * f) / f;
    }
}
