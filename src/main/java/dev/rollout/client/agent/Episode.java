package dev.rollout.client.agent;

import java.util.List;

/**
 * One finished episode, in the shape a trainer consumes: the prompt's ids, then everything after
 * it (the model's turns and the environment's answers) as one id sequence, with a mask that is 1
 * on the model's tokens and 0 on the environment's, and each model token's logprob under the
 * weights that sampled it (0 on environment tokens).
 *
 * @param question          the task
 * @param promptIds         the first prompt
 * @param responseIds       the model's turns and the environment's answers, in order
 * @param responseMask      1 where the model wrote the token, 0 where the environment did
 * @param responseLogprobs  the model's logprob of each of its tokens; 0 elsewhere
 * @param reward            the environment's reward for the final answer (0 when there is none)
 * @param weightVersions    the weight version of each turn, in order (updates may land between turns)
 * @param turns             assistant turns generated
 * @param toolCalls         tool calls made, malformed ones included
 * @param toolFailures      calls whose every try failed (the model was told so)
 * @param finish            how it ended: answered, turn_limit, length, or error
 * @param finalText         the last assistant turn's text
 * @param error             what failed when {@code finish} is error, else null
 */
public record Episode(String question, int[] promptIds, int[] responseIds, int[] responseMask, float[] responseLogprobs,
                      double reward, List<String> weightVersions, int turns, int toolCalls, int toolFailures, String finish,
                      String finalText, String error) {
    public static final String ANSWERED = "answered", TURN_LIMIT = "turn_limit", LENGTH = "length", ERROR = "error";

    /** The number of tokens the model wrote. */
    public int modelTokens() {
        int n = 0;
        for (int m : responseMask) n += m;
        return n;
    }
}
