package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.function.Executable;

/**
 * Every entry point of our native preset refuses a wrong tensor with an exception that names the
 * op, the argument and what is wrong (native-presets/include/rollout_checks.h, ADR 0014), before
 * a kernel touches its memory: after every refusal the device still computes, so no kernel ran
 * out of bounds. On the GPU with the native preset built (bench/gpu-bench.sh test).
 */
@EnabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class NativeChecksTest {
    static final Device CPU = new Device("cpu");
    static final int T = 5, H = 128, NH = 4, NKV = 2, D = 64, SLOTS = 64, BLOCK = 16;

    static Tensor bf16(Device d, long... shape) {
        return torch.randn(shape, Torch.options(ScalarType.BFloat16, d));
    }

    static Tensor f32(Device d, long... shape) {
        return torch.rand(shape, Torch.options(ScalarType.Float, d));
    }

    /** Refused with a RuntimeException whose message contains {@code expected}. */
    static void refused(String expected, Executable call) {
        RuntimeException e = assertThrows(RuntimeException.class, call, expected);
        assertTrue(e.getMessage() != null && e.getMessage().contains(expected), "expected \"" + expected + "\" in: " + e.getMessage());
    }

    @Test
    void wrongTensorsAreRefusedWithAMessageAndCorruptNothing() {
        assertTrue(RolloutCuda.available(), "the native preset must be built for this test: " + RolloutCuda.whyUnavailable());
        Device cuda = new Device(System.getProperty("rollout.test.device"));
        // nor a closed one (made outside the scope below, which would close it again)
        Tensor closed = bf16(cuda, T, H), w0 = bf16(cuda, H), out0 = bf16(cuda, T, H);
        closed.close();
        assertThrows(NullPointerException.class, () -> RolloutCuda.rmsNorm(closed, w0, out0, 1e-6f));
        w0.close();
        out0.close();
        try (PointerScope scope = new PointerScope()) {
            // rmsNorm and addRmsNorm
            Tensor x = bf16(cuda, T, H), w = bf16(cuda, H), out = bf16(cuda, T, H), delta = bf16(cuda, T, H), hOut = bf16(cuda, T, H);
            refused("rmsNorm: x is on cpu, not on cuda:0", () -> RolloutCuda.rmsNorm(bf16(CPU, T, H), w, out, 1e-6f));
            refused("rmsNorm: x is Float, not BFloat16", () -> RolloutCuda.rmsNorm(f32(cuda, T, H), w, out, 1e-6f));
            refused("rmsNorm: x of shape [5, 128] is not contiguous",
                    () -> RolloutCuda.rmsNorm(bf16(cuda, T, 2 * H).narrow(1, 0, H), w, out, 1e-6f));
            refused("rmsNorm: x has shape [5, 2, 64], not 2 dimensions", () -> RolloutCuda.rmsNorm(bf16(cuda, T, 2, 64), w, out, 1e-6f));
            refused("rmsNorm: w has shape [64]: dimension 0 must be 128 (x's hidden size)",
                    () -> RolloutCuda.rmsNorm(x, bf16(cuda, 64), out, 1e-6f));
            refused("rmsNorm: out has shape [4, 128], x [5, 128]", () -> RolloutCuda.rmsNorm(x, w, bf16(cuda, 4, H), 1e-6f));
            refused("addRmsNorm: delta has shape [5, 64], x [5, 128]",
                    () -> RolloutCuda.addRmsNorm(x, bf16(cuda, T, 64), hOut, w, out, 1e-6f));
            refused("addRmsNorm: hOut is on cpu", () -> RolloutCuda.addRmsNorm(x, delta, bf16(CPU, T, H), w, out, 1e-6f));
            // JavaCPP's own check: a null tensor never reaches C++
            assertThrows(NullPointerException.class, () -> RolloutCuda.rmsNorm(null, w, out, 1e-6f));

            // siluAndMul
            refused("siluAndMul: gateUp has shape [5, 100]: dimension 1 must be 128 (twice out's width: gate then up)",
                    () -> RolloutCuda.siluAndMul(bf16(cuda, T, 100), bf16(cuda, T, 64)));
            refused("siluAndMul: out has shape [3, 64]: dimension 0 must be 5 (gateUp's rows)",
                    () -> RolloutCuda.siluAndMul(bf16(cuda, T, 128), bf16(cuda, 3, 64)));

            // ropeAndCache
            ModelConfig c = new ModelConfig("Qwen3ForCausalLM", 1000, NH * D, 3 * NH * D, 1, NH, NKV, D, 1e-6,
                    new ModelConfig.Rope("default", 1e6, 1, 0, 0, 0), 4096, true, false, true, "bfloat16", List.of(0));
            RotaryEmbedding rope = new RotaryEmbedding(c, ScalarType.BFloat16, cuda);
            Tensor qkv = bf16(cuda, T, (NH + 2 * NKV) * D), q = bf16(cuda, T, NH, D), norm = bf16(cuda, D);
            Tensor kCache = bf16(cuda, SLOTS, NKV, D), vCache = bf16(cuda, SLOTS, NKV, D);
            Tensor pos = Torch.longs(new long[] {0, 1, 2, 3, 4}, cuda), slots = Torch.longs(new long[] {9, 8, 7, 6, 5}, cuda);
            refused("ropeAndCache: positions is Int, not Long", () -> RolloutCuda.ropeAndCache(qkv, pos.to(ScalarType.Int), slots,
                    rope.cos(), rope.sin(), norm, norm, q, kCache, vCache, 1e-6f));
            refused("ropeAndCache: slots is on cpu", () -> RolloutCuda.ropeAndCache(qkv, pos, Torch.longs(new long[] {9, 8, 7, 6, 5}, CPU),
                    rope.cos(), rope.sin(), norm, norm, q, kCache, vCache, 1e-6f));
            refused("ropeAndCache: qkv has shape [5, 256]: dimension 1 must be 512", () -> RolloutCuda.ropeAndCache(bf16(cuda, T, 256), pos,
                    slots, rope.cos(), rope.sin(), norm, norm, q, kCache, vCache, 1e-6f));
            refused("ropeAndCache: qNorm and kNorm must be given both or neither", () -> RolloutCuda.ropeAndCache(qkv, pos, slots,
                    rope.cos(), rope.sin(), norm, null, q, kCache, vCache, 1e-6f));
            refused("ropeAndCache: vCache has shape [32, 2, 64], kCache [64, 2, 64]", () -> RolloutCuda.ropeAndCache(qkv, pos, slots,
                    rope.cos(), rope.sin(), norm, norm, q, kCache, bf16(cuda, 32, NKV, D), 1e-6f));
            refused("ropeAndCache: cos is Float, not BFloat16", () -> RolloutCuda.ropeAndCache(qkv, pos, slots,
                    rope.cos().to(ScalarType.Float), rope.sin(), norm, norm, q, kCache, vCache, 1e-6f));

            // pagedDecodeAttention: 3 sequences over at most 2 blocks of 16, one split
            int b = 3, maxBlocks = 2, p = RolloutCuda.pagedDecodeSplits(b, NKV, D, maxBlocks, BLOCK, 0);
            assertEquals(1, p, "a context of 32 tokens is one split");
            Tensor qd = bf16(cuda, b, NH, D), od = bf16(cuda, b, NH, D);
            Tensor table = Torch.longs(new long[] {0, 1, 2, 0, 3, 0}, b, maxBlocks, cuda), lens = Torch.longs(new long[] {20, 5, 1}, cuda);
            Tensor m = f32(cuda, b, NH, p), l = f32(cuda, b, NH, p), acc = f32(cuda, b, NH, p, D);
            Tensor counters = Torch.zeros(Torch.options(ScalarType.Int, cuda), b, NKV);
            refused("pagedDecodeAttention: partM has shape [3, 4, 2]: dimension 2 must be 1 (the kernel's splits for this batch and context)",
                    () -> RolloutCuda.pagedDecodeAttention(qd, kCache, vCache, table, lens, f32(cuda, b, NH, 2), l, acc, counters, od,
                            BLOCK, 0, 0.125f));
            refused("pagedDecodeAttention: blockTable is Int, not Long", () -> RolloutCuda.pagedDecodeAttention(qd, kCache, vCache,
                    table.to(ScalarType.Int), lens, m, l, acc, counters, od, BLOCK, 0, 0.125f));
            refused("pagedDecodeAttention: seqLens has shape [2]: dimension 0 must be 3 (q's batch)", () -> RolloutCuda.pagedDecodeAttention(
                    qd, kCache, vCache, table, Torch.longs(new long[] {20, 5}, cuda), m, l, acc, counters, od, BLOCK, 0, 0.125f));
            refused("pagedDecodeAttention: kCache has shape [64, 2, 128]: dimension 2 must be 64 (q's head_dim)",
                    () -> RolloutCuda.pagedDecodeAttention(qd, bf16(cuda, SLOTS, NKV, 128), vCache, table, lens, m, l, acc, counters, od,
                            BLOCK, 0, 0.125f));
            refused("pagedDecodeAttention: counters has shape [3, 1]: dimension 1 must be 2 (kCache's KV heads)",
                    () -> RolloutCuda.pagedDecodeAttention(qd, kCache, vCache, table, lens, m, l, acc,
                            Torch.zeros(Torch.options(ScalarType.Int, cuda), b, 1), od, BLOCK, 0, 0.125f));
            refused("pagedDecodeAttention: counters is Long, not Int", () -> RolloutCuda.pagedDecodeAttention(qd, kCache, vCache,
                    table, lens, m, l, acc, counters.to(ScalarType.Long), od, BLOCK, 0, 0.125f));
            refused("pagedDecodeAttention: partitionTokens is -1, not 0 or positive", () -> RolloutCuda.pagedDecodeAttention(qd, kCache,
                    vCache, table, lens, m, l, acc, counters, od, BLOCK, -1, 0.125f));
            // the caches are copied 16 bytes at a time (cp.async): a cache two bytes into its buffer is refused
            Tensor oddCache = bf16(cuda, (long) SLOTS * NKV * D + 1).narrow(0, 1, (long) SLOTS * NKV * D).view(SLOTS, NKV, D);
            refused("pagedDecodeAttention: kCache of shape [64, 2, 64] does not start on a 16-byte boundary",
                    () -> RolloutCuda.pagedDecodeAttention(qd, oddCache, vCache, table, lens, m, l, acc, counters, od, BLOCK, 0, 0.125f));

            // sampleRows
            Tensor logits = f32(cuda, 4, 1000), temps = f32(cuda, 4), u = f32(cuda, 4), sampled = f32(cuda, 4, 2);
            refused("sampleRows: logits is Half, not Float",
                    () -> RolloutCuda.sampleRows(Torch.zeros(Torch.options(ScalarType.Half, cuda), 4, 1000), temps, u, sampled, null, null));
            refused("sampleRows: uniform has shape [3]: dimension 0 must be 4 (logits' rows)",
                    () -> RolloutCuda.sampleRows(logits, temps, f32(cuda, 3), sampled, null, null));
            refused("sampleRows: out has shape [4, 3]: dimension 1 must be 2 (token and logprob)",
                    () -> RolloutCuda.sampleRows(logits, temps, u, f32(cuda, 4, 3), null, null));
            Tensor words = Torch.zeros(Torch.options(ScalarType.Long, cuda), 3, 16), maskRow = Torch.zeros(Torch.options(ScalarType.Long, cuda), 4);
            refused("sampleRows: maskWords and maskRow come together, or neither",
                    () -> RolloutCuda.sampleRows(logits, temps, u, sampled, words, null));
            refused("sampleRows: maskWords has shape [3, 15]: dimension 1 must be 16 (a bit for each of the logits' tokens)",
                    () -> RolloutCuda.sampleRows(logits, temps, u, sampled, words.narrow(1, 0, 15).contiguous(), maskRow));
            refused("sampleRows: maskRow has shape [3]: dimension 0 must be 4 (logits' rows)",
                    () -> RolloutCuda.sampleRows(logits, temps, u, sampled, words, maskRow.narrow(0, 0, 3)));

            // moeRoute, moeAlign, moeCombine: 5 tokens, 16 experts, 4 per token
            Tensor router = bf16(cuda, T, 16), weights = f32(cuda, T, 4), chosen = Torch.zeros(Torch.options(ScalarType.Int, cuda), T, 4);
            Tensor record = Torch.zeros(Torch.options(ScalarType.Int, cuda), SLOTS, 4);
            refused("moeRoute: logits is Float, not BFloat16", () -> RolloutCuda.moeRoute(f32(cuda, T, 16), weights, chosen, null, null, true, true));
            refused("moeRoute: weights has shape [5, 17]: k must be 1 to 32 and at most the experts",
                    () -> RolloutCuda.moeRoute(router, f32(cuda, T, 17), chosen, null, null, true, true));
            refused("moeRoute: experts is Long, not Int", () -> RolloutCuda.moeRoute(router, weights, chosen.to(ScalarType.Long), null, null, true, true));
            refused("moeRoute: routed and slots must be given both or neither",
                    () -> RolloutCuda.moeRoute(router, weights, chosen, record, null, true, true));
            refused("moeRoute: routed has shape [64, 3]: dimension 1 must be 4 (weights' k)",
                    () -> RolloutCuda.moeRoute(router, weights, chosen, Torch.zeros(Torch.options(ScalarType.Int, cuda), SLOTS, 3), slots, true, true));
            Tensor rows = Torch.zeros(Torch.options(ScalarType.Long, cuda), T * 4), tokenOf = Torch.zeros(Torch.options(ScalarType.Long, cuda), T * 4);
            Tensor ends = Torch.zeros(Torch.options(ScalarType.Int, cuda), 16);
            refused("moeAlign: rowOf has shape [19]: dimension 0 must be 20 (experts' tokens times k)",
                    () -> RolloutCuda.moeAlign(chosen, Torch.zeros(Torch.options(ScalarType.Long, cuda), 19), tokenOf, ends));
            refused("moeAlign: ends is Long, not Int", () -> RolloutCuda.moeAlign(chosen, rows, tokenOf, ends.to(ScalarType.Long)));
            Tensor ys = bf16(cuda, T * 4, H), combined = bf16(cuda, T, H);
            refused("moeCombine: ys has shape [19, 128]: dimension 0 must be 20 (weights' tokens times k)",
                    () -> RolloutCuda.moeCombine(bf16(cuda, 19, H), rows, weights, combined, true));
            refused("moeCombine: out has shape [5, 64]: dimension 1 must be 128 (ys' hidden size)",
                    () -> RolloutCuda.moeCombine(ys, rows, weights, bf16(cuda, T, 64), true));
            // moeGateUp, moeDown: the 20 copies over 16 experts of 128 -> 64 -> 128
            Tensor gateUp = bf16(cuda, 16, 128, H), down = bf16(cuda, 16, H, 64), act = bf16(cuda, T * 4, 64);
            refused("moeGateUp: gateUp has shape [16, 127, 128]: dimension 1 must be even (gate, then up)",
                    () -> RolloutCuda.moeGateUp(x, tokenOf, bf16(cuda, 16, 127, H), ends, act));
            refused("moeGateUp: x has shape [5, 64]: dimension 1 must be 128 (gateUp's hidden size)",
                    () -> RolloutCuda.moeGateUp(bf16(cuda, T, 64), tokenOf, gateUp, ends, act));
            refused("moeGateUp: ends has shape [8]: dimension 0 must be 16 (gateUp's experts)",
                    () -> RolloutCuda.moeGateUp(x, tokenOf, gateUp, Torch.zeros(Torch.options(ScalarType.Int, cuda), 8), act));
            refused("moeGateUp: act has shape [20, 32]: dimension 1 must be 64 (gateUp's intermediate size)",
                    () -> RolloutCuda.moeGateUp(x, tokenOf, gateUp, ends, bf16(cuda, T * 4, 32)));
            refused("moeDown: down has shape [16, 128, 60]: the intermediate size must be a multiple of 8",
                    () -> RolloutCuda.moeDown(bf16(cuda, T * 4, 60), bf16(cuda, 16, H, 60), ends, ys));
            refused("moeDown: ys has shape [19, 128]: dimension 0 must be 20 (act's rows)",
                    () -> RolloutCuda.moeDown(act, down, ends, bf16(cuda, 19, H)));
            refused("moeDown: act is Float, not BFloat16", () -> RolloutCuda.moeDown(f32(cuda, T * 4, 64), down, ends, ys));
            // contiguous, but two bytes into its buffer: the kernels' 16-byte loads would fault
            Tensor offset = bf16(cuda, T * H + 1).narrow(0, 1, (long) T * H).view(T, H);
            refused("moeGateUp: x of shape [5, 128] does not start on a 16-byte boundary (a view at an odd offset?)",
                    () -> RolloutCuda.moeGateUp(offset, tokenOf, gateUp, ends, act));

            // after all of that, every op still runs and the device is healthy (a kernel out of
            // bounds would have left a sticky error that the next synchronisation reports)
            RolloutCuda.rmsNorm(x, w, out, 1e-6f);
            RolloutCuda.addRmsNorm(x, delta, hOut, w, out, 1e-6f);
            RolloutCuda.siluAndMul(bf16(cuda, T, 128), bf16(cuda, T, 64));
            RolloutCuda.ropeAndCache(qkv, pos, slots, rope.cos(), rope.sin(), norm, norm, q, kCache, vCache, 1e-6f);
            RolloutCuda.ropeAndCache(qkv, pos, slots, rope.cos(), rope.sin(), null, null, q, kCache, vCache, 1e-6f);
            RolloutCuda.pagedDecodeAttention(qd, kCache, vCache, table, lens, m, l, acc, counters, od, BLOCK, 0, 0.125f);
            RolloutCuda.sampleRows(logits, torch.zeros(new long[] {4}, Torch.options(ScalarType.Float, cuda)), u, sampled, null, null);
            RolloutCuda.moeRoute(router, weights, chosen, record, slots, true, true);
            RolloutCuda.moeAlign(chosen, rows, tokenOf, ends);
            RolloutCuda.moeCombine(ys, rows, weights, combined, true);
            RolloutCuda.moeGateUp(x, tokenOf, gateUp, ends, act);
            RolloutCuda.moeDown(act, down, ends, ys);
            assertEquals(T * 4L, Torch.toLongs(ends.to(ScalarType.Long))[15], "every copy in some expert's block");
            float[] tokens = Torch.toFloats(sampled);
            long[] argmax = Torch.toLongs(logits.argmax(new org.bytedeco.pytorch.LongOptional(1), false));
            for (int r = 0; r < 4; r++) assertEquals(argmax[r], (long) tokens[2 * r], "greedy row " + r);
            assertEquals(0.0, FusedOpsTest.maxDiff(hOut, x.add(delta)), "addRmsNorm's sum");
        }
    }
}
