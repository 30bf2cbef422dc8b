package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.ForwardBatch;
import dev.rollout.model.KvCache;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.bytedeco.pytorch.global.torch;

/**
 * Turns a scheduled step into tensors, runs the model over the whole batch at once, and samples.
 * Owns the KV-cache memory; the block manager decides which slots each sequence uses.
 */
final class ModelRunner {
    private final CausalLm model;
    private KvCache cache;          // null while the KV memory is released
    private final Sampler sampler;
    private final Device device;
    private final int blockSize;

    ModelRunner(CausalLm model, KvCache cache, Sampler sampler) {
        this.model = model;
        this.cache = cache;
        this.sampler = sampler;
        this.device = model.device();
        this.blockSize = cache.blockSize();
    }

    KvCache cache() {
        return cache;
    }

    void replaceCache(KvCache cache) {
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
        try (PointerScope scope = new PointerScope()) {
            ForwardBatch fb = prepare(batch);
            Tensor hidden = model.forward(fb, cache);                                          // (T, hidden)

            // Rows that need logits: the last token of each sampling sequence, then the prompt
            // positions to be scored (position p predicts token p + 1).
            List<Long> rows = new ArrayList<>();
            List<Sequence> sampling = new ArrayList<>();
            List<Long> scoreRows = new ArrayList<>();
            List<Integer> scoreTargets = new ArrayList<>();
            List<Sequence> scoreOwners = new ArrayList<>();
            int[] scoreCount = new int[batch.size()];
            int offset = 0;
            for (int i = 0; i < batch.size(); i++) {
                ScheduledSequence s = batch.get(i);
                Sequence seq = s.seq();
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
            rows.addAll(scoreRows);
            Sampler.Result sampled = null;
            TokenLogprob[] scores = new TokenLogprob[0];
            if (!rows.isEmpty()) {
                Tensor logits = model.logits(hidden.index_select(0, Torch.longs(unbox(rows), device))); // (R, V) f32
                if (numSampling > 0) sampled = sampler.sample(logits.narrow(0, 0, numSampling), sampling);
                if (!scoreRows.isEmpty()) {
                    int[] targets = scoreTargets.stream().mapToInt(Integer::intValue).toArray();
                    scores = sampler.score(logits.narrow(0, numSampling, scoreRows.size()), targets, scoreOwners);
                }
            }

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

    private ForwardBatch prepare(List<ScheduledSequence> batch) {
        int total = 0;
        for (ScheduledSequence s : batch) total += s.numTokens();
        long[] ids = new long[total], pos = new long[total], slots = new long[total];
        List<Long> decodeIndex = new ArrayList<>();
        List<ScheduledSequence> decodes = new ArrayList<>();
        List<ForwardBatch.PrefillChunk> prefills = new ArrayList<>();
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
                long[] ctxSlots = new long[context];
                for (int p = 0; p < context; p++) ctxSlots[p] = slot(seq, p);
                // query i sits at position start + i and sees keys 0 .. start + i
                Tensor q = torch.arange(new Scalar(s.start()), new Scalar(context),
                        Torch.options(ScalarType.Long, device)).view(s.numTokens(), 1);
                Tensor k = torch.arange(new Scalar(context),
                        Torch.options(ScalarType.Long, device)).view(1, context);
                prefills.add(new ForwardBatch.PrefillChunk(start, s.numTokens(), context,
                        Torch.longs(ctxSlots, device), torch.le(k, q)));
            }
        }
        ForwardBatch.DecodeGroup decode = null;
        if (!decodes.isEmpty()) {
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
            decode = new ForwardBatch.DecodeGroup(Torch.longs(unbox(decodeIndex), device), Torch.longs(ctxSlots, device),
                    b, maxContext, Torch.bools(mask, device, b, 1, 1, maxContext));
        }
        return new ForwardBatch(Torch.longs(ids, device), Torch.longs(pos, device), Torch.longs(slots, device), decode, prefills);
    }

    private long slot(Sequence seq, int position) {
        return (long) seq.blockTable.get(position / blockSize) * blockSize + position % blockSize;
    }

    private static long[] unbox(List<Long> xs) {
        long[] out = new long[xs.size()];
        for (int i = 0; i < out.length; i++) out[i] = xs.get(i);
        return out;
    }
}
