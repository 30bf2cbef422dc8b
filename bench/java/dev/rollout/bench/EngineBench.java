package dev.rollout.bench;

import dev.rollout.engine.EngineConfig;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.EngineObserver;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.Sequence;
import dev.rollout.model.CausalLm;
import dev.rollout.model.ModelConfig;
import dev.rollout.model.PhaseTimer;
import dev.rollout.model.Kernels;
import dev.rollout.model.RolloutCuda;
import dev.rollout.constrain.Constraint;
import dev.rollout.constrain.ConstraintCursor;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.constrain.Vocabulary;
import dev.rollout.tokenizer.TokenBytes;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The engine in-process, on the workloads of the benchmark protocol
 * ({@code docs/benchmark-protocol.md}), with every result also given as a fraction of
 * the HBM floor: the time to read the weights and every sequence's KV once per decode step.
 *
 * <pre>
 * EngineBench --model DIR [--dummy] [--stream] [--native-kernels [--libtorch-sampling] [--per-expert-gemms] [--cublas-projections]] [--cuda-graphs] [--repeat N] [--kv-fraction 0.5] [--device cuda] [--dtype bfloat16] [--hbm-gbps 4300] WORKLOAD...
 *   grpo:P:n:IN:OUT        P prompts x n samples (prefix shared), fixed lengths (R1, R2)
 *   decode:IN:OUT          one request; median decode step (R4)
 *   sweep:IN:OUT:B1,B2,..  B requests at once; median decode step per B (R5)
 *   csweep:IN:OUT:B1,..    the same, every request constrained by {@link #TOOL_CALLS} (issue #22's per-step cost)
 * </pre>
 * With {@code --dummy} the weights are random, made on the device from {@code DIR/config.json}.
 * Prompts are {@link Prompts}' seeded ids, the same that {@code bench/hf_cb.py} feeds transformers.
 * Prints one {@code RESULT {json}} line per measurement. Sampling: temperature 1, EOS ignored.
 */
public final class EngineBench {
    private LlmEngine engine;
    private final double weightBytes, kvBytesPerToken, bytesPerSecond;
    /** A mixture of experts' routed experts: their bytes in all (part of weightBytes), how many each layer has, and per token. */
    private double expertBytes;
    private int experts = 1, topK = 1;
    private int vocab, run = 1;
    /** The last step's shape, from the engine's observer: a decode-only step computes one token per sequence. */
    private int lastSequences, lastTokens;
    private double lastHostSeconds;
    /**
     * csweep's constraint: lines of JSON tool calls, the shape an agent's schema gives its output,
     * over the real Qwen3 vocabulary. The vocabulary is given no EOS, so a line is always followed
     * by another and every request runs its OUT tokens, as the unconstrained sweep's do: the two
     * differ only in the masking. Each request walks its own path through the strings and numbers.
     */
    static final String TOOL_CALLS = "(\\{\"name\": \"(search|calculator|weather)\", \"arguments\": \\{\"query\": \"[a-z ]{1,64}\", "
            + "\"limit\": [0-9]{1,4}, \"units\": \"(metric|imperial)\"\\}\\}\n)+";
    private TokenIndex toolCalls;
    /** Sweeps make a snapshot per token, as the server does for streamed requests. */
    private static boolean stream;

    private EngineBench(double weightBytes, double kvBytesPerToken, double bytesPerSecond) {
        this.weightBytes = weightBytes;
        this.kvBytesPerToken = kvBytesPerToken;
        this.bytesPerSecond = bytesPerSecond;
    }

    public static void main(String[] args) throws Exception {
        String model = null, device = "cuda", dtype = "bfloat16";
        boolean dummy = false, nativeKernels = false, samplingKernel = true, graphs = false, phaseProfile = false, routed = false,
                perExpertGemms = false, deterministic = false, denseGemv = true;
        double gbps = 4300;  // H200, measured copy bandwidth (docs/benchmark-protocol.md); H100: 3000
        int maxSeqs = 512, repeat = 1;
        double kvFraction = 0.5;  // of the free memory: the rest is for activations, cuBLAS and the graphs' pool
        List<String> workloads = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> model = args[++i];
                case "--dummy" -> dummy = true;
                case "--stream" -> stream = true;
                case "--native-kernels" -> nativeKernels = true;
                case "--libtorch-sampling" -> samplingKernel = false;  // the baseline of the sampling kernel
                case "--cuda-graphs" -> graphs = true;
                // GPU time per phase of decode steps (CUDA events): eager, each layer's phases; replayed, the graph and the sampling
                case "--phase-profile" -> phaseProfile = true;
                case "--device" -> device = args[++i];
                case "--dtype" -> dtype = args[++i];
                case "--hbm-gbps" -> gbps = Double.parseDouble(args[++i]);
                case "--max-seqs" -> maxSeqs = Integer.parseInt(args[++i]);
                case "--repeat" -> repeat = Integer.parseInt(args[++i]);
                case "--kv-fraction" -> kvFraction = Double.parseDouble(args[++i]);
                // a mixture of experts keeps every token's routed experts, and every request asks for them (R3's cost)
                case "--routed-experts" -> routed = true;
                case "--deterministic" -> deterministic = true;   // issue #21's arithmetic (ADR 0026): its overhead
                // decode's few rows through cuBLAS's GEMMs, not dense_gemv.cu (ADR 0030): the server's choice before it, its baseline
                case "--cublas-projections" -> denseGemv = false;
                case "--per-expert-gemms" -> perExpertGemms = true;   // a mixture of experts without the grouped GEMMs (their baseline)
                default -> workloads.add(args[i]);
            }
        }
        if (model == null || workloads.isEmpty()) throw new IllegalArgumentException("usage: EngineBench --model DIR [--dummy] [--stream] WORKLOAD...");
        Device dev = new Device(device);
        ScalarType st = switch (dtype) {
            case "float32" -> ScalarType.Float;
            case "float16" -> ScalarType.Half;
            default -> ScalarType.BFloat16;
        };
        long t0 = System.nanoTime();
        // --cuda-graphs alone asks for graphs without the paged kernel they need: the setup line says so
        Kernels kernels = Kernels.resolve(new Kernels.Wanted(nativeKernels, nativeKernels && denseGemv, nativeKernels, nativeKernels && samplingKernel, graphs, false,
                        nativeKernels && !perExpertGemms, deterministic),
                ModelConfig.read(Path.of(model)), st, dev);
        CausalLm lm = dummy ? CausalLm.random(Path.of(model), st, dev, 0, 0.02, kernels) : CausalLm.load(Path.of(model), st, dev, kernels);
        ModelConfig c = lm.config();
        double kv = 2.0 * c.numLayers() * c.numKvHeads() * c.headDim() * (st == ScalarType.Float ? 4 : 2);
        EngineBench b = new EngineBench(lm.weightBytes(), kv, gbps * 1e9);
        if (c.moe() != null) b.routedExperts(c, st == ScalarType.Float ? 4 : 2);
        EngineObserver steps = new EngineObserver() {
            @Override
            public void onStep(int sequences, int tokens, int sampled, double modelSeconds, double hostSeconds) {
                b.lastSequences = sequences;
                b.lastTokens = tokens;
                b.lastHostSeconds = hostSeconds;
            }
        };
        LlmEngine engine = new LlmEngine(lm, new EngineConfig(device, dtype, 16, 0, maxSeqs, 8192, 0, kvFraction, routed), null, steps);
        b.engine = engine;
        if (phaseProfile) lm.setPhaseTimer(PhaseTimer.cuda());
        b.vocab = c.vocabSize();
        double load = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "RESULT {\"what\": \"setup\", \"model\": \"%s\", \"dummy\": %s, \"device\": \"%s\", \"dtype\": \"%s\", "
                        + "\"weight_bytes\": %.0f, \"kv_bytes_per_token\": %.0f, \"kv_tokens\": %d, \"load_s\": %.2f, \"hbm_gbps\": %.0f, "
                        + "\"decode_attention\": \"%s\", \"fused_ops\": %s, \"sampling_kernel\": %s, \"cuda_graphs\": %s, \"grouped_experts\": %s, "
                        + "\"deterministic\": %s, "
                        + "\"kernels_not_used\": \"%s\", \"native_preset\": \"%s\", \"routed_experts\": %s, "
                        + "\"expert_bytes\": %.0f, \"batch1_weight_bytes\": %.0f}%n",
                model, dummy, device, dtype, b.weightBytes, kv, (long) engine.numKvBlocks() * 16, load, gbps,
                kernels.decodeAttention(), kernels.fusedOps(), kernels.samplingKernel(), kernels.cudaGraphs(), kernels.groupedExperts(),
                kernels.deterministic(), kernels.notUsed().stream().map(Kernels.NotUsed::toString).collect(java.util.stream.Collectors.joining("; ")),
                RolloutCuda.available() ? "loaded" : RolloutCuda.whyUnavailable(), engine.keepsRoutedExperts(), b.expertBytes,
                b.stepWeightBytes(1));
        b.grpo(4, 2, 32, 32, false);  // warm-up: kernels, allocator, JIT
        if (dev.is_cuda()) memory("setup");
        // the first run of a shape also captures its CUDA graphs: with --repeat 2 the second shows the steady state
        for (int run = 1; run <= repeat; run++) {
            b.run = run;
            for (String w : workloads) {
                // every workload prefills its prompts: the prefix cache of the one before (a sweep's batch
                // of 512 and R6's share their prompts) or of the run before would skip them
                if (!b.engine.flushCache()) throw new IllegalStateException("the engine still has work before " + w);
                String[] p = w.split(":");
                switch (p[0]) {
                    case "grpo" -> b.grpo(i(p[1]), i(p[2]), i(p[3]), i(p[4]), true);
                    case "decode" -> b.sweep(i(p[1]), i(p[2]), new int[] {1}, "decode");
                    case "sweep" -> b.sweep(i(p[1]), i(p[2]), Arrays.stream(p[3].split(",")).mapToInt(Integer::parseInt).toArray(), "sweep");
                    case "csweep" -> b.sweep(i(p[1]), i(p[2]), Arrays.stream(p[3].split(",")).mapToInt(Integer::parseInt).toArray(), "csweep");
                    default -> throw new IllegalArgumentException("unknown workload " + w);
                }
                if (dev.is_cuda()) memory(w);
            }
        }
    }

    /** libtorch's device memory after a workload, and the most it held during it. */
    private static void memory(String workload) {
        if (!RolloutCuda.available()) return;
        double gib = 1L << 30;
        System.out.printf(Locale.ROOT, "RESULT {\"what\": \"memory\", \"after\": \"%s\", \"allocated_gib\": %.2f, "
                        + "\"peak_allocated_gib\": %.2f, \"reserved_gib\": %.2f, \"peak_reserved_gib\": %.2f}%n", workload,
                RolloutCuda.memoryStat(0) / gib, RolloutCuda.memoryStat(1) / gib, RolloutCuda.memoryStat(2) / gib,
                RolloutCuda.memoryStat(3) / gib);
        RolloutCuda.resetPeakMemoryStats();
    }

    private static int i(String s) {
        return Integer.parseInt(s);
    }

    /** The routed experts' share of the weights: each MoE layer's experts, gate, up and down. */
    private void routedExperts(ModelConfig c, int bytesPerValue) {
        int sparse = 0;
        for (int l = 0; l < c.numLayers(); l++) if (c.sparse(l)) sparse++;
        experts = c.moe().experts();
        topK = c.moe().topK();
        expertBytes = (double) sparse * experts * 3L * c.moe().intermediate() * c.hiddenSize() * bytesPerValue;
    }

    /**
     * The weight bytes one decode step of {@code batch} sequences must read: all of a dense model;
     * of a mixture of experts, everything but the routed experts, and of those the ones the batch
     * is expected to touch, E (1 - (1 - k/E)^batch) of E per layer (top-k of E drawn per token as
     * if at random: at batch 1 only k, at a large batch every expert).
     */
    double stepWeightBytes(int batch) {
        if (expertBytes == 0) return weightBytes;
        double touched = 1 - Math.pow(1 - (double) topK / experts, batch);
        return weightBytes - expertBytes + expertBytes * touched;
    }

    /** The HBM floor of one decode step: every weight it reads once (the chosen experts' only), every sequence's context once. */
    double floorSeconds(int batch, double context) {
        return (stepWeightBytes(batch) + batch * context * kvBytesPerToken) / bytesPerSecond;
    }

    /** P prompts x n samples; reports makespan, output tok/s and the fraction of the decode floor's ceiling. */
    void grpo(int prompts, int n, int in, int out, boolean report) {
        List<Sequence> all = new ArrayList<>();
        int[][] ids = Prompts.make(prompts, in, 1234, vocab);
        int[] finished = {0};
        long[] generated = {0};
        for (int p = 0; p < prompts; p++) {
            Sequence leader = null;
            for (int k = 0; k < n; k++) {
                Sequence s = new Sequence("p" + p, k, ids[p], params(out), LogprobOptions.NONE, null, o -> {
                    if (o.finished()) {
                        finished[0]++;
                        generated[0] += o.completionTokens();
                    }
                }, false, p * 1000L + k);
                if (leader == null) leader = s;
                else s.sharePrefixWith(leader);
                if (engine.keepsRoutedExperts()) s.collectRoutedExperts();
                all.add(s);
            }
        }
        long t0 = System.nanoTime();
        for (Sequence s : all) engine.add(s);
        int steps = run();
        double makespan = (System.nanoTime() - t0) / 1e9;
        if (!report) return;
        int b = prompts * n;
        double floor = 0;
        for (int k = 1; k <= out; k++) floor += floorSeconds(b, in + k);
        double tokS = generated[0] / makespan, ceiling = (double) b * out / floor;
        System.out.printf(Locale.ROOT, "RESULT {\"what\": \"grpo\", \"run\": " + run + ", \"prompts\": %d, \"n\": %d, \"in\": %d, \"out\": %d, \"finished\": %d, "
                        + "\"generated\": %d, \"expected\": %d, \"steps\": %d, \"makespan_s\": %.3f, \"out_tok_s\": %.1f, "
                        + "\"ceiling_tok_s\": %.0f, \"roofline_fraction\": %.4g}%n",
                prompts, n, in, out, finished[0], generated[0], (long) b * out, steps, makespan, tokS, ceiling, tokS / ceiling);
    }

    /** For each batch size: B requests at once; the median step time once every prompt is in (decode only). */
    void sweep(int in, int out, int[] batches, String what) throws IOException {
        SamplingParams params = what.equals("csweep")
                ? SamplingParams.builder().temperature(1.0).maxNewTokens(out).ignoreEos(true).constraint(toolCalls()).build() : params(out);
        for (int batch : batches) {
            int[][] ids = Prompts.make(batch, in, 99 + batch, vocab);
            // a request ended early (the engine ends one whose token its constraint forbids), and a
            // finished csweep output its constraint does not allow, walked again token by token
            int[] cutShort = {0}, broken = {0};
            for (int q = 0; q < batch; q++) {
                Sequence s = new Sequence("s" + q, 0, ids[q], params, LogprobOptions.NONE, null, o -> {
                    if (!o.finished()) return;
                    if (o.completionTokens() < out) cutShort[0]++;
                    if (params.constraint() != null && !allowed(params.constraint(), o.outputIds())) broken[0]++;
                }, stream, q);
                if (engine.keepsRoutedExperts()) s.collectRoutedExperts();
                engine.add(s);
            }
            List<Double> decode = new ArrayList<>();
            double hostMs = 0;
            PhaseTimer phases = engine.model().phaseTimer();
            phases.reset();
            long t0 = System.nanoTime();
            while (engine.hasWork()) {
                long s0 = System.nanoTime();
                engine.step();
                double ms = (System.nanoTime() - s0) / 1e6;
                if (lastSequences == batch && lastTokens == batch) {  // every sequence decoding, no prefill
                    decode.add(ms);
                    hostMs += 1e3 * lastHostSeconds;
                }
            }
            double makespan = (System.nanoTime() - t0) / 1e9;
            double[] sorted = decode.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            double median = sorted.length == 0 ? Double.NaN : sorted[sorted.length / 2];
            double p99 = sorted.length == 0 ? Double.NaN : sorted[Math.min(sorted.length - 1, (int) (sorted.length * 0.99))];
            double floorMs = 1e3 * floorSeconds(batch, in + out / 2.0);
            System.out.printf(Locale.ROOT, "RESULT {\"what\": \"%s\", \"run\": " + run + ", \"batch\": %d, \"in\": %d, \"out\": %d, \"decode_steps\": %d, "
                            + "\"step_ms_p50\": %.3f, \"step_ms_p99\": %.3f, \"floor_ms\": %.3f, \"roofline_fraction\": %.4g, "
                            + "\"host_ms_mean\": %.3f, \"makespan_s\": %.3f, \"out_tok_s\": %.1f, \"cut_short\": %d, "
                            + "\"broke_constraint\": %d}%n",
                    what, batch, in, out, sorted.length, median, p99, floorMs, floorMs / median, hostMs / Math.max(1, sorted.length),
                    makespan, (double) batch * out / makespan, cutShort[0], broken[0]);
            if (phases.steps() > 0) {
                StringBuilder j = new StringBuilder();
                phases.perStep().forEach((k, v) -> j.append(j.length() == 0 ? "" : ", ")
                        .append(String.format(Locale.ROOT, "\"%s\": [%.4f, %.0f]", k, v[0], v[1])));
                // The GPU's share of a decode step's wall time: the rest is host work it waited for.
                // The phases count every timed decode-only step, the wall times the steps with every
                // sequence decoding: both counts are printed, and they agree once all are admitted.
                double gpuMs = phases.perStep().values().stream().mapToDouble(v -> v[0]).sum();
                double stepMean = decode.stream().mapToDouble(Double::doubleValue).average().orElse(0);
                System.out.printf(Locale.ROOT, "RESULT {\"what\": \"phases\", \"run\": " + run + ", \"batch\": %d, \"in\": %d, \"out\": %d, "
                        + "\"steps\": %d, \"wall_steps\": %d, \"gpu_ms_per_step\": %.4f, \"step_ms_mean\": %.4f, \"gpu_busy\": %.3f, "
                        + "\"ms_per_step_and_count\": {%s}}%n", batch, in, out, phases.steps(), decode.size(), gpuMs, stepMean,
                        stepMean > 0 ? gpuMs / stepMean : 0, j);
            }
        }
    }

    /** Whether every token of an output is one its constraint allows where it stands. */
    private static boolean allowed(TokenIndex constraint, int[] output) {
        ConstraintCursor c = constraint.cursor();
        for (int t : output) if (!c.advance(t)) return false;
        return true;
    }

    /** {@link #TOOL_CALLS} over the packaged Qwen3 tokenizer's bytes, padded to the model's vocabulary; compiled once. */
    private TokenIndex toolCalls() throws IOException {
        if (toolCalls != null) return toolCalls;
        Path json = Files.createTempFile("qwen3-tokenizer", ".json");
        try (InputStream in = EngineBench.class.getResourceAsStream("/dev/rollout/tokenizer/qwen3/tokenizer.json")) {
            if (in == null) throw new IllegalStateException("csweep needs the packaged Qwen3 tokenizer on the class path");
            Files.copy(in, json, StandardCopyOption.REPLACE_EXISTING);
            toolCalls = Constraint.regex(TOOL_CALLS, ConstraintLimits.DEFAULT).index(Vocabulary.of(TokenBytes.of(json), vocab));
        } finally {
            Files.deleteIfExists(json);
        }
        return toolCalls;
    }

    private int run() {
        int steps = 0;
        while (engine.hasWork()) {
            engine.step();
            steps++;
        }
        return steps;
    }

    private static SamplingParams params(int out) {
        return SamplingParams.builder().temperature(1.0).maxNewTokens(out).ignoreEos(true).build();
    }
}
