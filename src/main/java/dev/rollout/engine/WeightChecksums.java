package dev.rollout.engine;

import dev.rollout.model.ParameterTable;
import java.util.List;
import java.util.Map;

/**
 * SHA-256 of every parameter's bytes as the engine holds them, by Hugging Face name: of each
 * tensor-parallel rank's shards, in rank order (one entry at one rank), as SGLang's weights_checker
 * reports each rank's.
 *
 * @param dtype the engine's dtype as libtorch names it ("Float", "BFloat16")
 */
public record WeightChecksums(String weightVersion, String dtype, List<Map<String, String>> ranks) {
    public WeightChecksums {
        ranks = ranks.stream().map(Map::copyOf).toList();
    }

    /** Rank 0's (at one rank, the whole model's). */
    public Map<String, String> perParameter() {
        return ranks.get(0);
    }

    /** One digest over rank 0's (see {@link ParameterTable#combinedChecksum}). */
    public String combined() {
        return combined(0);
    }

    /** One digest over rank {@code rank}'s. */
    public String combined(int rank) {
        return ParameterTable.combinedChecksum(ranks.get(rank));
    }
}
