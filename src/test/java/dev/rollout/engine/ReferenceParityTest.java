package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.rollout.model.DecodeAttention;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The engine against transformers (tools/reference/make_fixtures.py): greedy tokens identical and
 * logprobs within 1e-4 in float32, for every architecture (the mixtures of experts too), with all prompts batched together and
 * small blocks and a small token budget so that paging and chunked prefill are exercised. Decoding
 * sequences attend both ways that run on a CPU: over gathered slots, and from their block tables
 * as the paged kernel does (its libtorch-op reference).
 */
class ReferenceParityTest {
    private static final double TOL = 1e-4;

    @ParameterizedTest
    @CsvSource({"qwen2, GATHER", "qwen3, GATHER", "llama, GATHER", "qwen2, PAGED_TORCH", "qwen3, PAGED_TORCH", "llama, PAGED_TORCH",
            "qwen3_moe, GATHER", "qwen2_moe, GATHER", "mixtral, GATHER", "qwen3_moe, PAGED_TORCH"})
    void matchesTransformers(String arch, DecodeAttention decode) throws Exception {
        JsonObject ref = JsonParser.parseString(
                Files.readString(Path.of("src/test/resources/fixtures", arch, "reference.json"))).getAsJsonObject();
        JsonArray prompts = ref.getAsJsonArray("prompts");
        EngineHarness h = EngineHarness.fixture(arch, EngineHarness.smallConfig(), decode);
        for (int i = 0; i < prompts.size(); i++) {
            JsonObject p = prompts.get(i).getAsJsonObject();
            int max = p.getAsJsonArray("output_ids").size();
            h.add("r" + i, ints(p.getAsJsonArray("input_ids")),
                    SamplingParams.builder().temperature(0).maxNewTokens(max).ignoreEos(true).build(),
                    new LogprobOptions(true, 0, 5, null));
        }
        h.runToCompletion();
        assertTrue(h.maxBatch > 1, "prompts should share steps");
        for (int i = 0; i < prompts.size(); i++) {
            JsonObject p = prompts.get(i).getAsJsonObject();
            SequenceOutput out = h.finished.get("r" + i);
            assertArrayEquals(ints(p.getAsJsonArray("output_ids")), out.outputIds(), arch + " prompt " + i);
            JsonArray lps = p.getAsJsonArray("output_logprobs");
            for (int t = 0; t < lps.size(); t++)
                assertEquals(lps.get(t).getAsDouble(), out.outputLogprobs().get(t).logprob(), TOL, arch + " output logprob " + t);
            JsonArray top = p.getAsJsonArray("output_top_logprobs");
            for (int t = 0; t < top.size(); t++) {
                JsonArray alts = top.get(t).getAsJsonArray();
                TokenLogprob mine = out.outputLogprobs().get(t);
                for (int k = 0; k < alts.size(); k++) {
                    assertEquals(alts.get(k).getAsJsonArray().get(0).getAsDouble(), mine.topLogprobs()[k], TOL);
                    assertEquals(alts.get(k).getAsJsonArray().get(1).getAsInt(), mine.topIds()[k]);
                }
            }
            JsonArray in = p.getAsJsonArray("input_logprobs");
            List<TokenLogprob> mineIn = out.inputLogprobs();
            assertEquals(in.size(), mineIn.size(), "one input logprob per prompt token");
            assertTrue(Float.isNaN(mineIn.get(0).logprob()));
            for (int t = 1; t < in.size(); t++)
                assertEquals(in.get(t).getAsDouble(), mineIn.get(t).logprob(), TOL, arch + " input logprob " + t);
        }
    }

    static int[] ints(JsonArray a) {
        int[] out = new int[a.size()];
        int i = 0;
        for (JsonElement e : a) out[i++] = e.getAsInt();
        return out;
    }
}
