package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.KvCache;
import dev.rollout.model.DeviceMemory;
import dev.rollout.model.ModelConfig;
import dev.rollout.model.ParameterTable;
import java.util.List;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import dev.rollout.model.Torch;
import java.util.TreeMap;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

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
    private long cacheSalt;
    private boolean paused;
    private boolean admissionsBlocked;
    private final EnumSet<MemoryTag> released = EnumSet.noneOf(MemoryTag.class);
    /** Parameters not pushed since the weights were resumed; generation waits until none is left. */
    private final Set<String> unpushed = new HashSet<>();
    private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(LlmEngine.class.getName());
    /** The last {@link #HISTORY} updates applied, oldest first; read by HTTP threads (the status page). */
    private final ArrayDeque<UpdateRecord> updates = new ArrayDeque<>();
    private static final int HISTORY = 32;

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
        KvCache cache = new KvCache(mc, numKvBlocks, config.blockSize(), model.dtype(), model.device());
        this.runner = new ModelRunner(model, cache, new Sampler(model.device(), mc.eosTokenIds(), model.kernels().samplingKernel()),
                config.maxNumSeqs());
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
        int fitting = KvCache.blocksFitting(model.config(), config.blockSize(), model.dtype(), model.device(),
                config.kvMemoryFraction());
        return (int) Math.min(fitting, useful);
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
        scheduler.add(seq);
    }

    public boolean hasWork() {
        return scheduler.hasWork();
    }

    /** True when a step would do something: work is queued and nothing holds the engine. */
    public boolean canStep() {
        return scheduler.hasWork() && !paused && released.isEmpty() && unpushed.isEmpty();
    }

    /** Runs one step; returns the number of sequences that took part. */
    public int step() {
        if (!canStep()) return 0;
        List<ScheduledSequence> batch = scheduler.schedule(!admissionsBlocked);
        if (batch.isEmpty()) return 0;
        long t0 = System.nanoTime();
        List<ModelRunner.Output> outputs = runner.run(batch);
        long now = System.nanoTime();
        scheduler.markComputed(batch);
        int tokens = 0, sampled = 0;
        for (int i = 0; i < batch.size(); i++) {
            tokens += batch.get(i).numTokens();
            if (batch.get(i).sample()) sampled++;
            apply(batch.get(i), outputs.get(i), now);
        }
        observer.onStep(batch.size(), tokens, sampled, (now - t0) / 1e9, (System.nanoTime() - now) / 1e9);
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
        seq.noteVersion(weightVersion);
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
        else if (seq.stream && seq.numOutputTokens() % seq.params.streamInterval() == 0)
            seq.listener.onOutput(seq.snapshot(weightVersion));
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
        blocks.resetPrefixCache(++cacheSalt);
        return true;
    }

    // ---- the RL control plane: weights, pause, memory ------------------------------------

    /** Why {@code update} cannot be applied (unknown names, wrong shapes, released weights), or null. */
    public String checkUpdate(WeightUpdate update) {
        if (model.weightsReleased()) return "the weights are released; resume them (resume_memory_occupation) before pushing";
        if (update.tensors().isEmpty()) return "the update holds no tensors";
        ParameterTable table = model.parameters();
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : update.tensors().entrySet()) {
            long[] shape = new long[(int) e.getValue().dim()];
            for (int i = 0; i < shape.length; i++) shape[i] = e.getValue().size(i);
            String m = table.mismatch(e.getKey(), shape);
            if (m != null) problems.add(m);
        }
        if (problems.isEmpty()) return null;
        return String.join("; ", problems.subList(0, Math.min(5, problems.size())))
                + (problems.size() > 5 ? " (and " + (problems.size() - 5) + " more)" : "");
    }

    /**
     * Copies the update into the model, then serves its version. Every tensor is checked before
     * any is copied, so a refused update leaves the weights as they were. The prefix cache is
     * re-keyed: KV computed under the old weights is never matched again.
     */
    public UpdateRecord applyWeights(WeightUpdate update) {
        String problem = checkUpdate(update);
        if (problem != null) throw new IllegalArgumentException(problem);
        long t0 = System.nanoTime();
        ParameterTable table = model.parameters();
        try (PointerScope scope = new PointerScope()) {  // copy_ hands back a handle per call
            for (Map.Entry<String, Tensor> e : update.tensors().entrySet()) table.get(e.getKey()).copy_(e.getValue());
        }
        if (update.version() != null) weightVersion = update.version();
        blocks.resetPrefixCache(++cacheSalt);
        unpushed.removeAll(update.tensors().keySet());
        UpdateRecord r = new UpdateRecord(weightVersion, update.transport(), update.tensors().size(), update.bytes(),
                (System.nanoTime() - t0) / 1e9, System.currentTimeMillis());
        synchronized (updates) {
            if (updates.size() == HISTORY) updates.removeFirst();
            updates.addLast(r);
        }
        LOG.info(() -> String.format("weights %s applied: %d tensors, %.1f MB over %s in %.1f ms", r.version(), r.numTensors(),
                r.bytes() / 1e6, r.transport(), r.seconds() * 1e3));
        return r;
    }

    /** Changes the served version label only (SGLang's update_weight_version). */
    public void setWeightVersion(String version) {
        weightVersion = version;
        blocks.resetPrefixCache(++cacheSalt);
    }

    /** What the last applied update was. */
    public record UpdateRecord(String version, String transport, int numTensors, long bytes, double seconds, long atMillis) {}

    public UpdateRecord lastUpdate() {
        synchronized (updates) {
            return updates.peekLast();
        }
    }

    /** The most recent applied updates, oldest first (at most 32). */
    public List<UpdateRecord> recentUpdates() {
        synchronized (updates) {
            return List.copyOf(updates);
        }
    }

    public enum PauseMode { ABORT, RETRACT, IN_PLACE }

    /** Stops stepping. ABORT ends what runs (partial output); RETRACT frees its KV to recompute later; IN_PLACE keeps it. */
    public int pause(PauseMode mode) {
        paused = true;
        return switch (mode) {
            case ABORT -> abort(rid -> true, "aborted by pause_generation");
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
    public void blockAdmissions(boolean blocked) {
        admissionsBlocked = blocked;
    }

    public int numRunning() {
        return scheduler.numRunning();
    }

    /** Ids of the sequences now running. */
    public List<String> runningRids() {
        List<String> out = new ArrayList<>();
        for (Sequence s : scheduler.find(rid -> true)) if (s.status == SequenceStatus.RUNNING) out.add(s.rid);
        return out;
    }

    /** Retracts the running sequences and returns their snapshots (for a drain that ran out of time). */
    public List<SequenceOutput> retractRunning() {
        List<SequenceOutput> cut = new ArrayList<>();
        for (Sequence s : scheduler.find(rid -> true)) if (s.status == SequenceStatus.RUNNING) cut.add(s.snapshot(weightVersion));
        scheduler.retractAll();
        return cut;
    }

    /** Memory the server can give back between RL phases. */
    public enum MemoryTag { WEIGHTS, KV_CACHE, CUDA_GRAPH }

    public Set<MemoryTag> released() {
        return EnumSet.copyOf(released);
    }

    /** Bytes given back per tag. Refused while any request runs or waits. */
    public Map<MemoryTag, Long> releaseMemory(Set<MemoryTag> tags) {
        requireIdle("release memory");
        Map<MemoryTag, Long> freed = new EnumMap<>(MemoryTag.class);
        for (MemoryTag tag : tags) {
            if (released.contains(tag)) {
                freed.put(tag, 0L);
                continue;
            }
            long bytes = switch (tag) {
                case WEIGHTS -> {
                    runner.closeGraphs();  // they read the weights at their old addresses
                    yield model.releaseWeights();
                }
                case KV_CACHE -> {
                    long b = runner.cache().bytes();
                    runner.cache().release();
                    runner.replaceCache(null);
                    blocks.resetPrefixCache(++cacheSalt);
                    yield b;
                }
                case CUDA_GRAPH -> {
                    // their memory comes back with the cache emptied below; it is not counted per graph
                    runner.closeGraphs();
                    yield 0L;
                }
            };
            released.add(tag);
            freed.put(tag, bytes);
        }
        DeviceMemory.giveBack(model.device());
        return freed;
    }

    /**
     * Allocates released memory again. Returns true when the weights must be pushed before the
     * engine can generate: their contents were not kept.
     */
    public boolean resumeMemory(Set<MemoryTag> tags) {
        requireIdle("resume memory");
        for (MemoryTag tag : tags) {
            if (!released.remove(tag)) continue;
            switch (tag) {
                case WEIGHTS -> {
                    model.reallocateWeights();
                    unpushed.addAll(model.parameters().names());
                }
                case KV_CACHE -> runner.replaceCache(new KvCache(model.config(), blocks.numBlocks(), config.blockSize(),
                        model.dtype(), model.device()));
                case CUDA_GRAPH -> { }
            }
        }
        return !unpushed.isEmpty();
    }

    /** Parameters still to be pushed after a weights resume. */
    public int numUnpushed() {
        return unpushed.size();
    }

    private void requireIdle(String what) {
        if (scheduler.hasWork())
            throw new IllegalStateException("cannot " + what + " while " + scheduler.numRunning() + " requests run and "
                    + scheduler.numWaiting() + " wait; pause or abort them first");
    }

    /** The first {@code n} values of a parameter (flattened), as float32. */
    public float[] readParameterPrefix(String name, int n) {
        if (model.weightsReleased()) throw new IllegalStateException("the weights are released");
        try (PointerScope scope = new PointerScope()) {
            Tensor flat = model.parameters().get(name).reshape(-1);
            return Torch.toFloats(flat.narrow(0, 0, Math.min(n, flat.size(0))));
        }
    }

    /** SHA-256 (hex) of every parameter's bytes in the engine's dtype, by HF name. */
    public Map<String, String> checksums() {
        if (model.weightsReleased()) throw new IllegalStateException("the weights are released");
        Map<String, String> out = new TreeMap<>();
        try (PointerScope scope = new PointerScope()) {
            ParameterTable table = model.parameters();
            for (String name : table.names()) out.put(name, Torch.sha256(table.get(name)));
        }
        return out;
    }

    /** One digest over all parameters: SHA-256 of "name:digest\n" lines in name order. */
    public static String combinedChecksum(Map<String, String> checksums) {
        StringBuilder all = new StringBuilder();
        new TreeMap<>(checksums).forEach((k, v) -> all.append(k).append(':').append(v).append('\n'));
        return Torch.sha256(all.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    public CausalLm model() {
        return model;
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
