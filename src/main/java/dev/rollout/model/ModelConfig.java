package dev.rollout.model;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The parts of a Hugging Face {@code config.json} (and {@code generation_config.json}) that the
 * Llama-family forward pass needs. Qwen2 differs from Llama by the q/k/v bias, Qwen3 by the q/k
 * RMSNorm, Llama 3 by its RoPE frequency scaling; everything else is shared. Qwen2-MoE, Qwen3-MoE
 * and Mixtral are Qwen2, Qwen3 and Llama with a mixture of experts for the MLP ({@link Moe}).
 */
public record ModelConfig(
        String architecture,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        double rmsNormEps,
        Rope rope,
        int maxPositionEmbeddings,
        boolean tieWordEmbeddings,
        boolean qkvBias,
        boolean qkNorm,
        String torchDtype,
        List<Integer> eosTokenIds,
        Moe moe) {

    public static final List<String> ARCHITECTURES = List.of("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
            "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "MixtralForCausalLM");

    /** A dense model's config. */
    public ModelConfig(String architecture, int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numHeads,
                       int numKvHeads, int headDim, double rmsNormEps, Rope rope, int maxPositionEmbeddings, boolean tieWordEmbeddings,
                       boolean qkvBias, boolean qkNorm, String torchDtype, List<Integer> eosTokenIds) {
        this(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, rmsNormEps, rope,
                maxPositionEmbeddings, tieWordEmbeddings, qkvBias, qkNorm, torchDtype, eosTokenIds, null);
    }

    /**
     * The mixture-of-experts MLP of Qwen2-MoE, Qwen3-MoE and Mixtral: a router picks {@code topK}
     * of {@code experts} for each token, and their outputs are summed, weighted by the router's
     * probabilities.
     *
     * @param intermediate       each expert's intermediate size (moe_intermediate_size; Mixtral's intermediate_size)
     * @param normTopK           the top-k probabilities are scaled to sum to 1 (norm_topk_prob; always for Mixtral)
     * @param sharedIntermediate Qwen2-MoE's shared expert, which every token goes through, gated by
     *                           sigmoid(shared_expert_gate); 0 when there is none
     * @param sparseStep         decoder_sparse_step: every sparseStep-th layer is MoE ...
     * @param mlpOnlyLayers      ... unless listed here (mlp_only_layers); the others are dense, of intermediate_size
     * @param mixtralNames       the checkpoint's names are Mixtral's (block_sparse_moe.experts.E.w1/w3/w2), else Qwen's
     *                           (mlp.experts.E.gate_proj/up_proj/down_proj)
     */
    public record Moe(int experts, int topK, int intermediate, boolean normTopK, int sharedIntermediate, int sparseStep,
                      List<Integer> mlpOnlyLayers, boolean mixtralNames) {
        public Moe {
            mlpOnlyLayers = List.copyOf(mlpOnlyLayers);
            if (experts < 1 || topK < 1 || topK > experts)
                throw new IllegalArgumentException("num_experts_per_tok " + topK + " of " + experts + " experts");
            if (sparseStep < 1) throw new IllegalArgumentException("decoder_sparse_step must be at least 1, got " + sparseStep);
        }

        /** Whether layer {@code i} is MoE (transformers' rule), or dense. */
        public boolean sparse(int layer) {
            return !mlpOnlyLayers.contains(layer) && (layer + 1) % sparseStep == 0;
        }

        /** The same MoE with each expert's and the shared expert's intermediate size divided over {@code ranks}. */
        Moe split(int ranks) {
            return new Moe(experts, topK, intermediate / ranks, normTopK, sharedIntermediate / ranks, sparseStep, mlpOnlyLayers, mixtralNames);
        }
    }

    /** Whether layer {@code i}'s MLP is a mixture of experts. */
    public boolean sparse(int layer) {
        return moe != null && moe.sparse(layer);
    }

    /** RoPE parameters; {@code type} is "default" or "llama3". */
    public record Rope(String type, double theta, double factor, double lowFreqFactor,
                       double highFreqFactor, int originalMaxPositions) {}

    public ModelConfig {
        if (!ARCHITECTURES.contains(architecture))
            throw new IllegalArgumentException("unsupported architecture " + architecture + "; supported: " + ARCHITECTURES);
        if (numHeads % numKvHeads != 0)
            throw new IllegalArgumentException("num_attention_heads must be a multiple of num_key_value_heads");
        if (!rope.type().equals("default") && !rope.type().equals("llama3"))
            throw new IllegalArgumentException("unsupported rope type " + rope.type());
    }

    public int queryGroupSize() {
        return numHeads / numKvHeads;
    }

    /** The first of config.json's architectures or, where a config names none, its model_type's. */
    private static String architectureOf(JsonObject c) {
        if (has(c, "architectures") && c.get("architectures").isJsonArray() && !c.getAsJsonArray("architectures").isEmpty())
            return c.getAsJsonArray("architectures").get(0).getAsString();
        String type = has(c, "model_type") ? c.get("model_type").getAsString() : "";
        return switch (type) {
            case "qwen2" -> "Qwen2ForCausalLM";
            case "qwen3" -> "Qwen3ForCausalLM";
            case "llama" -> "LlamaForCausalLM";
            case "qwen2_moe" -> "Qwen2MoeForCausalLM";
            case "qwen3_moe" -> "Qwen3MoeForCausalLM";
            case "mixtral" -> "MixtralForCausalLM";
            default -> throw new IllegalArgumentException("config.json names no architectures, and its model_type '" + type
                    + "' is none of qwen2, qwen3, llama, qwen2_moe, qwen3_moe, mixtral");
        };
    }

    public static ModelConfig read(Path dir) throws IOException {
        JsonObject c = JsonParser.parseString(Files.readString(dir.resolve("config.json"))).getAsJsonObject();
        JsonObject gen = new JsonObject();
        if (Files.exists(dir.resolve("generation_config.json")))
            gen = JsonParser.parseString(Files.readString(dir.resolve("generation_config.json"))).getAsJsonObject();

        String arch = architectureOf(c);
        int hidden = c.get("hidden_size").getAsInt();
        int heads = c.get("num_attention_heads").getAsInt();
        int headDim = has(c, "head_dim") ? c.get("head_dim").getAsInt() : hidden / heads;
        boolean qwen2 = arch.equals("Qwen2ForCausalLM") || arch.equals("Qwen2MoeForCausalLM");
        boolean qwen3 = arch.equals("Qwen3ForCausalLM") || arch.equals("Qwen3MoeForCausalLM");
        if (has(c, "mlp_bias") && c.get("mlp_bias").getAsBoolean())
            throw new IllegalArgumentException("mlp_bias=true is not supported");

        Set<Integer> eos = new LinkedHashSet<>();
        eos.addAll(ints(c.get("eos_token_id")));
        eos.addAll(ints(gen.get("eos_token_id")));

        return new ModelConfig(
                arch,
                c.get("vocab_size").getAsInt(),
                hidden,
                c.get("intermediate_size").getAsInt(),
                c.get("num_hidden_layers").getAsInt(),
                heads,
                has(c, "num_key_value_heads") ? c.get("num_key_value_heads").getAsInt() : heads,
                headDim,
                has(c, "rms_norm_eps") ? c.get("rms_norm_eps").getAsDouble() : 1e-6,
                rope(c),
                has(c, "max_position_embeddings") ? c.get("max_position_embeddings").getAsInt() : 4096,
                has(c, "tie_word_embeddings") && c.get("tie_word_embeddings").getAsBoolean(),
                qwen2 || (has(c, "attention_bias") && c.get("attention_bias").getAsBoolean()),
                qwen3,
                has(c, "torch_dtype") ? c.get("torch_dtype").getAsString()
                        : has(c, "dtype") ? c.get("dtype").getAsString() : "float32",
                List.copyOf(eos),
                moe(arch, c));
    }

    /** The MoE fields of a Qwen2-MoE, Qwen3-MoE or Mixtral config; null for a dense architecture. */
    private static Moe moe(String arch, JsonObject c) {
        boolean mixtral = arch.equals("MixtralForCausalLM");
        if (!mixtral && !arch.equals("Qwen2MoeForCausalLM") && !arch.equals("Qwen3MoeForCausalLM")) return null;
        // transformers 5 writes num_local_experts for every one of them; Qwen's own configs say num_experts
        String count = has(c, "num_experts") ? "num_experts" : "num_local_experts";
        if (!has(c, count)) throw new IllegalArgumentException(arch + " config.json names neither num_experts nor num_local_experts");
        List<Integer> mlpOnly = has(c, "mlp_only_layers") ? ints(c.get("mlp_only_layers")) : List.of();
        int shared = has(c, "shared_expert_intermediate_size") ? c.get("shared_expert_intermediate_size").getAsInt() : 0;
        return new Moe(c.get(count).getAsInt(), c.get("num_experts_per_tok").getAsInt(),
                mixtral ? c.get("intermediate_size").getAsInt() : c.get("moe_intermediate_size").getAsInt(),
                mixtral || (has(c, "norm_topk_prob") && c.get("norm_topk_prob").getAsBoolean()), shared,
                has(c, "decoder_sparse_step") ? c.get("decoder_sparse_step").getAsInt() : 1, mlpOnly, mixtral);
    }

    /** transformers 5 writes {@code rope_parameters}; older checkpoints {@code rope_theta} + {@code rope_scaling}. */
    private static Rope rope(JsonObject c) {
        JsonObject p = has(c, "rope_parameters") ? c.getAsJsonObject("rope_parameters")
                : has(c, "rope_scaling") ? c.getAsJsonObject("rope_scaling") : new JsonObject();
        double theta = has(p, "rope_theta") ? p.get("rope_theta").getAsDouble()
                : has(c, "rope_theta") ? c.get("rope_theta").getAsDouble() : 10000.0;
        String type = has(p, "rope_type") ? p.get("rope_type").getAsString()
                : has(p, "type") ? p.get("type").getAsString() : "default";
        return new Rope(type, theta,
                has(p, "factor") ? p.get("factor").getAsDouble() : 1.0,
                has(p, "low_freq_factor") ? p.get("low_freq_factor").getAsDouble() : 1.0,
                has(p, "high_freq_factor") ? p.get("high_freq_factor").getAsDouble() : 4.0,
                has(p, "original_max_position_embeddings") ? p.get("original_max_position_embeddings").getAsInt() : 8192);
    }

    private static boolean has(JsonObject o, String key) {
        return o.has(key) && !o.get(key).isJsonNull();
    }

    private static List<Integer> ints(JsonElement e) {
        List<Integer> out = new ArrayList<>();
        if (e == null || e.isJsonNull()) return out;
        if (e.isJsonArray()) for (JsonElement x : (JsonArray) e) out.add(x.getAsInt());
        else out.add(e.getAsInt());
        return out;
    }
}
