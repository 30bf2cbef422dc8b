package dev.rollout.engine;

import dev.rollout.model.ExpertNames;
import dev.rollout.model.ParameterTable;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the served engine is, as an immutable value: the model, its parameters' names and shapes,
 * the dtype, device and cache sizes. The loop publishes it at start and again after every change
 * (a memory release or resume); HTTP threads read it instead of the engine, so they can answer
 * in every state, including while the weights are released.
 *
 * @param parameterCount  parameters of the model (a tied head counted once), fixed at load
 * @param weightBytes     bytes the weights take on the device when resident
 * @param dtype           as transformers spells it: float32, bfloat16, float16
 * @param parameterShapes every parameter's shape by Hugging Face name, in load order
 * @param weightsResident false while the weights are released
 * @param weightsHostBackup whether releasing the weights keeps a host copy to restore on resume
 * @param routedExperts   whether requests may ask for their tokens' routed experts (a mixture of
 *                        experts, served with rollout.enable-return-routed-experts)
 */
public record EngineInfo(String architecture, String modelType, long parameterCount, long weightBytes, String dtype,
                         String device, int maxModelLen, int vocabSize, int numKvBlocks, int blockSize, int maxRunning,
                         int maxBatchedTokens, Map<String, List<Long>> parameterShapes, boolean weightsResident,
                         boolean weightsHostBackup, int tpSize, boolean routedExperts) {
    public EngineInfo {
        parameterShapes = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(parameterShapes));
    }

    /** Tokens the KV cache holds. */
    public long kvTokens() {
        return (long) numKvBlocks * blockSize;
    }

    /** The width of the model's embeddings: what a prompt given as embeddings must have per row. */
    public int hiddenSize() {
        return parameterShapes.get("model.embed_tokens.weight").get(1).intValue();
    }

    /**
     * The shape that reading {@code name} back answers: a parameter's (Mixtral's router by
     * transformers 5's name too), or a mixture of experts' stacked tensor by transformers 5's name
     * ({@link ExpertNames}); null for neither.
     */
    public List<Long> readableShape(String name) {
        List<Long> shape = parameterShapes.get(ExpertNames.parameterName(name, parameterShapes.keySet()));
        return shape != null ? shape : ExpertNames.stackedShape(name, parameterShapes);
    }

    /**
     * Why a tensor of {@code shape} cannot be loaded into parameter {@code name}, or null if it
     * can, or if a push may carry it and the engine skips it: a tied model's {@code lm_head.weight}
     * (which a trainer's full {@code state_dict()} holds) and buffers such as rotary frequencies,
     * as SGLang's loaders skip them and as {@code WeightControl} does.
     */
    public String shapeMismatch(String name, long[] shape) {
        List<Long> want = parameterShapes.get(name);
        if (want == null && (ParameterTable.ignorable(name) || name.equals("lm_head.weight")))
            return null;  // no lm_head.weight among the parameters: the head is tied to the embedding
        if (want == null) return "unknown parameter " + name;
        long[] w = want.stream().mapToLong(Long::longValue).toArray();
        return Arrays.equals(w, shape) ? null : name + " has shape " + Arrays.toString(w) + ", got " + Arrays.toString(shape);
    }

    EngineInfo withWeightsResident(boolean resident) {
        return new EngineInfo(architecture, modelType, parameterCount, weightBytes, dtype, device, maxModelLen, vocabSize,
                numKvBlocks, blockSize, maxRunning, maxBatchedTokens, parameterShapes, resident, weightsHostBackup, tpSize, routedExperts);
    }
}
