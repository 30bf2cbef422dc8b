package dev.rollout.model;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One fixed run of a model, the same on every rank of a tensor-parallel group and at one rank, so
 * that their logits can be compared: three prompts prefilled in chunks of a shared step (padded
 * together in one prefill group), a second step in which two prompts finish their prefill over
 * their cached first chunks while the third already decodes, then decode steps of all three
 * through the paged KV cache. Tokens are chosen greedily from the logits of each step, which the
 * test also compares (every row of every step, not only the sampled ones).
 *
 * <p>It builds the {@link ForwardBatch}es itself, as the engine's ModelRunner does, so that the
 * model side is tested alone: the rank protocol that sends the engine's steps to the ranks is
 * another issue's.
 */
final class TpScenario {
    static final int BLOCK = 4, BLOCKS_PER_SEQ = 8;
    private static final Device CPU = new Device("cpu");

    /** A checkpoint and how its decoding sequences attend. */
    record Case(String name, Path dir, DecodeAttention decode) {
        Kernels kernels() {
            return Kernels.libtorch(decode);
        }
    }

    /**
     * @param logits every step's (T, vocab) float32 logits, row-major
     * @param tokens every sequence's greedy tokens
     */
    record Result(List<float[]> logits, int[][] tokens) {}

    /** Ids below 500: inside every case's vocabulary. */
    static final int[][] PROMPTS = {
            {17, 301, 44, 5, 98, 250, 3, 77, 412},
            {9, 8, 7, 123, 456, 321, 11, 2, 99, 100, 101, 480, 33, 64},
            {250, 251, 13, 400, 6}};
    /** The first chunk's length: prompts 0 and 1 finish in step 2, prompt 2 in step 1 and decodes in step 2. */
    static final int[] FIRST_CHUNK = {5, 8, 5};

    static CausalLm load(Case c, TpGroup tp) throws IOException {
        return CausalLm.load(c.dir(), ScalarType.Float, CPU, c.kernels(), tp);
    }

    static Result run(CausalLm lm, int decodeSteps) {
        int n = PROMPTS.length;
        KvCache cache = new KvCache(lm.shardConfig(), n * BLOCKS_PER_SEQ, BLOCK, ScalarType.Float, CPU);
        List<float[]> logits = new ArrayList<>();
        List<List<Integer>> seqs = new ArrayList<>();
        for (int[] p : PROMPTS) {
            List<Integer> s = new ArrayList<>();
            for (int id : p) s.add(id);
            seqs.add(s);
        }
        int[] computed = new int[n];  // positions whose K/V are in the cache
        List<List<Integer>> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(new ArrayList<>());
        for (int step = 0; step < 2 + decodeSteps; step++) {
            List<Work> works = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int len = step == 0 ? FIRST_CHUNK[i] : seqs.get(i).size() - computed[i];
                works.add(new Work(i, computed[i], len));
            }
            try (PointerScope scope = new PointerScope()) {
                Tensor l = lm.logits(lm.forward(batch(works, seqs, lm.kernels().decodeAttention()), cache));   // (T, vocab)
                float[] f = Torch.toFloats(l);
                logits.add(f);
                int vocab = (int) l.size(1), row = 0;
                for (Work w : works) {
                    row += w.len();
                    computed[w.seq()] += w.len();
                    if (computed[w.seq()] == seqs.get(w.seq()).size()) {   // the last token of what is known: sample
                        int next = argmax(f, (row - 1) * vocab, vocab);
                        seqs.get(w.seq()).add(next);
                        out.get(w.seq()).add(next);
                    }
                }
            }
        }
        cache.release();
        int[][] tokens = new int[n][];
        for (int i = 0; i < n; i++) tokens[i] = out.get(i).stream().mapToInt(Integer::intValue).toArray();
        return new Result(logits, tokens);
    }

    /** What one sequence computes in a step: {@code len} tokens from position {@code start}. */
    private record Work(int seq, int start, int len) {}

    private static long slot(int seq, int pos) {
        return (long) (seq * BLOCKS_PER_SEQ + pos / BLOCK) * BLOCK + pos % BLOCK;
    }

    /** The step as the engine's ModelRunner would describe it: single tokens decode, longer runs prefill in one padded group. */
    private static ForwardBatch batch(List<Work> works, List<List<Integer>> seqs, DecodeAttention decode) {
        int total = works.stream().mapToInt(Work::len).sum();
        long[] ids = new long[total], pos = new long[total], slots = new long[total];
        List<Work> decodes = new ArrayList<>(), chunks = new ArrayList<>();
        List<Integer> decodeRows = new ArrayList<>(), chunkRows = new ArrayList<>();
        int row = 0;
        for (Work w : works) {
            (w.len() == 1 ? decodeRows : chunkRows).add(row);
            (w.len() == 1 ? decodes : chunks).add(w);
            for (int p = w.start(); p < w.start() + w.len(); p++, row++) {
                ids[row] = seqs.get(w.seq()).get(p);
                pos[row] = p;
                slots[row] = slot(w.seq(), p);
            }
        }
        ForwardBatch.DecodeGroup dec = decodes.isEmpty() ? null : decodeGroup(decodes, decodeRows, decode);
        List<ForwardBatch.PrefillGroup> prefills = chunks.isEmpty() ? List.of() : List.of(prefillGroup(chunks, chunkRows));
        return new ForwardBatch(Torch.longs(ids, CPU), Torch.longs(pos, CPU), Torch.longs(slots, CPU), dec, prefills);
    }

    private static ForwardBatch.DecodeGroup decodeGroup(List<Work> decodes, List<Integer> rows, DecodeAttention decode) {
        int b = decodes.size(), maxContext = 0;
        for (Work w : decodes) maxContext = Math.max(maxContext, w.start() + 1);
        long[] index = new long[b];
        for (int i = 0; i < b; i++) index[i] = rows.get(i);
        if (decode.paged()) {
            int maxBlocks = (maxContext + BLOCK - 1) / BLOCK;
            long[] table = new long[b * maxBlocks], lens = new long[b];
            for (int i = 0; i < b; i++) {
                Work w = decodes.get(i);
                lens[i] = w.start() + 1;
                for (int k = 0; k * BLOCK < w.start() + 1; k++) table[i * maxBlocks + k] = (long) w.seq() * BLOCKS_PER_SEQ + k;
            }
            return new ForwardBatch.DecodeGroup(Torch.longs(index, CPU), null, b, maxBlocks * BLOCK, null,
                    Torch.longs(table, b, maxBlocks, CPU), Torch.longs(lens, CPU), maxBlocks);
        }
        long[] ctx = new long[b * maxContext];
        boolean[] mask = new boolean[b * maxContext];
        for (int i = 0; i < b; i++) {
            Work w = decodes.get(i);
            for (int p = 0; p <= w.start(); p++) {
                ctx[i * maxContext + p] = slot(w.seq(), p);
                mask[i * maxContext + p] = true;
            }
        }
        return new ForwardBatch.DecodeGroup(Torch.longs(index, CPU), Torch.longs(ctx, CPU), b, maxContext,
                Torch.bools(mask, CPU, b, 1, 1, maxContext), null, null, 0);
    }

    /** Padded query rows repeat the chunk's first row and see key 0; padded context repeats slot 0 past every real query. */
    private static ForwardBatch.PrefillGroup prefillGroup(List<Work> chunks, List<Integer> firstRows) {
        int p = chunks.size(), mq = 0, mc = 0, real = 0;
        for (Work w : chunks) {
            mq = Math.max(mq, w.len());
            mc = Math.max(mc, w.start() + w.len());
            real += w.len();
        }
        long[] rows = new long[p * mq], qpos = new long[p * mq], ctx = new long[p * mc], valid = new long[real], targets = new long[real];
        int r = 0;
        for (int i = 0; i < p; i++) {
            Work w = chunks.get(i);
            int first = firstRows.get(i);
            for (int j = 0; j < mq; j++) {
                boolean isReal = j < w.len();
                rows[i * mq + j] = first + (isReal ? j : 0);
                qpos[i * mq + j] = isReal ? w.start() + j : 0;
                if (isReal) {
                    valid[r] = (long) i * mq + j;
                    targets[r++] = first + j;
                }
            }
            for (int k = 0; k < mc; k++) ctx[i * mc + k] = slot(w.seq(), k < w.start() + w.len() ? k : 0);
        }
        return new ForwardBatch.PrefillGroup(p, mq, mc, Torch.longs(rows, CPU), Torch.longs(qpos, p, mq, CPU), Torch.longs(ctx, CPU),
                Torch.longs(valid, CPU), Torch.longs(targets, CPU));
    }

    private static int argmax(float[] f, int from, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (f[from + i] > f[from + best]) best = i;
        return best;
    }
}
