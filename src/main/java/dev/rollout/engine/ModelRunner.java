package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.DecodeGraphs;
import dev.rollout.model.ForwardBatch;
import dev.rollout.model.KvCache;
import dev.rollout.model.PhaseTimer;
import dev.rollout.model.StepBroadcast;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.ToIntFunction;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;

/**
 * Turns a scheduled step into tensors, runs the model over the whole batch at once, and samples.
 * Owns the KV-cache memory; the block manager decides which slots each sequence uses. With the
 * model in tensor-parallel shards it is rank 0's: it sends each step, before running it, to the
 * other ranks, which run the same forward and logits calls on theirs ({@link StepBroadcast}).
 */
final class ModelRunner {
    private final CausalLm model;
    private KvCache cache;          // null while the KV memory is released
    private final DecodeGraphs graphs;    // null unless the model's kernels replay decode steps as CUDA graphs
    private final Sampler sampler;
    private final Device device;
    private final int blockSize;
    private final StepBroadcast ranks;   // sends nothing at one rank

    /** @param maxBatch the most sequences a step runs: the largest CUDA-graph batch worth capturing */
    ModelRunner(CausalLm model, KvCache cache, Sampler sampler, int maxBatch) {
        this.model = model;
        this.cache = cache;
        this.sampler = sampler;
        this.device = model.device();
        this.blockSize = cache.blockSize();
        this.ranks = new StepBroadcast(model.tpGroup(), device);
        // the graphs' shapes must not depend on the context length: Kernels allows them only with the paged kernel
        this.graphs = model.kernels().cudaGraphs() ? new DecodeGraphs(model, maxBatch) : null;
    }

    KvCache cache() {
        return cache;
    }

    /** The other ranks' channel: rank 0's announcement, keep-alive and stop go through it too. */
    StepBroadcast ranks() {
        return ranks;
    }

    void replaceCache(KvCache cache) {
        closeGraphs();  // they write to the old cache's addresses
        this.cache = cache;
    }

    /**
     * What a step produced for one scheduled sequence.
     *
     * @param token        the sampled token, or -1 if the step did not reach the end of its tokens
     * @param logprob      the sampled token's logprob details, or null if not asked for
     * @param inputScores  newly scored prompt positions, in order
     */
    record Output(int token, TokenLogprob logprob, List<TokenLogprob> inputScores) {}

    List<Output> run(List<ScheduledSequence> batch) {
        if (model.tpGroup().size() == 1) return runStep(batch);
        // the step went to the workers first: a failure here part way leaves them in a collective that never completes
        return ranks.inStep("a step", () -> runStep(batch));
    }

    private List<Output> runStep(List<ScheduledSequence> batch) {
        try (PointerScope scope = new PointerScope()) {
            // Rows that need logits: the last token of each sampling sequence, then the prompt
            // positions to be scored (position p predicts token p + 1).
            List<Long> rows = new ArrayList<>();
            List<Sequence> sampling = new ArrayList<>();
            List<Long> scoreRows = new ArrayList<>();
            List<Integer> scoreTargets = new ArrayList<>();
            List<Sequence> scoreOwners = new ArrayList<>();
            int[] scoreCount = new int[batch.size()];
            int offset = 0;
            boolean anyEmbeds = false;
            for (int i = 0; i < batch.size(); i++) {
                ScheduledSequence s = batch.get(i);
                Sequence seq = s.seq();
                anyEmbeds |= embedsInput(s);
                if (s.sample() && seq.params.maxNewTokens() > 0) {
                    rows.add((long) offset + s.numTokens() - 1);
                    sampling.add(seq);
                }
                for (int p = s.start(); p < s.start() + s.numTokens(); p++) {
                    int target = p + 1;
                    if (target < seq.promptLen && target >= seq.inputScoredUpTo) {
                        scoreRows.add((long) offset + p - s.start());
                        scoreTargets.add(seq.tokens.get(target));
                        scoreOwners.add(seq);
                        scoreCount[i]++;
                    }
                }
                offset += s.numTokens();
            }
            int numSampling = rows.size();
            // a step where every sequence decodes and samples one token may replay a CUDA graph
            // (a one-position embeddings prompt looks like a decode, but its input is no token)
            boolean decodeOnly = offset == batch.size() && numSampling == batch.size() && scoreRows.isEmpty() && !anyEmbeds;
            PhaseTimer phases = model.phaseTimer();  // benchmarks' profile of steps; off otherwise
            // a replayed step's graph is one phase (DecodeGraphs begins it at the replay; a step that captures is not timed)
            Tensor logits = decodeOnly && graphs != null ? graphs.decode(decodeStep(batch), cache) : null;  // (B, V) bf16 or f32
            if (logits != null) phases.mark("graph");
            Tensor hidden = null;
            List<Tensor> scoreSlices = List.of();
            if (logits == null) {
                if (numSampling > 0 || !scoreRows.isEmpty()) phases.begin();
                // every logits call of the step, in the order they are made: each is an all-gather that every rank joins
                Tensor sampleRows = numSampling > 0 ? Torch.longs(unbox(rows), device) : null;   // (B) int64
                scoreSlices = slices(scoreRows);
                List<Tensor> logitsRows = new ArrayList<>(scoreSlices.size() + 1);
                if (sampleRows != null) logitsRows.add(sampleRows);
                logitsRows.addAll(scoreSlices);
                ForwardBatch step = prepare(batch);
                ranks.send(step, logitsRows);
                hidden = model.forward(step, cache);  // (T, hidden); for prompt chunks alone, their K/V is the product
                if (sampleRows != null) logits = model.samplingLogits(hidden.index_select(0, sampleRows));  // (B, V) bf16 or f32
                if (numSampling > 0 || !scoreRows.isEmpty()) phases.mark("lm_head");
            }
            Sampler.Result sampled = null;
            if (numSampling > 0) {
                sampled = sampler.sample(logits, sampling);
                phases.mark("sample");
            }
            TokenLogprob[] scores = scoreRows.isEmpty() ? new TokenLogprob[0] : score(hidden, scoreSlices, scoreTargets, scoreOwners);

            phases.endStep(decodeOnly);
            List<Output> out = new ArrayList<>(batch.size());
            int si = 0, sc = 0;
            for (int i = 0; i < batch.size(); i++) {
                ScheduledSequence s = batch.get(i);
                List<TokenLogprob> inputScores = new ArrayList<>(scoreCount[i]);
                for (int j = 0; j < scoreCount[i]; j++) inputScores.add(scores[sc++]);
                if (s.sample() && s.seq().params.maxNewTokens() > 0) {
                    out.add(new Output(sampled.tokens()[si], sampled.logprobs()[si], inputScores));
                    si++;
                } else {
                    out.add(new Output(-1, null, inputScores));
                }
            }
            return out;
        }
    }

    /** Prompt positions scored per slice: their logits are rows x vocabulary floats (1.8 GB for 3,000 positions of Qwen's vocabulary). */
    static final int SCORE_SLICE = 256;

    /** The rows to score, a slice ({@link #SCORE_SLICE}) per tensor: (S) int64 each. */
    private List<Tensor> slices(List<Long> rows) {
        List<Tensor> out = new ArrayList<>();
        for (int from = 0; from < rows.size(); from += SCORE_SLICE)
            out.add(Torch.longs(unbox(rows.subList(from, Math.min(rows.size(), from + SCORE_SLICE))), device));
        return out;
    }

    /**
     * Scores prompt positions a slice at a time, so that a long prompt's logits never exist at
     * once: each slice's logits and log-softmax are freed before the next is made.
     *
     * @param hidden (T, hidden) the step's final hidden states; each slice's rows index into it
     */
    private TokenLogprob[] score(Tensor hidden, List<Tensor> slices, List<Integer> targets, List<Sequence> owners) {
        TokenLogprob[] out = new TokenLogprob[targets.size()];
        for (int i = 0; i < slices.size(); i++) {
            int from = i * SCORE_SLICE, to = Math.min(targets.size(), from + SCORE_SLICE);
            try (PointerScope slice = new PointerScope()) {
                Tensor logits = model.logits(hidden.index_select(0, slices.get(i)));  // (S, V) f32
                int[] t = targets.subList(from, to).stream().mapToInt(Integer::intValue).toArray();
                System.arraycopy(sampler.score(logits, t, owners.subList(from, to)), 0, out, from, to - from);
            }
        }
        return out;
    }

    /** Decoding sequences (one token each) as host arrays: what DecodeGraphs takes, and the block tables of paged attention. */
    private DecodeGraphs.Step decodeStep(List<ScheduledSequence> batch) {
        int b = batch.size(), maxContext = 0;
        for (ScheduledSequence s : batch) maxContext = Math.max(maxContext, s.start() + 1);
        int maxBlocks = (maxContext + blockSize - 1) / blockSize;
        long[] ids = new long[b], pos = new long[b], slots = new long[b], table = new long[b * maxBlocks], lens = new long[b];
        for (int i = 0; i < b; i++) {
            ScheduledSequence s = batch.get(i);
            Sequence seq = s.seq();
            int p = s.start();
            ids[i] = seq.tokens.get(p);
            pos[i] = p;
            slots[i] = slot(seq, p);
            lens[i] = p + 1;
            for (int k = 0; k * blockSize < p + 1; k++) table[i * maxBlocks + k] = seq.blockTable.get(k);
        }
        return new DecodeGraphs.Step(ids, pos, slots, table, maxBlocks, lens);
    }

    /** Captures the decode graphs of every batch bucket for contexts of up to {@code contextTokens}; how many (0 without graphs or a cache). */
    int captureGraphs(int contextTokens) {
        return graphs == null || cache == null ? 0 : graphs.captureAll(cache, contextTokens);
    }

    /** Frees the captured graphs; they are captured again on demand. Before weights or KV move. */
    void closeGraphs() {
        if (graphs != null) graphs.close();
    }

    DecodeGraphs graphs() {
        return graphs;
    }

    private ForwardBatch prepare(List<ScheduledSequence> batch) {
        int total = 0;
        for (ScheduledSequence s : batch) total += s.numTokens();
        long[] ids = new long[total], pos = new long[total], slots = new long[total];
        List<Long> decodeIndex = new ArrayList<>();
        List<ScheduledSequence> decodes = new ArrayList<>();
        List<Chunk> chunks = new ArrayList<>();
        int row = 0;
        int maxContext = 0;
        for (ScheduledSequence s : batch) {
            Sequence seq = s.seq();
            int start = row;
            for (int p = s.start(); p < s.start() + s.numTokens(); p++, row++) {
                ids[row] = seq.tokens.get(p);
                pos[row] = p;
                slots[row] = slot(seq, p);
            }
            int context = s.start() + s.numTokens();
            if (s.numTokens() == 1) {
                decodeIndex.add((long) start);
                decodes.add(s);
                maxContext = Math.max(maxContext, context);
            } else {
                chunks.add(new Chunk(s, start));
            }
        }
        ForwardBatch.DecodeGroup decode = null;
        if (!decodes.isEmpty()) {
            decode = model.kernels().decodeAttention().paged() ? blockTables(decodeIndex, decodes)
                    : gatheredSlots(decodeIndex, decodes, maxContext);
        }
        List<ForwardBatch.PrefillGroup> prefills = new ArrayList<>();
        for (List<Chunk> group : groupBySize(chunks)) prefills.add(prefillGroup(group));
        return new ForwardBatch(Torch.longs(ids, device), Torch.longs(pos, device), Torch.longs(slots, device), decode, prefills,
                embeds(batch));
    }

    /** Whether this step computes prompt positions that were given as embeddings. */
    private static boolean embedsInput(ScheduledSequence s) {
        return s.seq().promptEmbeds != null && s.start() < s.seq().promptLen;
    }

    /** The step's rows whose input is a given embedding, with those embeddings; null if none. */
    private ForwardBatch.Embeds embeds(List<ScheduledSequence> batch) {
        int count = 0, hidden = 0;
        for (ScheduledSequence s : batch)
            if (embedsInput(s)) {
                count += Math.min(s.numTokens(), s.seq().promptLen - s.start());
                hidden = s.seq().promptEmbeds.hidden();
            }
        if (count == 0) return null;
        long[] rows = new long[count];
        float[] values = new float[count * hidden];
        int row = 0, e = 0;
        for (ScheduledSequence s : batch) {
            if (embedsInput(s)) {
                int n = Math.min(s.numTokens(), s.seq().promptLen - s.start());
                for (int j = 0; j < n; j++) rows[e + j] = row + j;
                System.arraycopy(s.seq().promptEmbeds.values(), s.start() * hidden, values, e * hidden, n * hidden);
                e += n;
            }
            row += s.numTokens();
        }
        Tensor v = Torch.floats(values, device).view(count, hidden);                        // (E, hidden)
        return new ForwardBatch.Embeds(Torch.longs(rows, device), v);
    }

    /** Query x key pairs of padding that are never worth a separate attention call. */
    private static final long SMALL_PADDING = 1 << 16;

    /** A prompt chunk of a step: the sequence's scheduled tokens and their first row in the step. */
    private record Chunk(ScheduledSequence s, int row) {
        int queryLen() {
            return s.numTokens();
        }

        int context() {
            return s.start() + s.numTokens();
        }
    }

    /**
     * Groups chunks so that padding each group to its longest chunk and context adds at most a
     * quarter to its attention work (or a negligible amount): one group for equal prompts, as in
     * GRPO; more when a long prompt meets short ones. Each group costs one attention call.
     */
    static <C> List<List<C>> groupBy(List<C> chunks, ToIntFunction<C> queryLen,
                                     ToIntFunction<C> context) {
        List<C> sorted = new ArrayList<>(chunks);
        sorted.sort(Comparator.comparingInt(context).reversed());
        List<List<C>> groups = new ArrayList<>();
        List<C> cur = new ArrayList<>();
        long actual = 0;
        int mq = 0, mc = 0;
        for (C c : sorted) {
            int q = queryLen.applyAsInt(c), k = context.applyAsInt(c);
            long padded = (long) (cur.size() + 1) * Math.max(mq, q) * Math.max(mc, k);
            long work = actual + (long) q * k;
            if (!cur.isEmpty() && 4 * padded > 5 * work && padded - work > SMALL_PADDING) {
                groups.add(cur);
                cur = new ArrayList<>();
                actual = 0;
                mq = mc = 0;
            }
            cur.add(c);
            actual += (long) q * k;
            mq = Math.max(mq, q);
            mc = Math.max(mc, k);
        }
        if (!cur.isEmpty()) groups.add(cur);
        return groups;
    }

    private static List<List<Chunk>> groupBySize(List<Chunk> chunks) {
        return groupBy(chunks, Chunk::queryLen, Chunk::context);
    }

    private ForwardBatch.PrefillGroup prefillGroup(List<Chunk> group) {
        int p = group.size(), mq = 0, mc = 0, real = 0;
        for (Chunk c : group) {
            mq = Math.max(mq, c.queryLen());
            mc = Math.max(mc, c.context());
            real += c.queryLen();
        }
        long[] rows = new long[p * mq], qpos = new long[p * mq], ctx = new long[p * mc];
        long[] valid = new long[real], targets = new long[real];
        int r = 0;
        for (int i = 0; i < p; i++) {
            Chunk c = group.get(i);
            Sequence seq = c.s().seq();
            int start = c.s().start();
            for (int j = 0; j < mq; j++) {
                boolean isReal = j < c.queryLen();
                rows[i * mq + j] = c.row() + (isReal ? j : 0);       // padding repeats the first row
                qpos[i * mq + j] = isReal ? start + j : 0;           // and sees key 0 only
                if (isReal) {
                    valid[r] = (long) i * mq + j;
                    targets[r++] = c.row() + j;
                }
            }
            long first = slot(seq, 0);
            for (int k = 0; k < mc; k++) ctx[i * mc + k] = k < c.context() ? slot(seq, k) : first;
        }
        return new ForwardBatch.PrefillGroup(p, mq, mc, Torch.longs(rows, device), Torch.longs(qpos, p, mq, device),
                Torch.longs(ctx, device), Torch.longs(valid, device), Torch.longs(targets, device));
    }

    /** The decoding sequences' context as padded slots and a mask, for {@link dev.rollout.model.DecodeAttention#GATHER}. */
    private ForwardBatch.DecodeGroup gatheredSlots(List<Long> decodeIndex, List<ScheduledSequence> decodes, int maxContext) {
        int b = decodes.size();
        long[] ctxSlots = new long[b * maxContext];
        boolean[] mask = new boolean[b * maxContext];
        for (int i = 0; i < b; i++) {
            ScheduledSequence s = decodes.get(i);
            int context = s.start() + 1;
            for (int p = 0; p < context; p++) {
                ctxSlots[i * maxContext + p] = slot(s.seq(), p);
                mask[i * maxContext + p] = true;
            }
        }
        return new ForwardBatch.DecodeGroup(Torch.longs(unbox(decodeIndex), device), Torch.longs(ctxSlots, device),
                b, maxContext, Torch.bools(mask, device, b, 1, 1, maxContext), null, null, 0);
    }

    /** The decoding sequences' context as block tables and lengths, for paged attention. */
    private ForwardBatch.DecodeGroup blockTables(List<Long> decodeIndex, List<ScheduledSequence> decodes) {
        DecodeGraphs.Step step = decodeStep(decodes);
        int b = decodes.size();
        Tensor counters = model.kernels().decodeAttention().splitCounters(b, (int) cache.keys(0).size(1), device);
        return new ForwardBatch.DecodeGroup(Torch.longs(unbox(decodeIndex), device), null, b, step.maxBlocks() * blockSize, null,
                Torch.longs(step.blockTable(), b, step.maxBlocks(), device), Torch.longs(step.seqLens(), device), step.maxBlocks(),
                counters);
    }

    /** Where position {@code position} of {@code seq} lies in the cache. */
    long slot(Sequence seq, int position) {
        return (long) seq.blockTable.get(position / blockSize) * blockSize + position % blockSize;
    }

    private static long[] unbox(List<Long> xs) {
        long[] out = new long[xs.size()];
        for (int i = 0; i < out.length; i++) out[i] = xs.get(i);
        return out;
    }
}
