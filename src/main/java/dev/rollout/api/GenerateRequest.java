package dev.rollout.api;

import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.PromptEmbeds;
import dev.rollout.engine.SamplingParams;
import java.util.List;

/**
 * A validated {@code /generate} call: one item per prompt (each sampled {@code params.n()}
 * times), plus how to answer.
 *
 * @param batch whether the caller sent lists (answer with a list even for one prompt)
 */
record GenerateRequest(List<Item> items, boolean batch, boolean stream, boolean returnTextInLogprobs) {

    /**
     * @param embeds        the prompt as embeddings ({@code inputIds} are then placeholders), or null
     * @param routedExperts return each token's routed experts (SGLang's return_routed_experts)
     */
    record Item(String rid, int[] inputIds, SamplingParams params, LogprobOptions logprobs, PromptEmbeds embeds, boolean routedExperts) {
        Item(String rid, int[] inputIds, SamplingParams params, LogprobOptions logprobs) {
            this(rid, inputIds, params, logprobs, null, false);
        }
    }

    int numSequences() {
        return items.stream().mapToInt(i -> i.params().n()).sum();
    }

    /** A list answer when several sequences come back, as SGLang does for batches and n > 1. */
    boolean answersWithList() {
        return batch || numSequences() > 1;
    }
}
