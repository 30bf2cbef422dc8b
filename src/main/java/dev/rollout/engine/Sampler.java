package dev.rollout.engine;

import dev.rollout.model.Kernels;
import dev.rollout.model.NativeOps;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.StringViewOptional;
import org.bytedeco.pytorch.T_TensorTensor_T;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.bytedeco.pytorch.global.torch;

/**
 * Picks the next token of every sampling row in one batched pass over the logits and reports
 * log-probabilities in SGLang's convention: log-softmax of the penalised and biased logits divided
 * by the temperature (raw log-softmax for greedy rows), before top-k/top-p/min-p filtering.
 * Penalties, {@code logit_bias} and bans are written into the logits first, so every path that
 * picks a token (greedy argmax, libtorch's draw, our sampling kernel) sees them.
 *
 * <p>Randomness comes from each sequence's own generator, one uniform draw per token fed into an
 * inverse-CDF lookup on the device, so a seeded request samples the same tokens whatever else
 * shares its batch.
 */
final class Sampler {
    private static final double GREEDY_BELOW = 1e-6;
    /** Top-k/top-p sample among this many most likely tokens when those hold the whole nucleus, not a sorted vocabulary. */
    static final int CANDIDATES = 1024;
    private final Device device;
    private final List<Integer> eosTokenIds;
    private final boolean kernel;  // rows without top-k/top-p/min-p go through our sampling kernel

    /** A sampler of libtorch's ops only. */
    Sampler(Device device, List<Integer> eosTokenIds) {
        this(device, eosTokenIds, false);
    }

    /**
     * @param kernel whether plain rows go through our sampling kernel ({@link Kernels#samplingKernel()});
     *               an IllegalArgumentException says why where it cannot run on {@code device}
     */
    Sampler(Device device, List<Integer> eosTokenIds, boolean kernel) {
        if (kernel) Kernels.requireSamplingKernel(device);
        this.device = device;
        this.eosTokenIds = eosTokenIds;
        this.kernel = kernel;
    }

    record Result(int[] tokens, TokenLogprob[] logprobs) {}

    /** Samples one token per row; {@code logits} is (S, V) float32, row i belonging to {@code seqs[i]}. */
    Result sample(Tensor logits, List<Sequence> seqs) {
        int rows = seqs.size();
        long vocab = logits.size(1);
        applyPenaltiesAndBans(logits, seqs, vocab);

        float[] temps = new float[rows];
        float[] topP = new float[rows], minP = new float[rows], u = new float[rows];
        long[] topK = new long[rows];
        boolean[] greedy = new boolean[rows], filtered = new boolean[rows];
        boolean anyRandom = false, anyTopKP = false, anyMinP = false, anyLogprobs = false, anyLogprobDetail = false;
        for (int i = 0; i < rows; i++) {
            SamplingParams p = seqs.get(i).params;
            LogprobOptions lo = seqs.get(i).logprobs;
            greedy[i] = p.greedy();
            temps[i] = greedy[i] ? 1f : (float) Math.max(p.temperature(), GREEDY_BELOW);
            topP[i] = (float) p.topP();
            minP[i] = (float) p.minP();
            topK[i] = Math.min(p.topK(), vocab);
            u[i] = (float) seqs.get(i).rng.nextDouble();
            filtered[i] = !greedy[i] && (topK[i] < vocab || topP[i] < 1f || minP[i] > 0f);
            anyRandom |= !greedy[i];
            anyTopKP |= !greedy[i] && (topK[i] < vocab || topP[i] < 1f);
            anyMinP |= !greedy[i] && minP[i] > 0f;
            anyLogprobs |= lo.returnLogprob();
            anyLogprobDetail |= lo.returnLogprob() && (lo.topLogprobsNum() > 0 || lo.tokenIds() != null);
        }
        boolean anyFiltered = anyTopKP || anyMinP;
        int[] tokens = new int[rows];
        if (kernel) {
            // one kernel for every row (a seeded row draws the same token whatever shares its
            // batch); filtered rows are then redrawn below, and their logprobs come from libtorch
            float[] kernelTemps = new float[rows];
            for (int i = 0; i < rows; i++) kernelTemps[i] = greedy[i] ? 0f : temps[i];
            float[] out = Torch.toFloats(NativeOps.sampleRows(logits, Torch.floats(kernelTemps, device), Torch.floats(u, device)));
            for (int i = 0; i < rows; i++) tokens[i] = (int) out[2 * i];
            if (!anyFiltered && !anyLogprobDetail) {
                TokenLogprob[] lps = new TokenLogprob[rows];
                for (int i = 0; anyLogprobs && i < rows; i++)
                    lps[i] = new TokenLogprob(tokens[i], out[2 * i + 1], new int[0], new float[0], null);
                return new Result(tokens, lps);
            }
        }
        Tensor scaled = logits.div(Torch.floats(temps, device).view(rows, 1));               // (S, V)
        if (!kernel || anyFiltered) {  // libtorch draws: every row, or (with the kernel) the filtered ones
            Tensor chosen = logits.argmax(new LongOptional(1), false);        // (S) greedy
            if (anyRandom) {
                Tensor probs = torch.softmax(scaled, 1);                                             // (S, V)
                if (anyMinP) {
                    Tensor floor = probs.amax(new long[] {1}, true).mul(Torch.floats(minP, device).view(rows, 1));
                    probs = probs.masked_fill(torch.lt(probs, floor), new Scalar(0.0));
                }
                Tensor order = null;
                long width = vocab;
                if (anyTopKP) {
                    T_TensorTensor_T sorted = candidates(probs, greedy, topK, topP, vocab);
                    if (sorted == null) sorted = torch.sort(probs, 1, true);
                    probs = sorted.get0();                                                           // (S, W) descending
                    order = sorted.get1();
                    width = probs.size(1);
                    Tensor rank = torch.arange(new Scalar(0), new Scalar(width), Torch.options(ScalarType.Long, device)).view(1, width);
                    Tensor beyondK = torch.ge(rank, Torch.longs(topK, device).view(rows, 1));
                    // keep the smallest prefix whose mass reaches top_p: drop a token if the mass before it already does
                    Tensor before = probs.cumsum(1).sub(probs);
                    Tensor beyondP = torch.gt(before, Torch.floats(topP, device).view(rows, 1));
                    probs = probs.masked_fill(beyondK.logical_or(beyondP), new Scalar(0.0));
                }
                Tensor cdf = probs.cumsum(1);                                                        // (S, V)
                Tensor target = cdf.narrow(1, width - 1, 1).mul(Torch.floats(u, device).view(rows, 1));
                Tensor pos = torch.searchsorted(cdf, target, false, true, new StringViewOptional(), new TensorOptional())
                        .clamp_max(new Scalar(width - 1));                                           // (S, 1)
                Tensor sampled = (order == null ? pos : order.gather(1, pos)).view(rows);
                chosen = torch.where(Torch.bools(greedy, device, rows), chosen, sampled);
            }
            long[] ids = Torch.toLongs(chosen);
            for (int i = 0; i < rows; i++) if (!kernel || filtered[i]) tokens[i] = (int) ids[i];
        }
        TokenLogprob[] lps = anyLogprobs ? logprobs(torch.log_softmax(scaled, 1), tokens, seqs) : new TokenLogprob[rows];
        return new Result(tokens, lps);
    }

    /**
     * The {@link #CANDIDATES} most likely tokens of every row, in descending order, when they hold
     * every token that top-k/top-p can keep in every sampling row (so sampling among them is exact);
     * else null, and the caller sorts the whole vocabulary. A row with neither top-k nor top-p
     * needs the whole distribution. One small copy to the host checks the top-p rows' mass.
     */
    T_TensorTensor_T candidates(Tensor probs, boolean[] greedy, long[] topK, float[] topP, long vocab) {
        if (vocab <= CANDIDATES) return null;
        boolean anyTopP = false;
        for (int i = 0; i < greedy.length; i++) {
            if (greedy[i]) continue;
            boolean kFits = topK[i] <= CANDIDATES, pLimited = topP[i] < 1f;
            if (!kFits && !pLimited) return null;
            anyTopP |= !kFits;
        }
        T_TensorTensor_T top = torch.topk(probs, CANDIDATES, 1, true, true);                 // (S, C) descending
        if (anyTopP) {
            // exact only if the token that crosses top_p is among the candidates: their mass must exceed it
            float[] mass = Torch.toFloats(top.get0().sum(new long[] {1}, false, new ScalarTypeOptional()));
            for (int i = 0; i < greedy.length; i++)
                if (!greedy[i] && topK[i] > CANDIDATES && !(mass[i] > topP[i] + 1e-5f)) return null;
        }
        return top;
    }

    /** Scores given tokens: row i of {@code logits} (R, V) predicts {@code targets[i]} for {@code owners[i]}. */
    TokenLogprob[] score(Tensor logits, int[] targets, List<Sequence> owners) {
        float[] temps = new float[targets.length];
        for (int i = 0; i < temps.length; i++) {
            SamplingParams p = owners.get(i).params;
            temps[i] = p.greedy() ? 1f : (float) p.temperature();
        }
        Tensor scaled = logits.div(Torch.floats(temps, device).view(targets.length, 1));
        return logprobs(torch.log_softmax(scaled, 1), targets, owners);
    }

    /** Gathers, for each row, the target's logprob, the top-k and the requested ids, in one copy each. */
    private TokenLogprob[] logprobs(Tensor logprobs, int[] targets, List<Sequence> owners) {
        int rows = targets.length;
        long[] t = new long[rows];
        int maxTop = 0, maxIds = 0;
        for (int i = 0; i < rows; i++) {
            t[i] = targets[i];
            LogprobOptions o = owners.get(i).logprobs;
            maxTop = Math.max(maxTop, o.topLogprobsNum());
            if (o.tokenIds() != null) maxIds = Math.max(maxIds, o.tokenIds().length);
        }
        float[] target = Torch.toFloats(logprobs.gather(1, Torch.longs(t, device).view(rows, 1)));
        float[] topVals = null;
        long[] topIdx = null;
        if (maxTop > 0) {
            T_TensorTensor_T top = torch.topk(logprobs, maxTop);
            topVals = Torch.toFloats(top.get0());
            topIdx = Torch.toLongs(top.get1());
        }
        float[] idsVals = null;
        if (maxIds > 0) {
            long[] idx = new long[rows * maxIds];
            for (int i = 0; i < rows; i++) {
                int[] ids = owners.get(i).logprobs.tokenIds();
                for (int j = 0; ids != null && j < ids.length; j++) idx[i * maxIds + j] = ids[j];
            }
            idsVals = Torch.toFloats(logprobs.gather(1, Torch.longs(idx, rows, maxIds, device)));
        }
        TokenLogprob[] out = new TokenLogprob[rows];
        for (int i = 0; i < rows; i++) {
            LogprobOptions o = owners.get(i).logprobs;
            int k = o.topLogprobsNum();
            int[] ti = new int[k];
            float[] tv = new float[k];
            for (int j = 0; j < k; j++) {
                ti[j] = (int) topIdx[i * maxTop + j];
                tv[j] = topVals[i * maxTop + j];
            }
            float[] iv = null;
            if (o.tokenIds() != null) {
                iv = new float[o.tokenIds().length];
                System.arraycopy(idsVals, i * maxIds, iv, 0, iv.length);
            }
            out[i] = new TokenLogprob(targets[i], target[i], ti, tv, iv);
        }
        return out;
    }

    /**
     * Repetition penalty (over prompt and output), frequency and presence penalties (over the
     * output), {@code logit_bias}, and bans on stop tokens before min_new_tokens, written into the
     * rows in place, in SGLang's order (penalties, then the bias). One index_add_ for the biases of
     * every row: a copy of their ids and values to the device, no (S, V) tensor.
     */
    private void applyPenaltiesAndBans(Tensor logits, List<Sequence> seqs, long vocab) {
        int total = 0;
        for (Sequence s : seqs) if (s.params.hasPenalties()) total += s.numTokens();
        long[] idx = new long[total];
        float[] rep = new float[total], sub = new float[total];
        int k = 0;
        for (int row = 0; row < seqs.size(); row++) {
            Sequence s = seqs.get(row);
            if (!s.params.hasPenalties()) continue;
            Map<Integer, Integer> outCounts = new HashMap<>();
            for (int i = s.promptLen; i < s.numTokens(); i++) outCounts.merge(s.tokens.get(i), 1, Integer::sum);
            Map<Integer, Boolean> seen = new HashMap<>();
            // an embeddings prompt's ids are placeholders: only its output can repeat
            for (int i = s.promptEmbeds == null ? 0 : s.promptLen; i < s.numTokens(); i++) {
                int tok = s.tokens.get(i);
                if (seen.put(tok, true) != null) continue;
                int c = outCounts.getOrDefault(tok, 0);
                idx[k] = row * vocab + tok;
                rep[k] = (float) s.params.repetitionPenalty();
                sub[k] = (float) (s.params.frequencyPenalty() * c + (c > 0 ? s.params.presencePenalty() : 0.0));
                k++;
            }
        }
        Tensor flat = logits.view(-1);
        if (k > 0) {
            Tensor at = Torch.longs(Arrays.copyOf(idx, k), device);
            Tensor vals = flat.index_select(0, at);
            Tensor r = Torch.floats(Arrays.copyOf(rep, k), device);
            vals = torch.where(torch.gt(vals, new Scalar(0.0)), vals.div(r), vals.mul(r)).sub(Torch.floats(Arrays.copyOf(sub, k), device));
            flat.index_copy_(0, at, vals);
        }
        int biased = 0;
        for (Sequence s : seqs) biased += s.params.logitBias().size();
        if (biased > 0) {
            long[] at = new long[biased];
            float[] add = new float[biased];
            int j = 0;
            for (int row = 0; row < seqs.size(); row++) {
                LogitBias b = seqs.get(row).params.logitBias();
                for (int i = 0; i < b.size(); i++) {
                    at[j] = row * vocab + b.tokenIds()[i];
                    add[j++] = b.biases()[i];
                }
            }
            flat.index_add_(0, Torch.longs(at, device), Torch.floats(add, device));
        }
        // bans: a stop token may not end the sequence before min_new_tokens
        List<Long> banned = new ArrayList<>();
        for (int row = 0; row < seqs.size(); row++) {
            Sequence s = seqs.get(row);
            if (s.numOutputTokens() >= s.params.minNewTokens()) continue;
            for (int tok : s.params.stopTokenIds()) banned.add(row * vocab + tok);
            if (!s.params.ignoreEos()) for (int tok : eosTokenIds) if (tok < vocab) banned.add(row * vocab + tok);
        }
        if (!banned.isEmpty()) {
            long[] b = banned.stream().mapToLong(Long::longValue).toArray();
            flat.index_fill_(0, Torch.longs(b, device), new Scalar(Double.NEGATIVE_INFINITY));
        }
    }
}
