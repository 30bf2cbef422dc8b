package dev.rollout.engine;

import dev.rollout.constrain.TokenMask;
import dev.rollout.model.Kernels;
import dev.rollout.model.NativeOps;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.stream.IntStream;
import org.bytedeco.pytorch.BoolOptional;
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
 * log-probabilities in the row's {@link LogprobsMode}. The default, SGLang's convention, is the
 * log-softmax of the penalised and biased logits divided by the temperature (raw log-softmax for
 * greedy rows), before top-k/top-p/min-p filtering; the other modes cost work only in the rows
 * that ask for them. Penalties, {@code logit_bias} and bans are written into the logits first, so
 * every path that picks a token (greedy argmax, libtorch's draw, our sampling kernel) sees them.
 *
 * <p>A constrained row (a regex or JSON schema, ADR 0029) has every token its constraint does not
 * allow next at −∞, written after the bans, so it too reaches every way of picking and every
 * logprob mode but the raw ones. Where the sampling kernel's draw is the step's whole answer (every
 * row {@link #plain}), the kernel reads the rows' packed masks itself instead, as −∞, without a
 * boolean mask or a pass over the logits. A step with no constrained row makes no mask and no extra pass.
 *
 * <p>Randomness comes from each sequence's own generator, one uniform draw per token fed into an
 * inverse-CDF lookup on the device, so a seeded request samples the same tokens whatever else
 * shares its batch. In the deterministic arithmetic (ADR 0026) the lookup also runs over the
 * same order whatever else shares the batch: one stable sort of the whole vocabulary per row.
 */
final class Sampler {
    private static final double GREEDY_BELOW = 1e-6;
    /** Top-k/top-p sample among this many most likely tokens when those hold the whole nucleus, not a sorted vocabulary. */
    static final int CANDIDATES = 1024;
    private final Device device;
    private final List<Integer> eosTokenIds;
    private final boolean kernel;  // rows without top-k/top-p/min-p go through our sampling kernel
    private final boolean deterministic;  // sorts and tie orders that depend on the row alone (ADR 0026)
    /** The constrained rows' masks, each copied to the device once (made by the first constrained step). */
    private DeviceMasks masks;

    /** A sampler of libtorch's ops only. */
    Sampler(Device device, List<Integer> eosTokenIds) {
        this(device, eosTokenIds, false, false);
    }

    /**
     * @param kernel whether plain rows go through our sampling kernel ({@link Kernels#samplingKernel()});
     *               an IllegalArgumentException says why where it cannot run on {@code device}
     */
    Sampler(Device device, List<Integer> eosTokenIds, boolean kernel) {
        this(device, eosTokenIds, kernel, false);
    }

    /**
     * @param deterministic {@link Kernels#deterministic()}: every random row is drawn from one stable
     *                      sort of its whole vocabulary, and top logprobs come from a stable sort too,
     *                      so that neither the order of tied tokens nor the choice between the
     *                      {@link #CANDIDATES} shortcut and the full sort depends on the other rows
     */
    Sampler(Device device, List<Integer> eosTokenIds, boolean kernel, boolean deterministic) {
        if (kernel) Kernels.requireSamplingKernel(device);
        this.device = device;
        this.eosTokenIds = eosTokenIds;
        this.kernel = kernel;
        this.deterministic = deterministic;
    }

    record Result(int[] tokens, TokenLogprob[] logprobs) {}

    /**
     * Samples one token per row; {@code logits} is (S, V) float32, or bf16 as the LM head gave them
     * ({@code CausalLm.samplingLogits}), row i belonging to {@code seqs[i]}. bf16 logits go to our
     * kernel as they are when every row is {@link #plain}; else the step works on a float32 copy.
     */
    Result sample(Tensor logits, List<Sequence> seqs) {
        int rows = seqs.size();
        long vocab = logits.size(1);
        // every row plain: the kernel's draw and logprob are the whole answer, and it reads the
        // constrained rows' masks itself; otherwise the masks are written into the logits for every path
        boolean kernelAlone = kernel && seqs.stream().allMatch(s -> plain(s, vocab));
        if (logits.scalar_type().intern() != ScalarType.Float && !kernelAlone)
            logits = logits.to(ScalarType.Float);
        LogprobsMode[] modes = new LogprobsMode[rows];
        for (int i = 0; i < rows; i++) modes[i] = seqs.get(i).logprobs.returnLogprob() ? seqs.get(i).logprobs.mode() : LogprobsMode.SGLANG;
        // the raw modes report the logits as the model gave them: their rows are copied before penalties, bias and bans go in
        long[] rawRows = rowsOf(modes, LogprobsMode::raw);
        Tensor raw = rawRows.length == 0 ? null : logits.index_select(0, Torch.longs(rawRows, device));   // (R, V)
        applyPenaltiesAndBans(logits, seqs, vocab);
        Constrained constrained = Constrained.of(seqs);
        Tensor[] kernelMasks = null;   // (table, (S) int64 row of it or -1) for the kernel
        if (constrained.count() > 0) {
            if (masks == null) masks = new DeviceMasks(device);
            if (kernelAlone) kernelMasks = kernelMasks(constrained, rows, vocab);
            else applyConstraints(logits, constrained, vocab);
        }

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
            // a double just below 1 rounds to 1f, and the inverse-CDF lookup at the full mass lands
            // past the last kept token (about once in 2^25 draws): kept below 1, every other draw unchanged
            u[i] = Math.min((float) seqs.get(i).rng.nextDouble(), Math.nextDown(1f));
            filtered[i] = filters(p, vocab);
            anyRandom |= !greedy[i];
            anyTopKP |= !greedy[i] && (topK[i] < vocab || topP[i] < 1f);
            anyMinP |= !greedy[i] && minP[i] > 0f;
            anyLogprobs |= lo.returnLogprob();
            anyLogprobDetail |= lo.returnLogprob() && (lo.topLogprobsNum() > 0 || lo.tokenIds() != null);
        }
        boolean anyFiltered = anyTopKP || anyMinP;
        boolean sglangOnly = rowsOf(modes, m -> m != LogprobsMode.SGLANG).length == 0;
        int[] tokens = new int[rows];
        if (kernel) {
            // one kernel for every row (a seeded row draws the same token whatever shares its
            // batch); filtered rows are then redrawn below, and their logprobs come from libtorch
            float[] kernelTemps = new float[rows];
            for (int i = 0; i < rows; i++) kernelTemps[i] = greedy[i] ? 0f : temps[i];
            float[] out = Torch.toFloats(NativeOps.sampleRows(logits, Torch.floats(kernelTemps, device), Torch.floats(u, device),
                    kernelMasks == null ? null : kernelMasks[0], kernelMasks == null ? null : kernelMasks[1]));
            for (int i = 0; i < rows; i++) tokens[i] = (int) out[2 * i];
            if (kernelAlone || (!anyFiltered && !anyLogprobDetail && sglangOnly)) {  // the kernel's logprob is SGLang's
                TokenLogprob[] lps = new TokenLogprob[rows];
                for (int i = 0; anyLogprobs && i < rows; i++)
                    lps[i] = new TokenLogprob(tokens[i], out[2 * i + 1], new int[0], new float[0], null);
                return new Result(tokens, lps);
            }
        }
        Tensor scaled = logits.div(Torch.floats(temps, device).view(rows, 1));               // (S, V)
        Filter kept = null;
        if (!kernel || anyFiltered) {  // libtorch draws: every row, or (with the kernel) the filtered ones
            Tensor chosen = logits.argmax(new LongOptional(1), false);        // (S) greedy
            if (anyRandom) {
                // deterministic: every row sorted, so that no row's lookup order turns on whether another has top-k/top-p
                kept = filter(scaled, greedy, topK, topP, minP, anyMinP, anyTopKP || deterministic);
                Tensor probs = kept.probs();
                long width = probs.size(1);
                Tensor cdf = probs.cumsum(1);                                                        // (S, W)
                Tensor target = cdf.narrow(1, width - 1, 1).mul(Torch.floats(u, device).view(rows, 1));
                Tensor pos = torch.searchsorted(cdf, target, false, true, new StringViewOptional(), new TensorOptional())
                        .clamp_max(new Scalar(width - 1));                                           // (S, 1)
                Tensor sampled = (kept.order() == null ? pos : kept.order().gather(1, pos)).view(rows);
                chosen = torch.where(Torch.bools(greedy, device, rows), chosen, sampled);
            }
            long[] ids = Torch.toLongs(chosen);
            for (int i = 0; i < rows; i++) if (!kernel || filtered[i]) tokens[i] = (int) ids[i];
        }
        if (!anyLogprobs) return new Result(tokens, new TokenLogprob[rows]);
        // a processed row with a filter reports what the draw above dropped (kept is set: such a row is random and filtered)
        boolean[] masked = new boolean[rows];
        boolean anyMasked = false;
        for (int i = 0; i < rows; i++) anyMasked |= masked[i] = filtered[i] && modes[i].processed();
        Tensor dropped = anyMasked ? dropped(kept, vocab).logical_and(Torch.bools(masked, device, rows, 1)) : null;   // (S, V)
        return new Result(tokens, logprobs(reported(scaled, modes, rawRows, raw, dropped), tokens, seqs));
    }

    /**
     * Whether a row needs our kernel's draw and its logprob alone: nothing written into its logits
     * but a constraint's mask (no penalty, bias or ban), no filter, and no logprob but SGLang's of
     * the drawn token.
     */
    private static boolean plain(Sequence s, long vocab) {
        SamplingParams p = s.params;
        LogprobOptions lo = s.logprobs;
        // a constraint's −∞ is as exact in bf16 as in float32: its rows stay plain
        return !p.hasPenalties() && p.logitBias().size() == 0 && s.numOutputTokens() >= p.minNewTokens()
                && !filters(p, vocab)
                && (!lo.returnLogprob() || (lo.mode() == LogprobsMode.SGLANG && lo.topLogprobsNum() <= 0 && lo.tokenIds() == null));
    }

    /** Whether min-p, top-k or top-p can drop tokens of a row: a greedy row takes the argmax, unfiltered. */
    private static boolean filters(SamplingParams p, long vocab) {
        return !p.greedy() && (Math.min(p.topK(), vocab) < vocab || (float) p.topP() < 1f || (float) p.minP() > 0f);
    }

    /**
     * What min-p, top-k and top-p leave of the rows' distributions.
     *
     * @param probs     (S, W) what the draw samples from: the probabilities with dropped tokens at 0,
     *                  sorted in descending order where {@code order} is not null, else W = V
     * @param order     (S, W) the token id at each sorted position, or null where nothing was sorted
     * @param belowMinP (S, V) true where min-p dropped the token, or null where no row has min-p
     * @param beyond    (S, W) true at the sorted positions that top-k or top-p dropped, or null
     */
    private record Filter(Tensor probs, Tensor order, Tensor belowMinP, Tensor beyond) {}

    /**
     * Min-p, then (with {@code sort}) top-k and top-p, as the draw applies them. Every row goes
     * through the same ops with its own parameters.
     *
     * @param sort whether to sort for top-k/top-p: the {@link #CANDIDATES} when they hold every token
     *             any random row can keep, else the whole vocabulary; in the deterministic arithmetic
     *             always the whole vocabulary, stably, so tied tokens keep their order
     */
    private Filter filter(Tensor scaled, boolean[] greedy, long[] topK, float[] topP, float[] minP, boolean anyMinP, boolean sort) {
        int rows = greedy.length;
        long vocab = scaled.size(1);
        Tensor probs = torch.softmax(scaled, 1);                                                     // (S, V)
        Tensor belowMinP = null;
        if (anyMinP) {
            Tensor floor = probs.amax(new long[] {1}, true).mul(Torch.floats(minP, device).view(rows, 1));
            belowMinP = torch.lt(probs, floor);                                                      // (S, V)
            probs = probs.masked_fill(belowMinP, new Scalar(0.0));
        }
        if (!sort) return new Filter(probs, null, belowMinP, null);
        T_TensorTensor_T sorted = deterministic ? torch.sort(probs, new BoolOptional(true), 1, true)
                : candidates(probs, greedy, topK, topP, vocab);
        if (sorted == null) sorted = torch.sort(probs, 1, true);
        probs = sorted.get0();                                                                       // (S, W) descending
        long width = probs.size(1);
        Tensor rank = torch.arange(new Scalar(0), new Scalar(width), Torch.options(ScalarType.Long, device)).view(1, width);
        Tensor beyondK = torch.ge(rank, Torch.longs(topK, device).view(rows, 1));
        // keep the smallest prefix whose mass reaches top_p: drop a token if the mass before it already does
        Tensor before = probs.cumsum(1).sub(probs);
        // a row without top-p never drops a token by it: its float cumsum may pass 1 before the tail
        float[] pCut = new float[rows];
        for (int i = 0; i < rows; i++) pCut[i] = topP[i] >= 1f ? Float.POSITIVE_INFINITY : topP[i];
        Tensor beyondP = torch.gt(before, Torch.floats(pCut, device).view(rows, 1));
        Tensor beyond = beyondK.logical_or(beyondP);                                                 // (S, W)
        return new Filter(probs.masked_fill(beyond, new Scalar(0.0)), sorted.get1(), belowMinP, beyond);
    }

    /** (S, V) true where {@code f} dropped a token, in vocabulary order; past the candidates (W < V) every token is. */
    private Tensor dropped(Filter f, long vocab) {
        long rows = f.probs().size(0);
        Tensor d = f.belowMinP() != null ? f.belowMinP() : Torch.zeros(Torch.options(ScalarType.Bool, device), rows, vocab);
        if (f.order() == null) return d;
        Tensor all = f.order().size(1) < vocab ? torch.ones(new long[] {rows, vocab}, Torch.options(ScalarType.Bool, device))
                : Torch.zeros(Torch.options(ScalarType.Bool, device), rows, vocab);
        return d.logical_or(all.scatter(1, f.order(), f.beyond()));
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

    /**
     * Scores given tokens: row i of {@code logits} (R, V) predicts {@code targets[i]} for {@code owners[i]}.
     * A prompt row has the request's temperature and, in a processed mode, its min-p/top-k/top-p
     * mask, but no penalties, bias or bans: those depend on what came before or after it, and
     * prompt rows have never had them. Without them, a decoded row and its re-score are one function
     * of the same logits in every mode.
     */
    TokenLogprob[] score(Tensor logits, int[] targets, List<Sequence> owners) {
        int rows = targets.length;
        long vocab = logits.size(1);
        float[] temps = new float[rows];
        LogprobsMode[] modes = new LogprobsMode[rows];
        List<Integer> masked = new ArrayList<>();
        for (int i = 0; i < rows; i++) {
            SamplingParams p = owners.get(i).params;
            temps[i] = p.greedy() ? 1f : (float) p.temperature();
            modes[i] = owners.get(i).logprobs.mode();
            if (modes[i].processed() && filters(p, vocab)) masked.add(i);
        }
        Tensor scaled = logits.div(Torch.floats(temps, device).view(rows, 1));                      // (R, V)
        long[] rawRows = rowsOf(modes, LogprobsMode::raw);
        Tensor raw = rawRows.length == 0 ? null : logits.index_select(0, Torch.longs(rawRows, device));
        Tensor dropped = masked.isEmpty() ? null : promptMask(scaled, owners, masked);
        return logprobs(reported(scaled, modes, rawRows, raw, dropped), targets, owners);
    }

    /** (R, V) true where the draw's min-p/top-k/top-p would drop a token, in the {@code masked} rows alone. */
    private Tensor promptMask(Tensor scaled, List<Sequence> owners, List<Integer> masked) {
        int n = masked.size();
        long vocab = scaled.size(1);
        long[] at = new long[n], topK = new long[n];
        float[] topP = new float[n], minP = new float[n];
        boolean anyMinP = false, anyTopKP = false;
        for (int j = 0; j < n; j++) {
            SamplingParams p = owners.get(masked.get(j)).params;
            at[j] = masked.get(j);
            topK[j] = Math.min(p.topK(), vocab);
            topP[j] = (float) p.topP();
            minP[j] = (float) p.minP();
            anyMinP |= minP[j] > 0f;
            anyTopKP |= topK[j] < vocab || topP[j] < 1f;
        }
        Tensor rows = Torch.longs(at, device);
        Filter f = filter(scaled.index_select(0, rows), new boolean[n], topK, topP, minP, anyMinP, anyTopKP || deterministic);
        return Torch.zeros(Torch.options(ScalarType.Bool, device), scaled.size(0), vocab).index_copy(0, rows, dropped(f, vocab));
    }

    /**
     * What each row reports, (S, V): SGLang's log-softmax of the scaled logits; in a raw mode's row
     * the raw logits or their log-softmax; in a processed mode's row the scaled logits with what the
     * filters dropped at −∞, or their log-softmax.
     *
     * @param raw     (R, V) the logits of rows {@code rawRows} before penalties, bias and bans, or null
     * @param dropped (S, V) true where a processed row's filter dropped a token, or null where none did
     */
    private Tensor reported(Tensor scaled, LogprobsMode[] modes, long[] rawRows, Tensor raw, Tensor dropped) {
        Tensor out = torch.log_softmax(scaled, 1);                                                   // (S, V)
        if (raw != null) out.index_copy_(0, Torch.longs(rawRows, device), values(raw, modes, rawRows));
        long[] processed = rowsOf(modes, LogprobsMode::processed);
        if (processed.length > 0) {
            Tensor at = Torch.longs(processed, device);
            Tensor v = scaled.index_select(0, at);                                                   // (P, V)
            if (dropped != null) v = v.masked_fill(dropped.index_select(0, at), new Scalar(Double.NEGATIVE_INFINITY));
            out.index_copy_(0, at, values(v, modes, processed));
        }
        return out;
    }

    /** (N, V) logits of rows {@code rows} as their modes report them: as they are, or log-softmaxed. */
    private Tensor values(Tensor v, LogprobsMode[] modes, long[] rows) {
        boolean[] asLogits = new boolean[rows.length];
        int logitRows = 0;
        for (int j = 0; j < rows.length; j++) if (asLogits[j] = modes[(int) rows[j]].logits()) logitRows++;
        if (logitRows == rows.length) return v;
        Tensor logprobs = torch.log_softmax(v, 1);
        return logitRows == 0 ? logprobs : torch.where(Torch.bools(asLogits, device, rows.length, 1), v, logprobs);
    }

    private static long[] rowsOf(LogprobsMode[] modes, Predicate<LogprobsMode> test) {
        return IntStream.range(0, modes.length).filter(i -> test.test(modes[i])).asLongStream().toArray();
    }

    /**
     * Gathers, for each row, the target's value, the top-k and the requested ids, in one copy each.
     *
     * @param logprobs (S, V) what each row reports ({@link #reported}): log-probabilities, or logits in a logits mode
     */
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
            // deterministic: a stable sort, so that of tied values (the -inf of a processed mode's
            // dropped tokens) the same ids come first however many the batch's rows ask for
            T_TensorTensor_T top = deterministic ? torch.sort(logprobs, new BoolOptional(true), 1, true) : torch.topk(logprobs, maxTop);
            topVals = Torch.toFloats(top.get0().narrow(1, 0, maxTop));
            topIdx = Torch.toLongs(top.get1().narrow(1, 0, maxTop));
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
        // bans: a stop token may not end the sequence before min_new_tokens, unless a constraint
        // allows nothing else (its text is complete): the constraint's end wins over the minimum
        List<Long> banned = new ArrayList<>();
        for (int row = 0; row < seqs.size(); row++) {
            Sequence s = seqs.get(row);
            if (s.numOutputTokens() >= s.params.minNewTokens() || (s.constraint != null && s.constraint.mustEnd())) continue;
            for (int tok : s.params.stopTokenIds()) banned.add(row * vocab + tok);
            if (!s.params.ignoreEos()) for (int tok : eosTokenIds) if (tok < vocab) banned.add(row * vocab + tok);
        }
        if (!banned.isEmpty()) {
            long[] b = banned.stream().mapToLong(Long::longValue).toArray();
            flat.index_fill_(0, Torch.longs(b, device), new Scalar(Double.NEGATIVE_INFINITY));
        }
    }

    /**
     * Sets to −∞ every token a constrained row's constraint does not allow next: the rows' masks
     * gathered from their copies on the device ({@link DeviceMasks}: each state's mask is copied
     * there once) and unpacked into a boolean mask.
     * Only the constrained rows are read and written; the others stay bit for bit as they were.
     * A request's {@code stop_token_ids} count as EOS: allowed where the constraint may end.
     * Ids past the constraint's vocabulary (a logits width above the tokenizer's) stay disallowed.
     */
    private void applyConstraints(Tensor logits, Constrained c, long vocab) {
        Tensor disallowed = masks.forbidden(c.allowed(), c.stops(), c.count(), vocab);                     // (C, V) bool
        Scalar minusInf = new Scalar(Double.NEGATIVE_INFINITY);
        if (c.count() == logits.size(0)) {
            logits.masked_fill_(disallowed, minusInf);
        } else {
            Tensor at = Torch.longs(c.rows(), device);
            logits.index_copy_(0, at, logits.index_select(0, at).masked_fill_(disallowed, minusInf));
        }
    }

    /** The constrained rows' masks as the sampling kernel reads them: the table, and each of the step's rows' row of it or -1. */
    private Tensor[] kernelMasks(Constrained c, int rows, long vocab) {
        long[] at = masks.place(c.allowed(), c.stops(), c.count(), vocab);
        long[] perRow = new long[rows];
        Arrays.fill(perRow, -1L);
        for (int j = 0; j < c.count(); j++) perRow[(int) c.rows()[j]] = at[j];
        return new Tensor[] {masks.table(), Torch.longs(perRow, device)};
    }

    /**
     * A step's constrained rows: each one's allowed tokens (its cursor's mask, cached per automaton
     * state), the {@code stop_token_ids} it also allows where its text may end (or null), and its
     * row in the step.
     */
    private record Constrained(TokenMask[] allowed, int[][] stops, long[] rows, int count) {
        static Constrained of(List<Sequence> seqs) {
            int c = 0;
            for (Sequence s : seqs) if (s.constraint != null) c++;
            TokenMask[] allowed = new TokenMask[c];
            int[][] stops = new int[c][];
            long[] rows = new long[c];
            for (int row = 0, j = 0; j < c; row++) {
                Sequence s = seqs.get(row);
                if (s.constraint == null) continue;
                allowed[j] = s.constraint.allowed();   // no walk of the vocabulary after a state's first time
                if (s.constraint.canEnd() && !s.params.stopTokenIds().isEmpty())
                    stops[j] = s.params.stopTokenIds().stream().mapToInt(Integer::intValue).toArray();
                rows[j++] = row;
            }
            return new Constrained(allowed, stops, rows, c);
        }
    }
}
