package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** load_format=dummy: random weights from config.json alone, reproducible from their seed. */
class DummyWeightsTest {
    static final Device CPU = new Device("cpu");

    @Test
    void seededNormalWeightsAndUnitNormsFromConfigAlone(@TempDir Path dir) throws Exception {
        // only config.json: no checkpoint is read
        Files.copy(Path.of("src/test/resources/fixtures/qwen3/config.json"), dir.resolve("config.json"));
        CausalLm a = CausalLm.random(dir, ScalarType.Float, CPU, 7, 0.02);
        CausalLm b = CausalLm.random(dir, ScalarType.Float, CPU, 7, 0.02);
        CausalLm c = CausalLm.random(dir, ScalarType.Float, CPU, 8, 0.02);
        assertEquals(digests(a), digests(b), "same seed, same weights");
        assertNotEquals(digests(a).get("model.layers.0.mlp.down_proj.weight"), digests(c).get("model.layers.0.mlp.down_proj.weight"));

        Tensor norm = a.parameters().get("model.layers.1.self_attn.k_norm.weight");
        assertEquals(1.0, norm.min().item_double());
        assertEquals(1.0, norm.max().item_double());
        Tensor q = a.parameters().get("model.layers.0.self_attn.q_proj.weight");  // a slice of the fused q/k/v
        assertEquals(0.02, q.std().item_double(), 0.002);
        assertEquals(0.0, q.mean().item_double(), 0.002);
    }

    static Map<String, String> digests(CausalLm lm) {
        Map<String, String> out = new TreeMap<>();
        for (String name : lm.parameters().names()) out.put(name, Torch.sha256(lm.parameters().get(name)));
        return out;
    }
}
