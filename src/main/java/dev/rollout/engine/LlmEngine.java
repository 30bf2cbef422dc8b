package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.KvCache;
import dev.rollout.model.ModelConfig;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The engine: schedule a step, run it, apply what came out. Single-threaded by design; the
 * {@link EngineLoop} is the only caller in the server, and tests and benchmarks drive it directly.
 * Weights, versions and memory are the loop's {@link WeightControl} and {@link MemoryOccupation}.
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
    /** The metrics' hooks; in a loop, through its output relay (set before the engine thread starts). */
    private EngineObserver observer;
    private final Sessions sessions;
    private String weightVersion = "default";
    private long cacheSalt;
    private boolean paused;
    private boolean held;
    private boolean admissionsBlocked;
    private RequestTimeouts timeouts = RequestTimeouts.NONE;
    private long pauseTimeoutNanos = Long.MAX_VALUE;  // SGLang's pause watchdog; off unless set
    private long pausedAtNanos;
    /** Reused every step by the timeout check, so that it allocates nothing while no request times out. */
    private final List<Sequence> waitedTooLong = new ArrayList<>(), ranTooLong = new ArrayList<>();

    public LlmEngine(CausalLm model, EngineConfig config, TokenDecoder decoder, EngineObserver observer) {
        this.model = model;
        this.config = config;
        this.decoder = decoder;
        this.observer = observer == null ? EngineObserver.NONE : observer;
        ModelConfig mc = model.config();
        this.eos = new HashSet<>(mc.eosTokenIds());
        this.maxModelLen = config.maxModelLen() > 0 ? Math.min(config.maxModelLen(), mc.maxPositionEmbeddings())
                : mc.maxPositionEmbeddings();
        int numKvBlocks = config.numKvBlocks() > 0 ? config.numKvBlocks() : autoKvBlocks(model, config, maxModelLen);
        this.blocks = new BlockManager(numKvBlocks, config.blockSize());
        this.scheduler = new Scheduler(blocks, config.maxNumSeqs(), config.maxNumBatchedTokens());
        this.sessions = new Sessions(blocks, (seq, message) -> finish(seq, FinishReason.abort(message)),
                SessionLimits.defaults((long) numKvBlocks * config.blockSize()));
        // a rank's cache holds its own KV heads (all of them at one rank)
        KvCache cache = new KvCache(model.shardConfig(), numKvBlocks, config.blockSize(), model.dtype(), model.device(),
                config.routedExperts());
        this.runner = new ModelRunner(model, cache, new Sampler(model.device(), mc.eosTokenIds(), model.kernels().samplingKernel(),
                model.kernels().deterministic()), config.maxNumSeqs());
    }

    /**
     * Routes the observer's calls through {@code relay} (the loop's, before its thread starts), which
     * makes a step's calls on its own thread, before the step's snapshots: recording metrics took
     * half of a streaming step's host work on the engine thread.
     */
    void observeThrough(OutputRelay relay) {
        if (observer != EngineObserver.NONE) observer = relay.observing(observer);
    }

    public ModelConfig modelConfig() {
        return model.config();
    }

    public EngineConfig config() {
        return config;
    }

    /**
     * On CUDA, as many blocks as fit in the configured share of the free memory, but no more than
     * twice what every running sequence at full length could use (a small model on a large card
     * would otherwise get millions of blocks it never fills); on a CPU a fixed default.
     */
    private static int autoKvBlocks(CausalLm model, EngineConfig config, int maxModelLen) {
        if (!model.device().is_cuda()) return EngineConfig.CPU_AUTO_KV_BLOCKS;
        long useful = 2L * config.maxNumSeqs() * ((maxModelLen + config.blockSize() - 1) / config.blockSize());
        int fitting = KvCache.blocksFitting(model.shardConfig(), config.blockSize(), model.dtype(), model.device(),
                config.kvMemoryFraction(), config.routedExperts());
        return (int) Math.min(fitting, useful);
    }

    /**
     * Captures the CUDA graphs of decode steps for every batch size this engine runs and contexts
     * of up to {@code contextTokens} (at most {@link #maxModelLen}), before it serves: the captures
     * its first steps would otherwise make. Only while nothing runs or waits (their captures run
     * forwards over the cache); returns how many, 0 otherwise.
     */
    public int captureDecodeGraphs(int contextTokens) {
        if (scheduler.hasWork()) return 0;
        return runner.captureGraphs(Math.min(contextTokens, maxModelLen));
    }

    /** How many CUDA graphs are captured now (0 when graphs are off). */
    public int numCudaGraphs() {
        return runner.graphs() == null ? 0 : runner.graphs().size();
    }

    /** Blocks in the KV cache, as configured or as sized from free device memory. */
    public int numKvBlocks() {
        return blocks.numBlocks();
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
        checkAddable(seq);
        scheduler.add(seq);
    }

    /**
     * Queues a command's sequences, first giving those that continue a session their history;
     * throws, queueing nothing, when a session turn is refused.
     */
    int admit(EngineCommand.Generate g) {
        sessions.bind(g.sequences(), g.sessionTurns(), maxModelLen, System.nanoTime());
        g.sequences().forEach(scheduler::add);
        return g.sequences().size();
    }

    /** Bounds what sessions may hold; set once, before the engine serves. */
    public void limitSessions(SessionLimits limits) {
        sessions.limit(limits);
    }

    /** The engine's sessions (engine thread only). */
    Sessions sessions() {
        return sessions;
    }

    /** Refuses a sequence the model cannot run, before anything of its request is queued. */
    void checkAddable(Sequence seq) {
        int hidden = model.config().hiddenSize();
        if (seq.promptEmbeds != null && seq.promptEmbeds.hidden() != hidden)
            throw new IllegalArgumentException("input_embeds rows have " + seq.promptEmbeds.hidden() + " values; the model's hidden size is " + hidden);
    }

    public boolean hasWork() {
        return scheduler.hasWork();
    }

    /** True when a step would do something: work is queued and nothing holds the engine. */
    public boolean canStep() {
        return scheduler.hasWork() && !paused && !held;
    }

    /**
     * SGLang's pause watchdog ({@code SGLANG_ENGINE_PAUSE_TIMEOUT}): a pause older than this ends
     * by itself ({@link #pauseExpired}); 0 or less turns it off. Set before the engine runs.
     */
    public void setPauseTimeout(double seconds) {
        pauseTimeoutNanos = seconds > 0 ? Math.max(1, (long) (seconds * 1e9)) : Long.MAX_VALUE;
    }

    /** Whether the engine has been paused for longer than the pause timeout. */
    boolean pauseExpired(long nowNanos) {
        return paused && pauseTimeoutNanos != Long.MAX_VALUE && nowNanos - pausedAtNanos > pauseTimeoutNanos;
    }

    /** SGLang's waiting and running timeouts; set before the engine runs (the loop's thread reads them). */
    public void setTimeouts(RequestTimeouts timeouts) {
        this.timeouts = timeouts;
    }

    /** Runs one step; returns the number of sequences that took part. */
    public int step() {
        if (!canStep()) return 0;
        if (timeouts.any()) abortTimedOut(System.nanoTime());
        List<ScheduledSequence> batch = scheduler.schedule(!admissionsBlocked);
        // nothing could run: if session pins fill the cache, they give way (the least recently used session first)
        while (batch.isEmpty() && !admissionsBlocked && sessions.yieldPins()) batch = scheduler.schedule(true);
        if (batch.isEmpty()) return 0;
        long t0 = System.nanoTime();
        List<ModelRunner.Output> outputs = runner.run(batch);
        long now = System.nanoTime();
        scheduler.markComputed(batch);
        collectRoutedExperts(batch);   // before any sequence finishes and gives its blocks back
        int tokens = 0, sampled = 0;
        for (int i = 0; i < batch.size(); i++) {
            tokens += batch.get(i).numTokens();
            if (batch.get(i).sample()) sampled++;
            apply(batch.get(i), outputs.get(i), now);
        }
        observer.onStep(batch.size(), tokens, sampled, (now - t0) / 1e9, (System.nanoTime() - now) / 1e9);
        return batch.size();
    }

    /** Whether this engine keeps each token's routed experts: asked for, and the model has experts. */
    public boolean keepsRoutedExperts() {
        return runner.cache() != null ? runner.cache().routing() != null : config.routedExperts() && model.config().moe() != null;
    }

    /**
     * Copies into each sequence that asked for them the routed experts of its positions computed
     * since it last took them: this step's tokens, and the cached prefix of a sequence just
     * admitted (the cache kept its slots' experts). One gather of every such slot, one copy to the
     * host. A position computed again after a retraction is not taken twice.
     */
    private void collectRoutedExperts(List<ScheduledSequence> batch) {
        KvCache cache = runner.cache();
        if (cache == null || cache.routing() == null) return;
        int width = (int) (cache.routing().size(1) * cache.routing().size(2));   // layers x topK values a position
        List<Sequence> who = new ArrayList<>();
        IntList counts = new IntList();
        List<Long> slots = new ArrayList<>();
        for (ScheduledSequence s : batch) {
            Sequence seq = s.seq();
            if (seq.routedExperts == null) continue;
            int from = seq.routedExperts.size() / width;   // past numComputed after a retraction: nothing new yet
            for (int p = from; p < seq.numComputed; p++) slots.add(runner.slot(seq, p));
            who.add(seq);
            counts.add(Math.max(0, seq.numComputed - from));
        }
        if (slots.isEmpty()) return;
        try (org.bytedeco.javacpp.PointerScope scope = new org.bytedeco.javacpp.PointerScope()) {
            long[] index = slots.stream().mapToLong(Long::longValue).toArray();
            int[] rows = dev.rollout.model.Torch.toInts(cache.routing().index_select(0,                // (n, layers, topK) int32
                    dev.rollout.model.Torch.longs(index, model.device())));
            int at = 0;
            for (int i = 0; i < who.size(); i++)
                for (int j = 0; j < counts.get(i) * width; j++) who.get(i).routedExperts.add(rows[at++]);
        }
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
        seq.noteVersion(weightVersion);
        if (out.logprob() != null) seq.outputLogprobs.add(out.logprob());
        if (seq.firstTokenNanos == 0) {
            seq.firstTokenNanos = now;
        } else if (seq.logMetrics) {
            observer.onInterTokenLatency((now - seq.lastTokenNanos) / 1e9);
        }
        seq.lastTokenNanos = now;
        String delta = seq.detokenizer == null ? "" : seq.detokenizer.add(token);
        FinishReason reason = seq.constraint == null ? null : constraintEnd(seq, token);
        if (reason == null) reason = finishReason(seq, token, delta);
        if (reason != null) finish(seq, reason);
        else if (seq.stream && seq.numOutputTokens() % seq.params.streamInterval() == 0)
            seq.listener.onOutput(seq.snapshot(weightVersion, now));   // the step's clock: no clock read per snapshot
    }

    /**
     * Aborts, before the step is scheduled, what waited or ran too long, with the status SGLang
     * answers such a request with; the rest of the batch goes on. Checked once per step, on the
     * engine thread, like SGLang's scheduler does once per iteration.
     */
    private void abortTimedOut(long now) {
        scheduler.timedOut(now, timeouts.waitingNanos(), timeouts.runningNanos(), waitedTooLong, ranTooLong);
        for (int i = 0; i < waitedTooLong.size(); i++)
            finish(waitedTooLong.get(i), FinishReason.abort(RequestTimeouts.WAITING_MESSAGE, timeouts.statusCode()));
        for (int i = 0; i < ranTooLong.size(); i++)
            finish(ranTooLong.get(i), FinishReason.abort(RequestTimeouts.RUNNING_MESSAGE, timeouts.statusCode()));
        waitedTooLong.clear();
        ranTooLong.clear();
    }

    /**
     * Advances a constrained sequence's cursor over the token it sampled; returns how the
     * constraint ends it, or null to go on (the usual checks follow). EOS taken where the text may
     * end finishes it as EOS does ({@code stop}, matched = the EOS id), whatever {@code ignore_eos}
     * and {@code min_new_tokens} say: the constraint allows nothing after it, as SGLang ends a
     * request whose grammar has terminated. A {@code stop_token_ids} token outside the text ends it
     * where the text may end. Anything else the mask should have made impossible: that request
     * alone is ended with the reason, the others go on.
     */
    private FinishReason constraintEnd(Sequence seq, int token) {
        boolean couldEnd = seq.constraint.canEnd();
        if (seq.constraint.advance(token)) return seq.constraint.ended() ? FinishReason.stopToken(token) : null;
        if (couldEnd && seq.params.stopTokenIds().contains(token)) return FinishReason.stopToken(token);
        return FinishReason.abort("internal error: the sampler picked token " + token + ", which the request's constraint does "
                + "not allow after " + (seq.numOutputTokens() - 1) + " output tokens; the request was ended", 500);
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
            if (!p.stopRegex().isEmpty() && !delta.isEmpty()) {
                String text = seq.detokenizer.text();
                String pattern;
                try {
                    pattern = p.stopRegex().find(text);
                } catch (StopRegex.Overrun spent) {
                    return FinishReason.abort("stop_regex '" + spent.pattern + "' took too long to search the last "
                            + StopRegex.WINDOW_CHARS + " characters of the output (it backtracks too much); the request was ended");
                }
                if (pattern != null) {
                    // SGLang trims at the pattern's own text where it appears in the output (its
                    // trim_matched_stop looks for the matched value as a string), else keeps the match
                    int at = p.noStopTrim() ? -1 : text.indexOf(pattern);
                    if (at >= 0) seq.detokenizer.truncate(at);
                    return FinishReason.stopRegex(pattern);
                }
            }
        }
        if (generated >= p.maxNewTokens()) return FinishReason.length(p.maxNewTokens());
        if (seq.numTokens() >= maxModelLen) return FinishReason.length(generated);
        return null;
    }

    private void finish(Sequence seq, FinishReason reason) {
        // before its blocks are freed: a session pins them (a streaming session forgets an aborted turn)
        sessions.finished(seq, reason.type() == FinishReason.Type.ABORT, System.nanoTime());
        scheduler.finish(seq);
        seq.finishReason = reason;
        seq.finishedNanos = System.nanoTime();
        if (seq.detokenizer != null && reason.type() != FinishReason.Type.STOP) seq.detokenizer.finish();
        SequenceOutput output = seq.snapshot(weightVersion);
        if (seq.logMetrics) observer.onFinished(output);
        seq.listener.onOutput(output);
    }

    /** Aborts the matching running and waiting sequences, returning their partial output. */
    public int abort(RequestMatch match, String message) {
        return abort(match, message, message);
    }

    /**
     * As {@link #abort(RequestMatch, String)}, a waiting sequence (a retracted one keeps its partial
     * output) reporting {@code waitingMessage}: SGLang's /abort_request says "Abort in waiting queue".
     */
    public int abort(RequestMatch match, String message, String waitingMessage) {
        List<Sequence> hit = scheduler.find(match::test);
        for (Sequence s : hit) finish(s, FinishReason.abort(s.status == SequenceStatus.WAITING ? waitingMessage : message));
        return hit.size();
    }

    /** Aborts every running and waiting sequence with an HTTP status, which its request answers with (an error, not partial output). */
    int abortAll(String message, int statusCode) {
        List<Sequence> hit = scheduler.find(rid -> true);
        for (Sequence s : hit) finish(s, FinishReason.abort(message, statusCode));
        return hit.size();
    }

    /**
     * Drops the prefix cache; refused (false) while any sequence runs or waits, as in SGLang. While
     * paused, sequences that wait holding no KV do not count: SGLang holds the requests that
     * arrive during a pause before its scheduler, so RL clients that flush between pause and
     * continue (slime, veRL) find it idle.
     */
    public boolean flushCache() {
        if (!idleForMemoryWork()) return false;
        resetPrefixCache();
        return true;
    }

    /**
     * No sequence holds KV, and none would start while the caller works: nothing runs, and either
     * nothing waits or the engine is paused (waiting sequences hold no blocks; they are admitted,
     * and recompute from the prefix cache, after continue_generation).
     */
    public boolean idleForMemoryWork() {
        return scheduler.numRunning() == 0 && (paused || scheduler.numWaiting() == 0);
    }

    // ---- what the loop's control commands use ---------------------------------------

    /** Stops stepping. ABORT ends what runs (partial output); RETRACT frees its KV to recompute later; IN_PLACE keeps it. */
    public int pause(PauseMode mode) {
        if (!paused) pausedAtNanos = System.nanoTime();  // a second pause does not extend the first
        paused = true;
        return switch (mode) {
            case ABORT -> abort(RequestMatch.every(), "aborted by pause_generation");
            case RETRACT -> scheduler.retractAll();
            case IN_PLACE -> 0;
        };
    }

    public void resume() {
        paused = false;
    }

    public boolean paused() {
        return paused;
    }

    /** Stops admitting new sequences (while an update or a drain waits for the running ones). */
    void blockAdmissions(boolean blocked) {
        admissionsBlocked = blocked;
    }

    /** Holds the engine still whatever its queue holds: its memory is released or its weights are incomplete. */
    void hold(boolean held) {
        this.held = held;
    }

    public int numRunning() {
        return scheduler.numRunning();
    }

    /** Ids of the sequences now running. */
    List<String> runningRids() {
        List<String> out = new ArrayList<>();
        for (Sequence s : scheduler.find(rid -> true)) if (s.status == SequenceStatus.RUNNING) out.add(s.rid);
        return out;
    }

    /** Ids of the sequences now running or waiting. */
    List<String> activeRids() {
        List<String> out = new ArrayList<>();
        for (Sequence s : scheduler.find(rid -> true)) out.add(s.rid);
        return out;
    }

    /** Retracts the running sequences and returns their snapshots (for a drain that ran out of time). */
    List<SequenceOutput> retractRunning() {
        List<SequenceOutput> cut = new ArrayList<>();
        for (Sequence s : scheduler.find(rid -> true)) if (s.status == SequenceStatus.RUNNING) cut.add(s.snapshot(weightVersion));
        scheduler.retractAll();
        return cut;
    }

    /** Serves {@code version} from now on; KV computed under the old label is never matched again. */
    void setWeightVersion(String version) {
        weightVersion = version;
        resetPrefixCache();
    }

    /** Re-keys the prefix cache: nothing cached before this call is found again. */
    void resetPrefixCache() {
        sessions.dropAllPins();  // what they kept can never be found again
        blocks.resetPrefixCache(++cacheSalt);
    }

    /** Frees the KV cache's memory (and the graphs that write to it); returns the bytes given back. */
    long releaseKvCache() {
        long b = runner.cache().bytes();
        runner.cache().release();
        runner.replaceCache(null);
        resetPrefixCache();
        return b;
    }

    /** Allocates the KV cache again, at the size it had. */
    long allocateKvCache() {
        KvCache cache = new KvCache(model.shardConfig(), blocks.numBlocks(), config.blockSize(), model.dtype(), model.device(),
                config.routedExperts());
        runner.replaceCache(cache);
        return cache.bytes();
    }

    /** Drops the captured CUDA graphs (they read the weights and the cache at their old addresses). */
    void dropGraphs() {
        runner.closeGraphs();
    }

    public CausalLm model() {
        return model;
    }

    // ---- the other tensor-parallel ranks (nothing happens at one rank) ------------------

    /** The model's ranks: 1 unless it is in tensor-parallel shards. */
    public int tpSize() {
        return model.tpGroup().size();
    }

    /**
     * Tells the workers the KV cache's size, once, before the first step; waits for the slowest
     * to load its shard, for at most {@code deadline}. Before the engine loop starts.
     */
    public void announceRanks(java.time.Duration deadline) {
        runner.ranks().announceCache(blocks.numBlocks(), config.blockSize(), deadline);
    }

    /** How new parameter values reach every rank (at one rank, straight into the model). */
    dev.rollout.model.StepBroadcast parameterChannel() {
        return runner.ranks();
    }

    /** Between steps: an idle message to the workers if nothing went to them for {@code intervalNanos}. */
    void keepRanksAlive(long nowNanos, long intervalNanos) {
        runner.ranks().keepAlive(nowNanos, intervalNanos);
    }

    /** Ends the workers' loops: the last message. */
    void stopRanks() {
        runner.ranks().stop();
    }

    /** Why the ranks can no longer run steps together (a collective failed or missed its deadline), or null. */
    String ranksBroken() {
        return model.tpGroup().broken();
    }

    public EngineStats stats() {
        return new EngineStats(scheduler.numRunning(), scheduler.numWaiting(), blocks.numUsedBlocks(), blocks.numBlocks(),
                blocks.blockSize(), blocks.numCachedBlocks(), scheduler.numPreemptions());
    }
}
