package dev.rollout.model;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Decode steps as CUDA graphs: one graph per (batch bucket, block-table bucket), captured ahead
 * of use for short contexts ({@link #captureAll}, at start-up) and otherwise the first time a step
 * of that shape comes, then replayed. The graphs share one memory pool for their intermediates
 * and, where the model allows, one buffer for their logits. A decode step issued op by op from Java
 * costs microseconds per op in launch and JNI overhead, hundreds of ops per step; a replay
 * launches them all at once.
 *
 * <p>A graph bakes in the addresses of everything it touches, so each owns static input buffers
 * (a step's ids, positions, KV slots, block table and lengths are copied in before the replay)
 * and keeps its output; the weights and the KV cache must stay where they were at capture
 * ({@link #close()} whenever either is freed or replaced). Rows past a step's real batch are
 * padding: they write their K/V to the cache's scratch slot and attend to nothing. If a capture
 * fails, graphs are switched off and every step runs eagerly, with the reason logged.
 */
public final class DecodeGraphs implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(DecodeGraphs.class.getName());
    /** Batch buckets: fine at small sizes where a padded row costs most, coarser above. */
    private static final int[] BATCHES = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512};
    private static final int MIN_BLOCKS = 16;

    private final CausalLm model;
    private final int maxBatch;
    private final Map<Long, Graph> graphs = new HashMap<>();
    private String disabled;
    /**
     * (largest bucket, vocab) bf16: every graph's logits, where the model writes them into a
     * buffer of ours ({@link CausalLm#bf16SamplingLogits}), or null. A graph's output outlives its
     * capture, so the graphs' shared pool cannot hand it to the next one: each graph kept its own,
     * and at a 152k vocabulary the 19 batch buckets' logits come to 0.96 GB per block-table bucket
     * (computed: 3,168 rows x 151,936 x 2 bytes). A
     * step's logits are sampled before the next replay (one stream, one step at a time), so one
     * buffer serves them all.
     */
    private Tensor sharedLogits;

    /**
     * One decode step as the host describes it.
     *
     * @param ids        (B) the token each sequence computes
     * @param positions  (B) its position
     * @param slots      (B) the KV slot it writes
     * @param blockTable (B * maxBlocks) row-major, each sequence's blocks
     * @param seqLens    (B) context lengths, the current token included
     */
    public record Step(long[] ids, long[] positions, long[] slots, long[] blockTable, int maxBlocks, long[] seqLens) {
        int batch() {
            return ids.length;
        }
    }

    /**
     * A captured graph and its static inputs: views of one int64 device buffer laid out as
     * [ids | positions | slots | seqLens | blockTable], so that a step costs one host-to-device copy.
     */
    private static final class Graph {
        final int batch, maxBlocks;
        final Tensor inputs, ids, positions, slots, seqLens, blockTable, tokenIndex;
        final Tensor splitCounters;  // (batch, nKv) int32: the paged kernel's, zero between its launches
        Tensor logits;   // (batch, vocab) bf16 or float32 (CausalLm.samplingLogits), written by every replay
        long handle;

        Graph(int batch, int maxBlocks, int kvHeads, Device device) {
            this.batch = batch;
            this.maxBlocks = maxBlocks;
            inputs = keep(Torch.zeros(Torch.options(ScalarType.Long, device), 4L * batch + (long) batch * maxBlocks));
            ids = keep(inputs.narrow(0, 0, batch));
            positions = keep(inputs.narrow(0, batch, batch));
            slots = keep(inputs.narrow(0, 2L * batch, batch));
            seqLens = keep(inputs.narrow(0, 3L * batch, batch));
            blockTable = keep(inputs.narrow(0, 4L * batch, (long) batch * maxBlocks).view(batch, maxBlocks));
            tokenIndex = keep(torch.arange(new Scalar(batch), Torch.options(ScalarType.Long, device)));
            splitCounters = keep(PagedDecode.splitCounters(batch, kvHeads, device));
        }

        ForwardBatch forwardBatch(int blockSize) {
            return new ForwardBatch(ids, positions, slots, new ForwardBatch.DecodeGroup(tokenIndex, null, batch,
                    maxBlocks * blockSize, null, blockTable, seqLens, maxBlocks, splitCounters), List.of());
        }

        /** Copies the step into the buffer, padding rows (scratch slot, length 0) and block-table columns. */
        void fill(Step s, long scratchSlot) {
            int b = s.batch();
            long[] host = new long[4 * batch + batch * maxBlocks];
            System.arraycopy(s.ids(), 0, host, 0, b);
            System.arraycopy(s.positions(), 0, host, batch, b);
            System.arraycopy(s.slots(), 0, host, 2 * batch, b);
            Arrays.fill(host, 2 * batch + b, 3 * batch, scratchSlot);
            System.arraycopy(s.seqLens(), 0, host, 3 * batch, b);
            for (int i = 0; i < b; i++)
                System.arraycopy(s.blockTable(), i * s.maxBlocks(), host, 4 * batch + i * maxBlocks, s.maxBlocks());
            inputs.copy_(Torch.longs(host, new Device("cpu")));
        }

        void close() {
            if (handle != 0) RolloutCuda.graphDestroy(handle);
            handle = 0;
            for (Tensor t : new Tensor[] {ids, positions, slots, seqLens, blockTable, tokenIndex, splitCounters, inputs, logits})
                if (t != null) t.releaseReference();
        }
    }

    public DecodeGraphs(CausalLm model, int maxBatch) {
        this.model = model;
        this.maxBatch = Math.min(maxBatch, BATCHES[BATCHES.length - 1]);
    }

    /** Why graphs are off (a capture failed), or null. */
    public String disabled() {
        return disabled;
    }

    /**
     * Logits (B, vocab) of a decode-only step, bf16 or float32 as {@link CausalLm#samplingLogits}
     * gives them, computed by replaying the graph for its
     * shape (capturing it first if it is new), or null when the step must run eagerly.
     */
    public Tensor decode(Step step, KvCache cache) {
        if (disabled != null || step.batch() > maxBatch) return null;
        int batch = bucket(step.batch());
        int blocks = blocksBucket(step.maxBlocks());
        long key = key(batch, blocks);
        Graph g = graphs.get(key);
        if (g == null) {
            g = capture(batch, blocks, step, cache);
            if (g == null) return null;
            graphs.put(key, g);
        } else {
            g.fill(step, cache.scratchSlot());
            // a benchmark's profile times the replay alone (PhaseTimer); a step that captured is left out of it
            model.phaseTimer().begin();
        }
        RolloutCuda.graphReplay(g.handle);
        return g.logits.narrow(0, 0, step.batch());
    }

    /**
     * Captures, before serving, the graphs of every batch bucket (up to the largest step) for each
     * block-table bucket that a context of up to {@code contextTokens} falls in: what steps would
     * otherwise capture on first use, tens of milliseconds each inside a step (a server's first
     * pass). Largest first, so that the first capture sets the shared pool's high-water mark and
     * the rest reuse its memory. Their own forwards write only the cache's scratch slot (every row
     * is padding), but the cache must not be in use: start-up, with nothing running. Returns how
     * many graphs were captured; stops at the first failure (graphs are then off, as on first use).
     */
    public int captureAll(KvCache cache, int contextTokens) {
        int most = blocksBucket((contextTokens + cache.blockSize() - 1) / cache.blockSize());
        Step padding = new Step(new long[0], new long[0], new long[0], new long[0], 0, new long[0]);
        int captured = 0;
        for (int blocks = most; blocks >= MIN_BLOCKS; blocks /= 2) {
            for (int i = BATCHES.length - 1; i >= 0; i--) {
                int batch = BATCHES[i];
                if (batch > bucket(maxBatch) || graphs.containsKey(key(batch, blocks))) continue;
                if (disabled != null) return captured;
                Graph g = capture(batch, blocks, padding, cache);
                if (g == null) return captured;
                graphs.put(key(batch, blocks), g);
                captured++;
            }
        }
        return captured;
    }

    /** The block-table width a step of contexts up to {@code maxBlocks} blocks is captured at: a power of two, at least {@link #MIN_BLOCKS}. */
    static int blocksBucket(int maxBlocks) {
        return Math.max(MIN_BLOCKS, Integer.highestOneBit(Math.max(1, maxBlocks - 1)) << 1);
    }

    private static long key(int batch, int blocks) {
        return ((long) batch << 32) | blocks;
    }

    private Graph capture(int batch, int blocks, Step step, KvCache cache) {
        long t0 = System.nanoTime();
        Graph g = new Graph(batch, blocks, (int) cache.keys(0).size(1), model.device());
        g.fill(step, cache.scratchSlot());
        ForwardBatch fb = g.forwardBatch(cache.blockSize());
        Tensor out = sharedLogits(batch);   // (batch, vocab) of the shared buffer, or null: the graph's own
        PhaseTimer timer = model.phaseTimer();
        model.setPhaseTimer(PhaseTimer.OFF);   // its events would be recorded into the graph
        try {
            // warm-up on the capture stream: libtorch's kernels load and its allocator settles
            RolloutCuda.useCaptureStream();
            try {
                for (int i = 0; i < 2; i++) {
                    try (PointerScope scope = new PointerScope()) {
                        logits(fb, cache, out);
                    }
                }
            } finally {
                RolloutCuda.useDefaultStream();
            }
            g.handle = RolloutCuda.graphBegin();
            try (PointerScope scope = new PointerScope()) {
                g.logits = keep(logits(fb, cache, out));
            } finally {
                RolloutCuda.graphEnd(g.handle);
            }
            LOG.fine(() -> String.format("captured the decode graph for batch %d, %d blocks, in %.1f ms", batch, blocks,
                    (System.nanoTime() - t0) / 1e6));
            return g;
        } catch (RuntimeException e) {
            g.close();
            disabled = "capturing batch " + batch + " failed: " + e.getMessage();
            LOG.warning("CUDA graphs off, decode steps run eagerly: " + disabled);
            return null;
        } finally {
            model.setPhaseTimer(timer);
        }
    }

    /** The step's sampling logits (batch, vocab): into {@code out} where the graphs share one buffer, else the model's own. */
    private Tensor logits(ForwardBatch fb, KvCache cache, Tensor out) {
        Tensor hidden = model.forward(fb, cache);
        return out == null ? model.samplingLogits(hidden) : model.samplingLogits(hidden, out);
    }

    /** The shared logits' first {@code batch} rows, the buffer made on first use; null where the model makes its own. */
    private Tensor sharedLogits(int batch) {
        if (!model.bf16SamplingLogits()) return null;
        if (sharedLogits == null)
            sharedLogits = keep(Torch.empty(Torch.options(ScalarType.BFloat16, model.device()), bucket(maxBatch),
                    model.samplingLogitsWidth()));
        return sharedLogits.narrow(0, 0, batch);
    }

    static int bucket(int batch) {
        for (int b : BATCHES) if (b >= batch) return b;
        return batch;
    }

    /** Retains a tensor past the PointerScope it was made in; {@link Graph#close()} lets it go. */
    private static Tensor keep(Tensor t) {
        t.retainReference();
        return t;
    }

    /** Frees every graph and its buffers: before the weights or the KV cache move or go. */
    @Override
    public void close() {
        for (Graph g : graphs.values()) g.close();
        graphs.clear();
        if (sharedLogits != null) sharedLogits.releaseReference();
        sharedLogits = null;
    }

    public int size() {
        return graphs.size();
    }
}
