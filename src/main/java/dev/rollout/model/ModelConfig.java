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
 * RMSNorm, Llama 3 by its RoPE frequency scaling; everything else is shared.
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
        List<Integer> eosTokenIds) {

    public static final List<String> ARCHITECTURES =
            List.of("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM");

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
            default -> throw new IllegalArgumentException("config.json names no architectures, and its model_type '" + type
                    + "' is none of qwen2, qwen3, llama");
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
        boolean qwen2 = arch.equals("Qwen2ForCausalLM");
        boolean qwen3 = arch.equals("Qwen3ForCausalLM");
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
                List.copyOf(eos));
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
