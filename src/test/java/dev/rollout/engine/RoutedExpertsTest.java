package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Each token's routed experts (SGLang's return_routed_experts, for rollout routing replay) are
 * the experts transformers' router chose for it (tools/reference/make_fixtures.py records them
 * from its router logits), in every MoE layer, most probable first, with a dense layer's rows
 * zero, as SGLang reports them: over the prompt and every output token but the last. So they
 * stay when the prompt comes from the prefix cache (the cache keeps each slot's experts), and
 * when the cache is too small for every sequence at once, so that some are retracted and
 * computed again.
 */
class RoutedExpertsTest {

    @ParameterizedTest(name = "{0}, {1} KV blocks")
    @CsvSource({"qwen3_moe, 64", "qwen2_moe, 64", "mixtral, 64", "qwen3_moe, 20"})
    void everyPositionsExpertsAreTheOnesTransformersRouterChose(String arch, int blocks) throws Exception {
        JsonObject ref = JsonParser.parseString(Files.readString(Path.of("src/test/resources/fixtures", arch, "reference.json")))
                .getAsJsonObject();
        JsonArray prompts = ref.getAsJsonArray("prompts");
        EngineHarness h = EngineHarness.fixture(arch, new EngineConfig(EngineHarness.DEVICE, "float32", 4, blocks, 8, 16, 0, 0.8, true));
        assertTrue(h.engine.keepsRoutedExperts());
        for (int i = 0; i < prompts.size(); i++) add(h, "r" + i, prompts.get(i).getAsJsonObject()).collectRoutedExperts();
        add(h, "plain", prompts.get(0).getAsJsonObject());   // one that did not ask
        h.runToCompletion();
        assertNull(h.finished.get("plain").routedExperts(), "only asked for");
        int retracted = 0;
        for (int i = 0; i < prompts.size(); i++) {
            check(h, "r" + i, prompts.get(i).getAsJsonObject(), arch);
            retracted += h.finished.get("r" + i).numRetractions();
        }
        if (blocks == 20) assertTrue(retracted > 0, "the small cache retracts");
        // the longest prompt again: its prefix from the cache, whose slots kept their experts
        add(h, "again", prompts.get(2).getAsJsonObject()).collectRoutedExperts();
        h.runToCompletion();
        if (blocks == 64) assertTrue(h.finished.get("again").cachedTokens() > 0, "a prefix cache hit");
        check(h, "again", prompts.get(2).getAsJsonObject(), arch);
    }

    private static Sequence add(EngineHarness h, String rid, JsonObject p) {
        return h.add(rid, ReferenceParityTest.ints(p.getAsJsonArray("input_ids")),
                SamplingParams.builder().temperature(0).maxNewTokens(p.getAsJsonArray("output_ids").size()).ignoreEos(true).build(),
                LogprobOptions.NONE);
    }

    private static void check(EngineHarness h, String rid, JsonObject p, String arch) {
        SequenceOutput out = h.finished.get(rid);
        int[] routed = out.routedExperts();
        assertNotNull(routed, rid);
        var config = h.engine.modelConfig();
        int layers = config.numLayers(), k = config.moe().topK();
        List<Integer> sparse = new ArrayList<>();
        for (int l = 0; l < layers; l++) if (config.sparse(l)) sparse.add(l);
        JsonArray want = p.getAsJsonArray("routed_experts");                 // (positions, MoE layers, k)
        int positions = p.getAsJsonArray("input_ids").size() + out.outputIds().length - 1;
        assertEquals(want.size(), positions);
        assertEquals(positions * layers * k, routed.length, arch + " " + rid + ": (prompt + output - 1) positions x layers x top-k");
        for (int t = 0; t < positions; t++)
            for (int l = 0; l < layers; l++)
                for (int j = 0; j < k; j++) {
                    int got = routed[(t * layers + l) * k + j];
                    int expected = sparse.contains(l) ? want.get(t).getAsJsonArray().get(sparse.indexOf(l)).getAsJsonArray().get(j).getAsInt() : 0;
                    assertEquals(expected, got, arch + " " + rid + ": position " + t + ", layer " + l + ", choice " + j);
                }
    }
}
