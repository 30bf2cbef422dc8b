package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelConfigTest {
    @TempDir
    Path dir;

    @Test
    void readsTransformers5RopeParameters() throws Exception {
        ModelConfig c = ModelConfig.read(Path.of("src/test/resources/fixtures/llama"));
        assertEquals("llama3", c.rope().type());
        assertEquals(500000.0, c.rope().theta());
        assertEquals(64, c.rope().originalMaxPositions());
        assertFalse(c.qkvBias());
        assertTrue(ModelConfig.read(Path.of("src/test/resources/fixtures/qwen2")).qkvBias());
        assertTrue(ModelConfig.read(Path.of("src/test/resources/fixtures/qwen3")).qkNorm());
    }

    @Test
    void readsOlderRopeThetaAndRopeScaling() throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 500000.0,
                 "rope_scaling": {"type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 8192},
                 "eos_token_id": [5, 6]}
                """);
        ModelConfig c = ModelConfig.read(dir);
        assertEquals("llama3", c.rope().type());
        assertEquals(32.0, c.rope().factor());
        assertEquals(4, c.headDim());
        assertEquals(java.util.List.of(5, 6), c.eosTokenIds());
    }

    @Test
    void refusesUnknownArchitectures() throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["GPT2LMHeadModel"], "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                 "num_hidden_layers": 1, "num_attention_heads": 2}
                """);
        assertThrows(IllegalArgumentException.class, () -> ModelConfig.read(dir));
    }

    @Test
    void takesTheArchitectureFromModelTypeWhenAConfigNamesNone() throws Exception {
        // what transformers writes for a config saved on its own (no model built from it)
        Files.writeString(dir.resolve("config.json"), """
                {"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
                """);
        assertEquals("Qwen2ForCausalLM", ModelConfig.read(dir).architecture());
        Files.writeString(dir.resolve("config.json"), """
                {"model_type": "gpt2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                 "num_hidden_layers": 1, "num_attention_heads": 2}
                """);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.read(dir));
        assertTrue(e.getMessage().contains("gpt2"), e.getMessage());
    }
}
