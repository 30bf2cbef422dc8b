package dev.rollout.model;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
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
 * through the paged KV cache. The third prompt's first two positions are given as embeddings.
 * Tokens are chosen greedily from the logits of each step, which the test also compares (every
 * row of every step, not only the sampled ones).
 *
 * <p>It builds the {@link ForwardBatch}es itself, as the engine's ModelRunner does, so that the
 * model side is tested alone. Either every rank builds them ({@link #run}), or rank 0 alone does
 * and sends each to the others over a {@link StepBroadcast}, which run it ({@link #follow}).
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
     * @param tokens every sequence's greedy tokens (null on a worker, which knows steps, not sequences)
     * @param stepTokens every step's greedy tokens, in the order of its sampling rows
     */
    record Result(List<float[]> logits, int[][] tokens, List<int[]> stepTokens) {}

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

    /** Sees each step before the rank runs it: rank 0 sends it to the other ranks ({@link StepBroadcast#send}). */
    interface Steps {
        void send(ForwardBatch batch, List<Tensor> logitsRows);
    }

    static Result run(CausalLm lm, int decodeSteps) {
        return run(lm, decodeSteps, (batch, rows) -> {});
    }

    /**
     * Builds every step, hands it to {@code steps}, then runs it as a worker would
     * ({@link #execute}): logits of every row (compared by the test), then of the rows that
     * sample, from which the greedy tokens come (as ModelRunner takes the logits of the sampling
     * rows only).
     */
    static Result run(CausalLm lm, int decodeSteps, Steps steps) {
        int n = PROMPTS.length;
        KvCache cache = cache(lm);
        List<float[]> logits = new ArrayList<>();
        List<int[]> stepTokens = new ArrayList<>();
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
            List<Integer> sampling = new ArrayList<>();   // the sequences that sample, in row order
            long[] rows = new long[0];
            int total = 0;
            for (int i = 0; i < n; i++) {
                int len = step == 0 ? FIRST_CHUNK[i] : seqs.get(i).size() - computed[i];
                works.add(new Work(i, computed[i], len));
                total += len;
                if (computed[i] + len == seqs.get(i).size()) {   // the last token of what is known: sample
                    sampling.add(i);
                    rows = Arrays.copyOf(rows, rows.length + 1);
                    rows[rows.length - 1] = total - 1;
                }
            }
            try (PointerScope scope = new PointerScope()) {
                ForwardBatch b = batch(works, seqs, lm.kernels().decodeAttention(), lm.config().hiddenSize());
                List<Tensor> logitsRows = List.of(allRows(total), Torch.longs(rows, CPU));
                steps.send(b, logitsRows);
                List<Tensor> l = execute(lm, cache, b, logitsRows);
                logits.add(Torch.toFloats(l.get(0)));
                int[] picked = argmaxRows(l.get(1));
                stepTokens.add(picked);
                for (int k = 0; k < picked.length; k++) {
                    seqs.get(sampling.get(k)).add(picked[k]);
                    out.get(sampling.get(k)).add(picked[k]);
                }
                for (Work w : works) computed[w.seq()] += w.len();
            }
        }
        cache.release();
        int[][] tokens = new int[n][];
        for (int i = 0; i < n; i++) tokens[i] = out.get(i).stream().mapToInt(Integer::intValue).toArray();
        return new Result(logits, tokens, stepTokens);
    }

    /**
     * A worker rank: runs the steps that rank 0 sends until it says stop, and gives the same
     * logits and per-step tokens as rank 0 (no tokens per sequence: it does not know the
     * sequences). Skips idle messages.
     */
    static Result follow(CausalLm lm, StepBroadcast from) {
        KvCache cache = cache(lm);
        List<float[]> logits = new ArrayList<>();
        List<int[]> stepTokens = new ArrayList<>();
        while (true) {
            try (PointerScope scope = new PointerScope()) {
                StepBroadcast.Received m = from.receive();
                if (m.kind() == ForwardBatchWire.Kind.STOP) break;
                if (m.kind() == ForwardBatchWire.Kind.IDLE) continue;
                List<Tensor> l = execute(lm, cache, m.step().batch(), m.step().logitsRows());
                logits.add(Torch.toFloats(l.get(0)));
                stepTokens.add(argmaxRows(l.get(1)));
            }
        }
        cache.release();
        return new Result(logits, null, stepTokens);
    }

    /** One step on a rank: the forward, then each logits call in order (each an all-gather every rank joins). */
    static List<Tensor> execute(CausalLm lm, KvCache cache, ForwardBatch batch, List<Tensor> logitsRows) {
        Tensor hidden = lm.forward(batch, cache);                                              // (T, hidden)
        List<Tensor> out = new ArrayList<>();
        for (Tensor rows : logitsRows) out.add(lm.logits(hidden.index_select(0, rows)));       // (rows, vocab) f32
        return out;
    }

    private static KvCache cache(CausalLm lm) {
        return new KvCache(lm.shardConfig(), PROMPTS.length * BLOCKS_PER_SEQ, BLOCK, ScalarType.Float, CPU);
    }

    private static Tensor allRows(int total) {
        long[] all = new long[total];
        for (int i = 0; i < total; i++) all[i] = i;
        return Torch.longs(all, CPU);
    }

    private static int[] argmaxRows(Tensor logits) {
        float[] f = Torch.toFloats(logits);
        int rows = (int) logits.size(0), vocab = (int) logits.size(1);
        int[] out = new int[rows];
        for (int r = 0; r < rows; r++) out[r] = argmax(f, r * vocab, vocab);
        return out;
    }

    /** What one sequence computes in a step: {@code len} tokens from position {@code start}. */
    record Work(int seq, int start, int len) {}

    /** Prompt 2's first positions are given as embeddings (SGLang's input_embeds), in its first chunk. */
    static final int EMBEDS_SEQ = 2, EMBEDDED = 2;

    /** A given embedding: small values, fixed by the position and the dimension. */
    static float embedding(int pos, int dim) {
        return (float) (0.05 * Math.sin(1.7 * pos + 0.31 * dim));
    }

    private static long slot(int seq, int pos) {
        return (long) (seq * BLOCKS_PER_SEQ + pos / BLOCK) * BLOCK + pos % BLOCK;
    }

    static ForwardBatch batch(List<Work> works, List<List<Integer>> seqs, DecodeAttention decode, int hidden) {
        return batch(works, seqs, decode, hidden, false);
    }

    /**
     * The step as the engine's ModelRunner would describe it: single tokens decode, longer runs
     * prefill in one padded group (or, with {@code groupEach}, a group each, as ModelRunner splits
     * chunks of unlike sizes). With {@code hidden} > 0, {@link #EMBEDDED} positions of prompt
     * {@link #EMBEDS_SEQ} come as embeddings when computed.
     */
    static ForwardBatch batch(List<Work> works, List<List<Integer>> seqs, DecodeAttention decode, int hidden, boolean groupEach) {
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
        List<ForwardBatch.PrefillGroup> prefills = new ArrayList<>();
        if (groupEach) for (int i = 0; i < chunks.size(); i++) prefills.add(prefillGroup(List.of(chunks.get(i)), List.of(chunkRows.get(i))));
        else if (!chunks.isEmpty()) prefills.add(prefillGroup(chunks, chunkRows));
        return new ForwardBatch(Torch.longs(ids, CPU), Torch.longs(pos, CPU), Torch.longs(slots, CPU), dec, prefills,
                hidden > 0 ? embeds(works, hidden) : null);
    }

    /** The rows of the step whose input is a given embedding, with their values; null if none (as ModelRunner's). */
    private static ForwardBatch.Embeds embeds(List<Work> works, int hidden) {
        List<Long> rows = new ArrayList<>();
        List<Integer> positions = new ArrayList<>();
        int row = 0;
        for (Work w : works) {
            for (int p = w.start(); p < w.start() + w.len(); p++, row++)
                if (w.seq() == EMBEDS_SEQ && p < EMBEDDED) {
                    rows.add((long) row);
                    positions.add(p);
                }
        }
        if (rows.isEmpty()) return null;
        float[] values = new float[rows.size() * hidden];
        for (int e = 0; e < rows.size(); e++) for (int d = 0; d < hidden; d++) values[e * hidden + d] = embedding(positions.get(e), d);
        return new ForwardBatch.Embeds(Torch.longs(rows.stream().mapToLong(Long::longValue).toArray(), CPU),
                Torch.floats(values, CPU).view(rows.size(), hidden));                      // (E, hidden)
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
