package dev.rollout.client;

import java.util.List;
import java.util.Map;

/**
 * What a drain left behind.
 *
 * @param finished the request ids that finished within the drain's time
 * @param cut      the partial output ids of those it then retracted or aborted, by request id
 * @param mode     "retract" or "abort", as the server applied it
 */
public record DrainResult(List<String> finished, Map<String, int[]> cut, String mode) {}
