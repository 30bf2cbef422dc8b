package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.rollout.model.CausalLm;
import dev.rollout.model.DecodeAttention;
import dev.rollout.model.Kernels;
import dev.rollout.model.RolloutCuda;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * CUDA only: a mixture of experts' grouped GEMMs ({@link Kernels#groupedExperts()}) against the
 * GEMM pair per expert, both in bf16 on the same fixture and prompts (transformers' reference
 * prompts, tools/reference/make_fixtures.py), each prompt sent twice. With 16 tokens a step, no
 * step routes more than 32 token copies, so every step runs our matrix-vector kernels (up to
 * {@link CausalLm#GEMV_COPIES} copies); with 128, the first step prefills up to 124 tokens, 248
 * copies, through libtorch's {@code _grouped_mm}. The two sum in other orders, so they are
 * compared within bf16's rounding: each request's first token and its logprob, and most greedy
 * tokens after it. Wrong offsets or a wrong transpose change every logit.
 */
class GroupedExpertsTest {

    @ParameterizedTest(name = "{0}, {1} tokens a step")
    @CsvSource({"qwen3_moe, 16", "qwen3_moe, 128", "qwen2_moe, 16", "qwen2_moe, 128", "mixtral, 16", "mixtral, 128"})
    void groupedGemmsDecodeAsTheGemmPerExpertDoes(String arch, int stepTokens) throws Exception {
        assumeTrue(EngineHarness.DEVICE.startsWith("cuda") && RolloutCuda.available(), "needs CUDA and the native preset");
        Path dir = Path.of("src/test/resources/fixtures", arch);
        JsonArray prompts = JsonParser.parseString(Files.readString(dir.resolve("reference.json"))).getAsJsonObject().getAsJsonArray("prompts");
        Kernels grouped = new Kernels(DecodeAttention.GATHER, false, false, false, false, false, true, false, List.of());
        EngineHarness perExpert = run(CausalLm.load(dir, ScalarType.BFloat16, new Device(EngineHarness.DEVICE), Kernels.LIBTORCH), prompts, stepTokens);
        CausalLm lm = CausalLm.load(dir, ScalarType.BFloat16, new Device(EngineHarness.DEVICE), grouped);
        assertTrue(lm.kernels().groupedExperts());
        EngineHarness both = run(lm, prompts, stepTokens);
        int same = 0, total = 0;
        assertEquals(2 * prompts.size(), perExpert.finished.size(), "every request finished");
        for (String id : perExpert.finished.keySet()) {
            SequenceOutput a = perExpert.finished.get(id), b = both.finished.get(id);
            assertEquals(a.outputIds()[0], b.outputIds()[0], arch + " request " + id + ": first token");
            assertEquals(a.outputLogprobs().get(0).logprob(), b.outputLogprobs().get(0).logprob(), 0.05, arch + " request " + id + ": its logprob");
            for (int t = 0; t < a.outputIds().length; t++, total++) if (a.outputIds()[t] == b.outputIds()[t]) same++;
        }
        assertEquals(2 * prompts.size(), both.finished.size(), "every request finished");
        assertTrue(same >= 0.8 * total, arch + ": " + same + " of " + total + " greedy tokens the same");
        System.out.printf("%s, %d tokens a step, grouped vs per expert: %d of %d greedy tokens the same%n", arch, stepTokens, same, total);
    }

    private static EngineHarness run(CausalLm lm, JsonArray prompts, int stepTokens) {
        EngineHarness h = new EngineHarness(lm, new EngineConfig(EngineHarness.DEVICE, "bfloat16", 4, 64, 8, stepTokens, 0, 0.8), null);
        for (String copy : new String[] {"r", "s"}) {
            for (int i = 0; i < prompts.size(); i++) {
                JsonObject p = prompts.get(i).getAsJsonObject();
                h.add(copy + i, ReferenceParityTest.ints(p.getAsJsonArray("input_ids")),
                        SamplingParams.builder().temperature(0).maxNewTokens(p.getAsJsonArray("output_ids").size()).ignoreEos(true).build(),
                        new LogprobOptions(true, 0, 0, null));
            }
        }
        h.runToCompletion();
        return h;
    }
}
