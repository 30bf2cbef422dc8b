package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.CausalLm;
import dev.rollout.model.DecodeAttention;
import dev.rollout.model.NativeOps;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * On the GPU with the native preset (bench/gpu-bench.sh test): the same bf16 model decoding the
 * same prompts greedily three ways (libtorch's gathered attention, our paged kernel, our kernel
 * replayed as CUDA graphs) gives the same tokens and logprobs within bf16 noise; graphs are
 * captured, survive a KV release and resume, and pad odd batch sizes.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class CudaGraphTest {
    static final int PROMPTS = 11, NEW = 40;  // 11: not a batch bucket, so rows are padded

    @TempDir
    Path dir;

    @Test
    void graphsAndKernelDecodeAsLibtorchDoes() throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 32000, "hidden_size": 512,
                 "intermediate_size": 1536, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
                 "head_dim": 64, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                 "tie_word_embeddings": true, "eos_token_id": 1, "torch_dtype": "bfloat16"}
                """);
        Map<String, SequenceOutput> gather = run(DecodeAttention.GATHER, false);
        Map<String, SequenceOutput> kernel = run(DecodeAttention.PAGED_NATIVE, false);
        Map<String, SequenceOutput> graphs = run(DecodeAttention.PAGED_NATIVE, true);
        compare("paged kernel", gather, kernel);
        compare("CUDA graphs", kernel, graphs);
    }

    private Map<String, SequenceOutput> run(DecodeAttention mode, boolean graphs) throws Exception {
        Device cuda = new Device(EngineHarness.DEVICE);
        CausalLm lm = CausalLm.random(dir, ScalarType.BFloat16, cuda, 5, 0.1);  // std 0.1: peaked logits, few near-ties
        if (mode == DecodeAttention.PAGED_NATIVE) assertNull(NativeOps.useIfPossible(lm, true), "the paged kernel must be usable");
        LlmEngine engine = new LlmEngine(lm, new EngineConfig(EngineHarness.DEVICE, "bfloat16", 16, 2048, 64, 4096, 0, 0.8), null, null);
        if (graphs) assertNull(engine.enableCudaGraphs());
        Map<String, SequenceOutput> out = new HashMap<>();
        for (int round = 0; round < 2; round++) {
            if (round == 1) {  // graphs must be dropped with the KV cache and captured again
                engine.releaseMemory(Set.of(LlmEngine.MemoryTag.KV_CACHE));
                engine.resumeMemory(Set.of(LlmEngine.MemoryTag.KV_CACHE));
            }
            for (int i = 0; i < PROMPTS; i++) {
                int[] prompt = new int[5 + 37 * i];  // 5 to 375 tokens: contexts across several blocks and partitions
                for (int j = 0; j < prompt.length; j++) prompt[j] = 2 + (i * 7919 + j * 104729) % 31000;
                String rid = round + "-" + i;
                engine.add(new Sequence(rid, 0, prompt, SamplingParams.builder().temperature(0).maxNewTokens(NEW).ignoreEos(true).build(),
                        new LogprobOptions(true, -1, 0, null), null, o -> { if (o.finished()) out.put(o.rid(), o); }, false, i));
            }
            while (engine.hasWork()) engine.step();
            if (graphs) assertTrue(engine.numCudaGraphs() > 0, "decode steps were replayed from captured graphs");
        }
        return out;
    }

    private static void compare(String what, Map<String, SequenceOutput> ref, Map<String, SequenceOutput> mine) {
        int same = 0, total = 0;
        double worst = 0;
        for (String rid : ref.keySet()) {
            int[] a = ref.get(rid).outputIds(), b = mine.get(rid).outputIds();
            assertEquals(NEW, b.length);
            boolean diverged = false;
            for (int t = 0; t < a.length; t++) {
                total++;
                if (a[t] == b[t]) same++;
                else diverged = true;
                if (!diverged)
                    worst = Math.max(worst, Math.abs(ref.get(rid).outputLogprobs().get(t).logprob() - mine.get(rid).outputLogprobs().get(t).logprob()));
            }
        }
        System.out.printf("%s vs reference: %d/%d greedy tokens equal, max logprob difference %.2e%n", what, same, total, worst);
        assertTrue(same >= 0.97 * total, what + ": " + same + "/" + total + " greedy tokens equal");
        assertTrue(worst <= 5e-2, what + ": logprobs differ by " + worst);
    }
}
