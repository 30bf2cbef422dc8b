package dev.rollout.model;

import dev.rollout.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Writes a checkpoint with random weights from a fixed seed in the Hugging Face layout
 * ({@code config.json}, {@code generation_config.json}, {@code model.safetensors} in bf16), so
 * that the server can start with no download and load it through the same path as a real one.
 * The same spec and seed always give the same bytes.
 */
public final class RandomCheckpoint {
    private RandomCheckpoint() {}

    /**
     * The shape of a Qwen3 model; tied embeddings keep the file small. {@code std} is the spread
     * of the random weights: transformers' 0.02 makes every layer a near no-op, so that the model
     * just echoes its last token; 0.15 gives outputs that depend on the whole prompt and on the
     * weights, which tests of weight updates need.
     */
    public record Spec(int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numHeads,
                       int numKvHeads, int headDim, int maxPositions, List<Integer> eosTokenIds, double std) {}

    public static void write(Path dir, Spec s, long seed) throws IOException {
        writeConfig(dir, s);
        SplittableRandom rng = new SplittableRandom(seed);
        Map<String, SafetensorsWriter.Tensor> t = new LinkedHashMap<>();
        int h = s.hiddenSize(), d = s.headDim();
        t.put("model.embed_tokens.weight", normal(rng, s.std(), s.vocabSize(), h));
        for (int l = 0; l < s.numLayers(); l++) {
            String p = "model.layers." + l + ".";
            t.put(p + "input_layernorm.weight", ones(h));
            t.put(p + "self_attn.q_proj.weight", normal(rng, s.std(), s.numHeads() * d, h));
            t.put(p + "self_attn.k_proj.weight", normal(rng, s.std(), s.numKvHeads() * d, h));
            t.put(p + "self_attn.v_proj.weight", normal(rng, s.std(), s.numKvHeads() * d, h));
            t.put(p + "self_attn.o_proj.weight", normal(rng, s.std(), h, s.numHeads() * d));
            t.put(p + "self_attn.q_norm.weight", ones(d));
            t.put(p + "self_attn.k_norm.weight", ones(d));
            t.put(p + "post_attention_layernorm.weight", ones(h));
            t.put(p + "mlp.gate_proj.weight", normal(rng, s.std(), s.intermediateSize(), h));
            t.put(p + "mlp.up_proj.weight", normal(rng, s.std(), s.intermediateSize(), h));
            t.put(p + "mlp.down_proj.weight", normal(rng, s.std(), h, s.intermediateSize()));
        }
        t.put("model.norm.weight", ones(h));
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
    }

    /** {@code config.json} and {@code generation_config.json} of a model of this shape, for weights made elsewhere. */
    public static void writeConfig(Path dir, Spec s) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), """
                {
                  "architectures": ["Qwen3ForCausalLM"],
                  "model_type": "qwen3",
                  "vocab_size": %d,
                  "hidden_size": %d,
                  "intermediate_size": %d,
                  "num_hidden_layers": %d,
                  "num_attention_heads": %d,
                  "num_key_value_heads": %d,
                  "head_dim": %d,
                  "max_position_embeddings": %d,
                  "rms_norm_eps": 1e-06,
                  "rope_theta": 1000000.0,
                  "hidden_act": "silu",
                  "attention_bias": false,
                  "tie_word_embeddings": true,
                  "torch_dtype": "bfloat16",
                  "eos_token_id": %d
                }
                """.formatted(s.vocabSize(), s.hiddenSize(), s.intermediateSize(), s.numLayers(), s.numHeads(),
                s.numKvHeads(), s.headDim(), s.maxPositions(), s.eosTokenIds().get(0)));
        Files.writeString(dir.resolve("generation_config.json"), """
                {
                  "eos_token_id": %s,
                  "temperature": 0.6,
                  "top_p": 0.95,
                  "top_k": 20
                }
                """.formatted(s.eosTokenIds()));
    }

    private static SafetensorsWriter.Tensor normal(SplittableRandom rng, double std, long... shape) {
        int n = (int) (shape[0] * (shape.length > 1 ? shape[1] : 1));
        ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) b.putShort(bf16((float) (rng.nextGaussian() * std)));
        return new SafetensorsWriter.Tensor("BF16", shape, b.flip());
    }

    private static SafetensorsWriter.Tensor ones(long n) {
        ByteBuffer b = ByteBuffer.allocate((int) (2 * n)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) b.putShort(bf16(1f));
        return new SafetensorsWriter.Tensor("BF16", new long[] {n}, b.flip());
    }

    /** float32 to bfloat16, rounding to nearest even. */
    static short bf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
