package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/** transformers 5's stacked expert names against the checkpoint's per-expert ones, both ways, for Qwen's and Mixtral's naming. */
class ExpertNamesTest {
    private static final int E = 3, I = 2, H = 4;

    private static Map<String, List<Long>> shapes(String experts, String gate, String up, String down, String router) {
        Map<String, List<Long>> s = new LinkedHashMap<>();
        s.put(router, List.of((long) E, (long) H));
        for (int e = 0; e < E; e++) {
            s.put(experts + e + "." + gate + ".weight", List.of((long) I, (long) H));
            s.put(experts + e + "." + up + ".weight", List.of((long) I, (long) H));
            s.put(experts + e + "." + down + ".weight", List.of((long) H, (long) I));
        }
        return s;
    }

    /** (E, 2I, H) with each value its own index, so that every slice is told apart. */
    private static Tensor stacked(long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return torch.arange(new Scalar(n)).to(torch.ScalarType.Float).reshape(shape);
    }

    @Test
    void stackedQwenExpertsBecomeEachExpertsGateUpAndDown() {
        Map<String, List<Long>> shapes = shapes("model.layers.1.mlp.experts.", "gate_proj", "up_proj", "down_proj", "model.layers.1.mlp.gate.weight");
        Tensor gateUp = stacked(E, 2 * I, H), down = stacked(E, H, I), norm = stacked(H);
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("model.layers.1.mlp.experts.gate_up_proj", gateUp.clone());
        in.put("model.layers.1.mlp.experts.down_proj", down.clone());
        in.put("model.layers.1.mlp.gate.weight", norm);
        Map<String, Tensor> out = ExpertNames.expand(in, shapes.keySet());
        assertEquals(3 * E + 1, out.size());
        assertSame(norm, out.get("model.layers.1.mlp.gate.weight"), "Qwen's router keeps its name");
        for (int e = 0; e < E; e++) {
            assertTrue(torch.equal(gateUp.select(0, e).narrow(0, 0, I), out.get("model.layers.1.mlp.experts." + e + ".gate_proj.weight")));
            assertTrue(torch.equal(gateUp.select(0, e).narrow(0, I, I), out.get("model.layers.1.mlp.experts." + e + ".up_proj.weight")));
            assertTrue(torch.equal(down.select(0, e), out.get("model.layers.1.mlp.experts." + e + ".down_proj.weight")));
        }
        assertEquals(List.of((long) E, (long) 2 * I, (long) H), ExpertNames.stackedShape("model.layers.1.mlp.experts.gate_up_proj", shapes));
        assertEquals(List.of((long) E, (long) H, (long) I), ExpertNames.stackedShape("model.layers.1.mlp.experts.down_proj", shapes));
        Tensor back = ExpertNames.gather("model.layers.1.mlp.experts.gate_up_proj", shapes.keySet(), out::get);
        assertTrue(torch.equal(gateUp, back), "read back by the stacked name: what was pushed");
        assertNull(ExpertNames.gather("model.layers.0.mlp.experts.gate_up_proj", shapes.keySet(), out::get), "a layer without experts");
    }

    @Test
    void mixtralsStackedExpertsAndRouterTakeItsBlockSparseNames() {
        Map<String, List<Long>> shapes = shapes("model.layers.0.block_sparse_moe.experts.", "w1", "w3", "w2",
                "model.layers.0.block_sparse_moe.gate.weight");
        Tensor gateUp = stacked(E, 2 * I, H), router = stacked(E, H);
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("model.layers.0.mlp.gate.weight", router);
        in.put("model.layers.0.mlp.experts.gate_up_proj", gateUp.clone());
        Map<String, Tensor> out = ExpertNames.expand(in, shapes.keySet());
        assertSame(router, out.get("model.layers.0.block_sparse_moe.gate.weight"));
        assertEquals("model.layers.0.block_sparse_moe.gate.weight", ExpertNames.parameterName("model.layers.0.mlp.gate.weight", shapes.keySet()));
        assertTrue(torch.equal(gateUp.select(0, 2).narrow(0, 0, I), out.get("model.layers.0.block_sparse_moe.experts.2.w1.weight")), "w1 is the gate");
        assertTrue(torch.equal(gateUp.select(0, 2).narrow(0, I, I), out.get("model.layers.0.block_sparse_moe.experts.2.w3.weight")), "w3 is the up");
    }

    @Test
    void aStackedTensorOfAnotherNumberOfExpertsIsRefusedByName() {
        Map<String, List<Long>> shapes = shapes("model.layers.1.mlp.experts.", "gate_proj", "up_proj", "down_proj", "model.layers.1.mlp.gate.weight");
        Map<String, Tensor> in = Map.of("model.layers.1.mlp.experts.down_proj", stacked(E - 1, H, I));   // one expert-parallel rank's
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> ExpertNames.expand(in, shapes.keySet()));
        assertEquals("model.layers.1.mlp.experts.down_proj holds 2 experts; the model has 3 in that layer", e.getMessage());
    }

    @Test
    void namesOfADenseModelPassThroughUntouched() {
        Map<String, Tensor> in = Map.of("model.layers.0.mlp.gate_proj.weight", stacked(I, H));
        assertSame(in, ExpertNames.expand(in, Set.of("model.layers.0.mlp.gate_proj.weight")));
    }
}
