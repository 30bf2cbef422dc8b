package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.CausalLm;
import dev.rollout.model.DecodeAttention;
import dev.rollout.model.Kernels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * On the GPU with the native preset (bench/gpu-bench.sh test): the same bf16 model decoding the
 * same prompts greedily through libtorch's ops alone, with our fused ops, with our paged kernel,
 * with both, and with both replayed as CUDA graphs. Each kernel change stays within bf16 noise of
 * libtorch (see {@link #compare}); the graphs compute exactly what the same kernels do eagerly,
 * are captured, survive a KV release and resume, and pad odd batch sizes.
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class CudaGraphTest {
    static final int PROMPTS = 11, NEW = 40;  // 11: not a batch bucket, so rows are padded
    /** A small Qwen3 of the real layout: 4 layers, GQA 8/4, tied embeddings. */
    static final String QWEN3 = """
            {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 32000, "hidden_size": 512,
             "intermediate_size": 1536, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
             "head_dim": 64, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "tie_word_embeddings": true, "eos_token_id": 1, "torch_dtype": "bfloat16"}
            """;

    @TempDir
    Path dir;

    @Test
    void graphsAndKernelDecodeAsLibtorchDoes() throws Exception {
        Files.writeString(dir.resolve("config.json"), QWEN3);
        Map<String, SequenceOutput> libtorch = run(DecodeAttention.GATHER, false, false);
        // each change on its own first, so that a mismatch names its cause
        double[] again = compare("libtorch again", libtorch, run(DecodeAttention.GATHER, false, false));
        double[] fused = compare("fused ops", libtorch, run(DecodeAttention.GATHER, true, false));
        double[] kernelOnly = compare("paged kernel", libtorch, run(DecodeAttention.PAGED_NATIVE, false, false));
        Map<String, SequenceOutput> kernel = run(DecodeAttention.PAGED_NATIVE, true, false);
        double[] both = compare("paged kernel + fused ops", libtorch, kernel);
        double[] graphs = compare("CUDA graphs", kernel, run(DecodeAttention.PAGED_NATIVE, true, true));
        check("fused ops", fused);
        check("paged kernel", kernelOnly);
        check("paged kernel + fused ops", both);
        assertEquals(1.0, again[0], "libtorch's own decoding repeats exactly");
        assertEquals(1.0, graphs[0], "a replayed graph computes what the same kernels do eagerly");
        assertEquals(0.0, graphs[1], "a replayed graph computes what the same kernels do eagerly");
    }

    /**
     * Decode at 4 rows a step (Kernels.GEMV_STEP_ROWS), where the projections run as dense_gemv.cu's matrix-vector kernels
     * with the norms, residual adds and SiLU-and-mul inside them: against cuBLAS's GEMMs and the
     * separate fused ops, within a few bf16 steps as any faithful kernel change; replayed graphs of
     * them compute exactly what they do eagerly. Qwen2's shape: the q/k/v bias rides in the kernel.
     */
    @Test
    void theDecodeMatrixVectorKernelsDecodeAsTheGemmsDo() throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 32000, "hidden_size": 512,
                 "intermediate_size": 1536, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
                 "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                 "tie_word_embeddings": false, "eos_token_id": 1, "torch_dtype": "bfloat16"}
                """);
        int prompts = Kernels.GEMV_STEP_ROWS;
        DecodeAttention paged = DecodeAttention.PAGED_NATIVE;
        Map<String, SequenceOutput> gemms = run(new Kernels(paged, true, false, false, false, false, false, false, List.of()), prompts);
        Map<String, SequenceOutput> gemv = run(new Kernels(paged, true, true, false, false, false, false, false, List.of()), prompts);
        Map<String, SequenceOutput> replayed = run(new Kernels(paged, true, true, false, false, true, false, false, List.of()), prompts);
        double[] kernels = compare("decode matrix-vector kernels", gemms, gemv);
        double[] graphs = compare("CUDA graphs of them", gemv, replayed);
        check("decode matrix-vector kernels", kernels);
        assertTrue(kernels[0] >= 0.5, "most greedy tokens agree: " + kernels[0]);
        assertEquals(1.0, graphs[0], "a replayed graph computes what the same kernels do eagerly");
        assertEquals(0.0, graphs[1], "a replayed graph computes what the same kernels do eagerly");
    }

    /**
     * A mixture of experts (Qwen3-MoE's shape, small) with the grouped expert GEMMs: replayed graphs
     * compute exactly what the same kernels do eagerly, routed experts included, where the GEMM pair
     * per expert could not be captured at all (it reads each expert's rows on the host).
     */
    @Test
    void aMixtureOfExpertsReplaysWhatItComputesEagerly() throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 32000, "hidden_size": 512,
                 "intermediate_size": 1536, "moe_intermediate_size": 256, "num_experts": 16, "num_experts_per_tok": 4,
                 "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [], "num_hidden_layers": 4,
                 "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 4096,
                 "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": false, "eos_token_id": 1,
                 "torch_dtype": "bfloat16"}
                """);
        Map<String, SequenceOutput> eager = run(DecodeAttention.PAGED_NATIVE, true, false, true);
        Map<String, SequenceOutput> replayed = run(DecodeAttention.PAGED_NATIVE, true, true, true);
        double[] graphs = compare("CUDA graphs, mixture of experts", eager, replayed);
        assertEquals(1.0, graphs[0], "a replayed graph computes what the same kernels do eagerly");
        assertEquals(0.0, graphs[1], "a replayed graph computes what the same kernels do eagerly");
        for (String rid : eager.keySet())
            assertTrue(java.util.Arrays.equals(eager.get(rid).routedExperts(), replayed.get(rid).routedExperts()),
                    rid + ": the routed experts recorded under replay differ");
    }

    /**
     * The server's defaults (our sampling kernel reading the LM head's bf16 logits, every graph
     * writing them into one shared buffer): replayed graphs, captured on first use or all ahead of
     * use (LlmEngine.captureDecodeGraphs, as start-up does), decode exactly what the same kernels do
     * eagerly, and the graphs captured ahead serve every step with none captured later.
     */
    @Test
    void graphsCapturedAheadIntoOneLogitsBufferDecodeAsEagerSteps() throws Exception {
        Files.writeString(dir.resolve("config.json"), QWEN3);
        DecodeAttention paged = DecodeAttention.PAGED_NATIVE;
        Map<String, SequenceOutput> eager = run(new Kernels(paged, true, true, false, true, false, false, false, List.of()), PROMPTS, 0);
        Map<String, SequenceOutput> onFirstUse = run(new Kernels(paged, true, true, false, true, true, false, false, List.of()), PROMPTS, 0);
        // 11 prompts of up to 375 tokens and 40 new: contexts up to 415 tokens, all within 512 (block tables of 16 and 32 blocks)
        Map<String, SequenceOutput> ahead = run(new Kernels(paged, true, true, false, true, true, false, false, List.of()), PROMPTS, 512);
        double[] lazy = compare("CUDA graphs, bf16 logits in one buffer", eager, onFirstUse);
        double[] early = compare("CUDA graphs captured ahead", eager, ahead);
        assertEquals(1.0, lazy[0], "a replayed graph computes what the same kernels do eagerly");
        assertEquals(0.0, lazy[1], "a replayed graph computes what the same kernels do eagerly");
        assertEquals(1.0, early[0], "a graph captured ahead computes what the same kernels do eagerly");
        assertEquals(0.0, early[1], "a graph captured ahead computes what the same kernels do eagerly");
    }

    private Map<String, SequenceOutput> run(DecodeAttention mode, boolean fusedOps, boolean graphs) throws Exception {
        return run(mode, fusedOps, graphs, false);
    }

    private Map<String, SequenceOutput> run(DecodeAttention mode, boolean fusedOps, boolean graphs, boolean experts) throws Exception {
        // the dense model takes the decode matrix-vector kernels with the fused ops (at 8 rows a step or fewer)
        return run(new Kernels(mode, fusedOps, fusedOps && !experts, false, false, graphs, experts, false, List.of()), PROMPTS);
    }

    private Map<String, SequenceOutput> run(Kernels kernels, int prompts) throws Exception {
        return run(kernels, prompts, 0);
    }

    /** @param ahead contexts (tokens) whose graphs are captured before the first round, every batch size; 0: none */
    private Map<String, SequenceOutput> run(Kernels kernels, int prompts, int ahead) throws Exception {
        Device cuda = new Device(EngineHarness.DEVICE);
        boolean graphs = kernels.cudaGraphs(), experts = kernels.groupedExperts();
        CausalLm lm = CausalLm.random(dir, ScalarType.BFloat16, cuda, 5, 0.1, kernels);  // std 0.1: peaked logits, few near-ties
        LlmEngine engine = new LlmEngine(lm, new EngineConfig(EngineHarness.DEVICE, "bfloat16", 16, 2048, 64, 4096, 0, 0.8)
                .withRoutedExperts(experts), null, null);
        int captured = ahead > 0 ? engine.captureDecodeGraphs(ahead) : 0;
        // 64 sequences at most: batch buckets 1 to 64 (9), block tables of 16 and 32 blocks
        if (ahead > 0) assertEquals(18, captured, "every batch bucket at each block-table bucket up to " + ahead + " tokens");
        Map<String, SequenceOutput> out = new HashMap<>();
        for (int round = 0; round < 2; round++) {
            if (round == 1) {  // graphs must be dropped with the KV cache and captured again
                MemoryOccupation memory = new MemoryOccupation(engine, new WeightControl(engine, false));
                memory.release(Set.of(MemoryTag.KV_CACHE));
                memory.resume(Set.of(MemoryTag.KV_CACHE));
            }
            for (int i = 0; i < prompts; i++) {
                int[] prompt = new int[5 + 37 * i];  // 5 to 375 tokens: contexts across several blocks and partitions
                for (int j = 0; j < prompt.length; j++) prompt[j] = 2 + (i * 7919 + j * 104729) % 31000;
                String rid = round + "-" + i;
                Sequence s = new Sequence(rid, 0, prompt, SamplingParams.builder().temperature(0).maxNewTokens(NEW).ignoreEos(true).build(),
                        new LogprobOptions(true, -1, 5, null), null, o -> { if (o.finished()) out.put(o.rid(), o); }, false, i);
                if (experts) s.collectRoutedExperts();
                engine.add(s);
            }
            while (engine.hasWork()) engine.step();
            if (graphs) assertTrue(engine.numCudaGraphs() > 0, "decode steps were replayed from captured graphs");
            if (round == 0 && ahead > 0) assertEquals(captured, engine.numCudaGraphs(), "no step captured a graph of its own");
        }
        return out;
    }

    /**
     * Greedy decoding in bf16 can take another token wherever the two best are within a few bf16
     * steps of the logit (0.03 to 0.06 at logits of 8 to 16), and from there the sequences part:
     * a faithful change of kernel parts them now and then, a wrong one from the first tokens on.
     * So this measures, per sequence, the logprob differences before the first divergence and,
     * at the divergence, how far apart the two tokens were for each side (from its top-5).
     * Returns {share of greedy tokens equal, largest logprob difference, widest gap at a divergence}.
     */
    private static double[] compare(String what, Map<String, SequenceOutput> ref, Map<String, SequenceOutput> mine) {
        int same = 0, total = 0, divergences = 0;
        double worst = 0, widest = 0;
        for (String rid : ref.keySet()) {
            List<TokenLogprob> a = ref.get(rid).outputLogprobs(), b = mine.get(rid).outputLogprobs();
            assertEquals(NEW, b.size());
            for (int t = 0; t < a.size(); t++) {
                if (a.get(t).tokenId() != b.get(t).tokenId()) {
                    divergences++;
                    widest = Math.max(widest, Math.max(gap(a.get(t), b.get(t).tokenId()), gap(b.get(t), a.get(t).tokenId())));
                    total += a.size() - t;
                    break;
                }
                same++;
                total++;
                worst = Math.max(worst, Math.abs(a.get(t).logprob() - b.get(t).logprob()));
            }
        }
        System.out.printf("%s vs reference: %d/%d greedy tokens equal, max logprob difference %.2e before divergence, "
                + "%d divergences, the widest at a gap of %.2e%n", what, same, total, worst, divergences, widest);
        return new double[] {(double) same / total, worst, widest};
    }

    /** How much less likely {@code other} was than the token chosen at this position (infinite if not in the top 5). */
    private static double gap(TokenLogprob chosen, int other) {
        for (int i = 0; i < chosen.topIds().length; i++)
            if (chosen.topIds()[i] == other) return chosen.logprob() - chosen.topLogprobs()[i];
        return Double.POSITIVE_INFINITY;
    }

    /** Bounds of a few bf16 steps of the logit: a wrong kernel misses them by O(1) at the first tokens. */
    private static void check(String what, double[] r) {
        assertTrue(r[1] <= 0.25, what + ": logprobs differ by " + r[1] + " before the sequences part");
        assertTrue(r[2] <= 0.25, what + ": sequences part where the two tokens' logprobs are " + r[2] + " apart, no near-tie");
    }
}
