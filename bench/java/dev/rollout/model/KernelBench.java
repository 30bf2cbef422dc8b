package dev.rollout.model;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The GPU time of single decode-step kernels in isolation: each replayed from a CUDA graph between
 * two CUDA events, so the GPU never waits on the host and the time is the kernel's own (what
 * Nsight Compute would report; it did not finish in 300 s here, and Nsight Systems is missing). Each figure comes with the bytes the kernel must move and
 * the fraction of the card's copy bandwidth that makes: our paged attention over B contexts, and
 * libtorch's GEMMs of one layer at batch B.
 *
 *   KernelBench --hbm-gbps 3000 MODEL:B:CONTEXT ...     MODEL: 0.5b or 7b (Qwen2.5's shapes)
 *   KernelBench --hbm-gbps 3000 moe30:B ...             the experts' GEMMs of Qwen3-30B-A3B at B tokens
 *   KernelBench --hbm-gbps 3000 gemv:MODEL:B ...        a dense layer's projections at B decode rows: cuBLAS's
 *                                                       GEMMs with the fused ops beside them, against dense_gemv.cu
 */
public final class KernelBench {
    private KernelBench() {}

    /** Qwen2.5's shapes: hidden, heads, KV heads, head dim, intermediate. */
    private record Shape(int hidden, int heads, int kvHeads, int headDim, int inter) {}

    public static void main(String[] args) {
        double gbps = 3000;
        Device dev = new Device("cuda");
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--hbm-gbps")) {
                gbps = Double.parseDouble(args[++i]);
                continue;
            }
            String[] p = args[i].split(":");
            if (p[0].equals("moe30")) {
                experts(Integer.parseInt(p[1]), gbps * 1e9, dev);
                continue;
            }
            if (p[0].equals("gemv")) {
                projections(p[1], shape(p[1]), Integer.parseInt(p[2]), gbps * 1e9, dev);
                continue;
            }
            run(p[0], shape(p[0]), Integer.parseInt(p[1]), Integer.parseInt(p[2]), gbps * 1e9, dev);
        }
    }

    private static Shape shape(String model) {
        return model.equals("7b") ? new Shape(3584, 28, 4, 128, 18944) : new Shape(896, 14, 2, 64, 4864);
    }

    private static void run(String model, Shape s, int b, int ctx, double bytesPerSecond, Device dev) {
        int blockSize = 16, nb = (ctx + blockSize - 1) / blockSize;
        var bf16 = Torch.options(ScalarType.BFloat16, dev);
        Tensor k = torch.randn(new long[] {(long) b * nb * blockSize, s.kvHeads(), s.headDim()}, bf16); // (slots, nKv, d)
        Tensor v = torch.randn(new long[] {(long) b * nb * blockSize, s.kvHeads(), s.headDim()}, bf16);
        Tensor q = torch.randn(new long[] {b, s.heads(), s.headDim()}, bf16);                           // (B, nH, d)
        long[] table = new long[b * nb], lens = new long[b];
        for (int i = 0; i < b * nb; i++) table[i] = i;  // sequence i owns blocks i * nb .. i * nb + nb - 1
        Arrays.fill(lens, ctx);
        ForwardBatch.DecodeGroup dec = new ForwardBatch.DecodeGroup(null, null, b, ctx, null,
                Torch.longs(table, b, nb, dev), Torch.longs(lens, dev), nb, PagedDecode.splitCounters(b, s.kvHeads(), dev));
        ModelConfig c = new ModelConfig("Qwen2ForCausalLM", 151936, s.hidden(), s.inter(), 1, s.heads(), s.kvHeads(), s.headDim(),
                1e-6, new ModelConfig.Rope("default", 1e6, 1, 1, 1, 32768), 32768, false, true, false, "bfloat16", List.of(0));
        double kvBytes = 2.0 * b * ctx * s.kvHeads() * s.headDim() * 2;
        report(model, "paged_attention", b, ctx, time(() -> PagedDecode.attend(q, k, v, dec, blockSize, c)), kvBytes, bytesPerSecond);

        Tensor x = torch.randn(new long[] {b, s.hidden()}, bf16);
        Tensor a = torch.randn(new long[] {b, s.inter()}, bf16);
        int qkvOut = (s.heads() + 2 * s.kvHeads()) * s.headDim();
        Tensor wQkv = torch.randn(new long[] {qkvOut, s.hidden()}, bf16);
        Tensor wO = torch.randn(new long[] {s.hidden(), s.heads() * s.headDim()}, bf16);
        Tensor wGateUp = torch.randn(new long[] {2L * s.inter(), s.hidden()}, bf16);
        Tensor wDown = torch.randn(new long[] {s.hidden(), s.inter()}, bf16);
        Tensor xo = torch.randn(new long[] {b, (long) s.heads() * s.headDim()}, bf16);
        report(model, "qkv_gemm", b, ctx, time(() -> torch.linear(x, wQkv)), 2.0 * qkvOut * s.hidden(), bytesPerSecond);
        report(model, "o_gemm", b, ctx, time(() -> torch.linear(xo, wO)), 2.0 * s.hidden() * s.heads() * s.headDim(), bytesPerSecond);
        report(model, "gate_up_gemm", b, ctx, time(() -> torch.linear(x, wGateUp)), 4.0 * s.inter() * s.hidden(), bytesPerSecond);
        report(model, "down_gemm", b, ctx, time(() -> torch.linear(a, wDown)), 2.0 * s.inter() * s.hidden(), bytesPerSecond);
    }

    /**
     * A dense layer's four projections at B decode rows, each with the small ops that come with it,
     * as CausalLm runs them: cuBLAS's GEMMs beside our fused norm, residual-add and SiLU-and-mul
     * kernels (q/k/v with its bias, o then add + norm, gate-up then SiLU-and-mul, down then add +
     * norm: seven kernels), against dense_gemv.cu (four), and each projection alone both ways. Every
     * call reads the next of enough weight copies to pass 200 MB, so the weights come from HBM as in
     * a step, not from the 50 MB L2 that a repeated call of 0.5B's matrices would hit ("context" in
     * the result is the number of copies).
     */
    private static void projections(String model, Shape s, int b, double bytesPerSecond, Device dev) {
        var bf16 = Torch.options(ScalarType.BFloat16, dev);
        int hidden = s.hidden(), attn = s.heads() * s.headDim(), qkvOut = (s.heads() + 2 * s.kvHeads()) * s.headDim();
        long qkvBytes = 2L * qkvOut * hidden, oBytes = 2L * hidden * attn, guBytes = 4L * s.inter() * hidden, downBytes = 2L * s.inter() * hidden;
        long layerBytes = qkvBytes + oBytes + guBytes + downBytes;
        int copies = (int) Math.max(2, (200L << 20) / layerBytes + 1);
        Tensor[] qkv = new Tensor[copies], bias = new Tensor[copies], o = new Tensor[copies], gateUp = new Tensor[copies],
                down = new Tensor[copies], norm = new Tensor[copies];
        for (int i = 0; i < copies; i++) {
            qkv[i] = torch.randn(new long[] {qkvOut, hidden}, bf16).mul_(new Scalar(0.02));
            bias[i] = torch.randn(new long[] {qkvOut}, bf16).mul_(new Scalar(0.02));
            o[i] = torch.randn(new long[] {hidden, attn}, bf16).mul_(new Scalar(0.02));
            gateUp[i] = torch.randn(new long[] {2L * s.inter(), hidden}, bf16).mul_(new Scalar(0.02));
            down[i] = torch.randn(new long[] {hidden, s.inter()}, bf16).mul_(new Scalar(0.02));
            norm[i] = torch.randn(new long[] {hidden}, bf16).mul_(new Scalar(0.1)).add_(new Scalar(1.0));
        }
        Tensor h = torch.randn(new long[] {b, hidden}, bf16), a = torch.randn(new long[] {b, attn}, bf16);   // residual, attention out
        Tensor act = torch.randn(new long[] {b, s.inter()}, bf16);
        double eps = 1e-6;
        int[] at = {0};
        report(model, "projections_cublas", b, copies, time(() -> {
            int i = at[0]++ % copies;
            Tensor normed = NativeOps.rmsNorm(h, norm[i], eps);   // the last layer's add + norm (one kernel either way)
            torch.linear(normed, qkv[i], new TensorOptional(bias[i]));
            Tensor[] hx = NativeOps.addRmsNorm(h, torch.linear(a, o[i]), norm[i], eps);
            Tensor gu = NativeOps.siluAndMul(torch.linear(hx[1], gateUp[i]), s.inter());
            return NativeOps.addRmsNorm(hx[0], torch.linear(gu, down[i]), norm[i], eps)[1];
        }), layerBytes, bytesPerSecond);
        report(model, "projections_gemv", b, copies, time(() -> {
            int i = at[0]++ % copies;
            Tensor q = NativeOps.normGemv(h, norm[i], qkv[i], bias[i], eps);
            NativeOps.gemvResidual(a, o[i], h);
            NativeOps.gemvResidual(NativeOps.normGemvSiluMul(h, norm[i], gateUp[i], eps), down[i], h);
            return q;
        }), layerBytes, bytesPerSecond);
        report(model, "qkv_cublas", b, copies, time(() -> { int i = at[0]++ % copies; return torch.linear(h, qkv[i], new TensorOptional(bias[i])); }),
                qkvBytes, bytesPerSecond);
        report(model, "qkv_gemv", b, copies, time(() -> { int i = at[0]++ % copies; return NativeOps.normGemv(h, norm[i], qkv[i], bias[i], eps); }),
                qkvBytes, bytesPerSecond);
        report(model, "o_cublas", b, copies, time(() -> torch.linear(a, o[at[0]++ % copies])), oBytes, bytesPerSecond);
        report(model, "o_gemv", b, copies, time(() -> { NativeOps.gemvResidual(a, o[at[0]++ % copies], h); return h; }), oBytes, bytesPerSecond);
        report(model, "gate_up_cublas", b, copies, time(() -> torch.linear(h, gateUp[at[0]++ % copies])), guBytes, bytesPerSecond);
        report(model, "gate_up_gemv", b, copies, time(() -> { int i = at[0]++ % copies; return NativeOps.normGemvSiluMul(h, norm[i], gateUp[i], eps); }),
                guBytes, bytesPerSecond);
        report(model, "down_cublas", b, copies, time(() -> torch.linear(act, down[at[0]++ % copies])), downBytes, bytesPerSecond);
        report(model, "down_gemv", b, copies, time(() -> { NativeOps.gemvResidual(act, down[at[0]++ % copies], h); return h; }), downBytes,
                bytesPerSecond);
    }

    /**
     * A mixture of experts' two GEMMs for B tokens of Qwen3-30B-A3B's shape (128 experts of 768,
     * hidden 2048, top 8 of random router logits): libtorch's grouped GEMMs with the gathered copies
     * and SiLU-and-mul beside them, against our matrix-vector kernels. The floor is the chosen
     * experts' weights, each read once; "context" in the result is how many experts were chosen.
     */
    private static void experts(int b, double bytesPerSecond, Device dev) {
        int hidden = 2048, inter = 768, numExperts = 128, k = 8;
        var bf16 = Torch.options(ScalarType.BFloat16, dev);
        var i32 = Torch.options(ScalarType.Int, dev);
        var i64 = Torch.options(ScalarType.Long, dev);
        Tensor x = torch.randn(new long[] {b, hidden}, bf16);                                               // (B, hidden)
        Tensor gateUp = torch.randn(new long[] {numExperts, 2L * inter, hidden}, bf16).mul_(new Scalar(0.02)); // (E, 2 inter, hidden)
        Tensor down = torch.randn(new long[] {numExperts, hidden, inter}, bf16).mul_(new Scalar(0.02));        // (E, hidden, inter)
        Tensor weights = Torch.empty(Torch.options(ScalarType.Float, dev), b, k), chosen = Torch.empty(i32, b, k);
        RolloutCuda.moeRoute(torch.randn(new long[] {b, numExperts}, bf16), weights, chosen, null, null, true, true);
        Tensor rowOf = Torch.empty(i64, (long) b * k), tokenOf = Torch.empty(i64, (long) b * k), ends = Torch.empty(i32, numExperts);
        RolloutCuda.moeAlign(chosen, rowOf, tokenOf, ends);
        long[] end = Torch.toLongs(ends.to(ScalarType.Long));
        int used = 0;
        for (int e = 0; e < numExperts; e++) if (end[e] > (e == 0 ? 0 : end[e - 1])) used++;
        double bytes = 2.0 * used * 3 * hidden * inter;
        report("30b-a3b", "experts_grouped_mm", b, used, time(() -> {
            Tensor act = NativeOps.siluAndMul(RolloutCuda.groupedMm(x.index_select(0, tokenOf), gateUp, ends), inter);
            return RolloutCuda.groupedMm(act, down, ends);
        }), bytes, bytesPerSecond);
        report("30b-a3b", "experts_gemv", b, used, time(() -> {
            Tensor act = Torch.empty(bf16, (long) b * k, inter);
            RolloutCuda.moeGateUp(x, tokenOf, gateUp, ends, act);
            Tensor ys = Torch.empty(bf16, (long) b * k, hidden);
            RolloutCuda.moeDown(act, down, ends, ys);
            return ys;
        }), bytes, bytesPerSecond);
    }

    /**
     * Microseconds of GPU time per call: 20 calls captured into a CUDA graph, replayed 5 times
     * between two events. Replays issue no host work, so a small kernel is not timed as the host's
     * launch cost (some 20 us a libtorch op from Java, 100 us our attention call with its allocations).
     */
    private static double time(Supplier<Tensor> op) {
        for (int i = 0; i < 3; i++) op.get();  // cuBLAS heuristics and the allocator settle before the capture
        long graph = RolloutCuda.graphBegin();
        for (int i = 0; i < 20; i++) op.get();
        RolloutCuda.graphEnd(graph);
        RolloutCuda.graphReplay(graph);  // the first replay uploads the graph
        long e0 = RolloutCuda.eventCreate(), e1 = RolloutCuda.eventCreate();
        RolloutCuda.eventRecord(e0);
        for (int i = 0; i < 5; i++) RolloutCuda.graphReplay(graph);
        RolloutCuda.eventRecord(e1);
        RolloutCuda.eventSynchronize(e1);
        double us = 1e3 * RolloutCuda.eventElapsedMs(e0, e1) / 100;
        RolloutCuda.graphDestroy(graph);
        return us;
    }

    private static void report(String model, String kernel, int b, int ctx, double us, double bytes, double bytesPerSecond) {
        double floorUs = 1e6 * bytes / bytesPerSecond;
        System.out.printf(Locale.ROOT, "RESULT {\"what\": \"kernel\", \"model\": \"%s\", \"kernel\": \"%s\", \"batch\": %d, \"context\": %d, "
                        + "\"us\": %.2f, \"bytes\": %.0f, \"floor_us\": %.2f, \"hbm_fraction\": %.3f}%n",
                model, kernel, b, ctx, us, bytes, floorUs, floorUs / us);
    }
}
