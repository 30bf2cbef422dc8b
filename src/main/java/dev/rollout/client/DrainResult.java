package dev.rollout.client;

import java.util.List;
import java.util.Map;

/**
 * What a drain left behind.
 *
 * @param success           SGLang's: no request was running or waiting when the drain answered
 * @param remainingRequests the requests still running or waiting then (retracted ones included)
 * @param finished          the request ids that were running when the drain began and finished in time
 * @param cut               the partial output ids of those it then retracted or aborted, by request id
 * @param mode              "wait" (SGLang's: nothing cut), "retract" or "abort", as the server applied it
 * @param paused            whether the drain left the server paused (retract and abort do)
 */
public record DrainResult(boolean success, int remainingRequests, List<String> finished, Map<String, int[]> cut, String mode,
                          boolean paused) {}
