package dev.rollout.engine;

import java.util.Map;

/**
 * SHA-256 of every parameter's bytes as the engine holds them, by Hugging Face name.
 *
 * @param dtype    the engine's dtype as libtorch names it ("Float", "BFloat16")
 * @param combined one digest over all of them (see {@code ParameterTable.combinedChecksum})
 */
public record WeightChecksums(String weightVersion, String dtype, Map<String, String> perParameter, String combined) {
    public WeightChecksums {
        perParameter = Map.copyOf(perParameter);
    }
}
