package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.KvCache;
import dev.rollout.model.ModelConfig;
import java.util.List;
import java.util.HashSet;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The engine: schedule a step, run it, apply what came out. Single-threaded by design; the
 * {@link EngineLoop} is the only caller in the server, and tests drive it directly.
 */
public final class LlmEngine {
    private final CausalLm model;
    private final EngineConfig config;
    private final BlockManager blocks;
    private final Scheduler scheduler;
    private final ModelRunner runner;
    private final TokenDecoder decoder;
    private final Set<Integer> eos;
    private final int maxModelLen;
    private final EngineObserver observer;
    private volatile String weightVersion = "default";

    public LlmEngine(CausalLm model, EngineConfig config, TokenDecoder decoder, EngineObserver observer) {
        this.model = model;
        this.config = config;
        this.decoder = decoder;
        this.observer = observer == null ? EngineObserver.NONE : observer;
        ModelConfig mc = model.config();
        this.eos = new HashSet<>(mc.eosTokenIds());
        this.maxModelLen = config.maxModelLen() > 0 ? Math.min(config.maxModelLen(), mc.maxPositionEmbeddings())
                : mc.maxPositionEmbeddings();
        this.blocks = new BlockManager(config.numKvBlocks(), config.blockSize());
        this.scheduler = new Scheduler(blocks, config.maxNumSeqs(), config.maxNumBatchedTokens());
        KvCache cache = new KvCache(mc, config.numKvBlocks(), config.blockSize(), model.dtype(), model.device());
        this.runner = new ModelRunner(model, cache, new Sampler(model.device(), mc.eosTokenIds()));
    }

    public ModelConfig modelConfig() {
        return model.config();
    }

    public EngineConfig config() {
        return config;
    }

    public int maxModelLen() {
        return maxModelLen;
    }

    public TokenDecoder decoder() {
        return decoder;
    }

    public String weightVersion() {
        return weightVersion;
    }

    public void add(Sequence seq) {
        scheduler.add(seq);
    }

    public boolean hasWork() {
        return scheduler.hasWork();
    }

    /** Runs one step; returns the number of sequences that took part. */
    public int step() {
        List<ScheduledSequence> batch = scheduler.schedule();
        if (batch.isEmpty()) return 0;
        long t0 = System.nanoTime();
        List<ModelRunner.Output> outputs = runner.run(batch);
        scheduler.markComputed(batch);
        long now = System.nanoTime();
        int tokens = 0;
        for (int i = 0; i < batch.size(); i++) {
            tokens += batch.get(i).numTokens();
            apply(batch.get(i), outputs.get(i), now);
        }
        observer.onStep(batch.size(), tokens, (now - t0) / 1e9);
        return batch.size();
    }

    private void apply(ScheduledSequence s, ModelRunner.Output out, long now) {
        Sequence seq = s.seq();
        if (seq.logprobs.wantsInput() && seq.logprobs.startLen() == 0 && seq.inputLogprobs.isEmpty())
            seq.inputLogprobs.add(TokenLogprob.unscored(seq.tokens.get(0)));  // nothing predicts the first token
        seq.inputLogprobs.addAll(out.inputScores());
        seq.inputScoredUpTo += out.inputScores().size();
        if (!s.sample()) return;
        if (seq.params.maxNewTokens() == 0) {  // scoring only
            finish(seq, FinishReason.length(0));
            return;
        }
        int token = out.token();
        seq.tokens.add(token);
        if (out.logprob() != null) seq.outputLogprobs.add(out.logprob());
        if (seq.firstTokenNanos == 0) {
            seq.firstTokenNanos = now;
        } else if (seq.logMetrics) {
            observer.onInterTokenLatency((now - seq.lastTokenNanos) / 1e9);
        }
        seq.lastTokenNanos = now;
        String delta = seq.detokenizer == null ? "" : seq.detokenizer.add(token);
        FinishReason reason = finishReason(seq, token, delta);
        if (reason != null) finish(seq, reason);
        else if (seq.stream) seq.listener.onOutput(seq.snapshot(weightVersion));
    }

    private FinishReason finishReason(Sequence seq, int token, String delta) {
        SamplingParams p = seq.params;
        int generated = seq.numOutputTokens();
        if (generated >= p.minNewTokens()) {
            if (!p.ignoreEos() && eos.contains(token)) return FinishReason.stopToken(token);
            if (p.stopTokenIds().contains(token)) return FinishReason.stopToken(token);
            if (!p.stop().isEmpty() && !delta.isEmpty()) {
                String text = seq.detokenizer.text();
                for (String stop : p.stop()) {
                    int from = Math.max(0, text.length() - delta.length() - stop.length() + 1);
                    int at = text.indexOf(stop, from);
                    if (at >= 0) {
                        seq.detokenizer.truncate(p.noStopTrim() ? at + stop.length() : at);
                        return FinishReason.stopString(stop);
                    }
                }
            }
        }
        if (generated >= p.maxNewTokens()) return FinishReason.length(p.maxNewTokens());
        if (seq.numTokens() >= maxModelLen) return FinishReason.length(generated);
        return null;
    }

    private void finish(Sequence seq, FinishReason reason) {
        scheduler.finish(seq);
        seq.finishReason = reason;
        seq.finishedNanos = System.nanoTime();
        if (seq.detokenizer != null && reason.type() != FinishReason.Type.STOP) seq.detokenizer.finish();
        SequenceOutput output = seq.snapshot(weightVersion);
        if (seq.logMetrics) observer.onFinished(output);
        seq.listener.onOutput(output);
    }

    /** Aborts the running and waiting sequences whose rid passes {@code test}, returning partial output. */
    public int abort(Predicate<String> test, String message) {
        List<Sequence> hit = scheduler.find(test);
        for (Sequence s : hit) finish(s, FinishReason.abort(message));
        return hit.size();
    }

    /** Drops the prefix cache; refused (false) while any sequence runs or waits. */
    public boolean flushCache() {
        if (scheduler.hasWork()) return false;
        blocks.resetPrefixCache(0);
        return true;
    }

    public EngineStats stats() {
        return new EngineStats(scheduler.numRunning(), scheduler.numWaiting(), blocks.numUsedBlocks(), blocks.numBlocks(),
                blocks.blockSize(), blocks.numCachedBlocks(), scheduler.numPreemptions());
    }

    /** A read-only view of the engine's occupancy. */
    public record EngineStats(int numRunning, int numWaiting, int usedBlocks, int totalBlocks, int blockSize,
                              int cachedBlocks, long numPreemptions) {
        public double tokenUsage() {
            return totalBlocks == 0 ? 0 : (double) usedBlocks / totalBlocks;
        }
    }

}
