package dev.rollout.model;

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
 * Decode steps as CUDA graphs: one graph per (batch bucket, block-table bucket), captured the
 * first time a step of that shape comes, then replayed. A decode step issued op by op from Java
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
     * One decode step as the host describes it.
     *
     * @param ids        (B) the token each sequence computes
     * @param positions  (B) its position
     * @param slots      (B) the KV slot it writes
     * @param blockTable (B * maxBlocks) row-major, each sequence's blocks
     * @param seqLens    (B) context lengths, the current token included
     */
    public record Step(long[] ids, long[] positions, long[] slots, int[] blockTable, int maxBlocks, int[] seqLens) {
        int batch() {
            return ids.length;
        }
    }

    /** A captured graph with its static buffers (kept past every PointerScope). */
    private static final class Graph {
        final int batch, maxBlocks;
        final Tensor ids, positions, slots, tokenIndex, blockTable, seqLens;
        Tensor logits;   // (batch, vocab) float32, written by every replay
        long handle;

        Graph(int batch, int maxBlocks, Device device) {
            this.batch = batch;
            this.maxBlocks = maxBlocks;
            ids = keep(Torch.zeros(Torch.options(ScalarType.Long, device), batch));
            positions = keep(Torch.zeros(Torch.options(ScalarType.Long, device), batch));
            slots = keep(Torch.zeros(Torch.options(ScalarType.Long, device), batch));
            tokenIndex = keep(torch.arange(new Scalar(batch), Torch.options(ScalarType.Long, device)));
            blockTable = keep(Torch.zeros(Torch.options(ScalarType.Int, device), batch, maxBlocks));
            seqLens = keep(Torch.zeros(Torch.options(ScalarType.Int, device), batch));
        }

        ForwardBatch forwardBatch(int blockSize) {
            return new ForwardBatch(ids, positions, slots, new ForwardBatch.DecodeGroup(tokenIndex, null, batch,
                    maxBlocks * blockSize, null, blockTable, seqLens, maxBlocks), List.of());
        }

        /** Copies the step into the buffers, padding rows and block-table columns past it. */
        void fill(Step s, long scratchSlot) {
            int b = s.batch();
            long[] ids = new long[batch], pos = new long[batch], slot = new long[batch];
            int[] table = new int[batch * maxBlocks], lens = new int[batch];
            System.arraycopy(s.ids(), 0, ids, 0, b);
            System.arraycopy(s.positions(), 0, pos, 0, b);
            System.arraycopy(s.slots(), 0, slot, 0, b);
            java.util.Arrays.fill(slot, b, batch, scratchSlot);
            for (int i = 0; i < b; i++) System.arraycopy(s.blockTable(), i * s.maxBlocks(), table, i * maxBlocks, s.maxBlocks());
            System.arraycopy(s.seqLens(), 0, lens, 0, b);
            Device cpu = new Device("cpu");
            this.ids.copy_(Torch.longs(ids, cpu));
            positions.copy_(Torch.longs(pos, cpu));
            slots.copy_(Torch.longs(slot, cpu));
            blockTable.copy_(Torch.ints(table, cpu, batch, maxBlocks));
            seqLens.copy_(Torch.ints(lens, cpu, batch));
        }

        void close() {
            if (handle != 0) RolloutCuda.graphDestroy(handle);
            handle = 0;
            for (Tensor t : new Tensor[] {ids, positions, slots, tokenIndex, blockTable, seqLens, logits})
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
     * Logits (B, vocab) float32 of a decode-only step, computed by replaying the graph for its
     * shape (capturing it first if it is new), or null when the step must run eagerly.
     */
    public Tensor decode(Step step, KvCache cache) {
        if (disabled != null || step.batch() > maxBatch) return null;
        int batch = bucket(step.batch());
        int blocks = Math.max(MIN_BLOCKS, Integer.highestOneBit(Math.max(1, step.maxBlocks() - 1)) << 1);
        long key = ((long) batch << 32) | blocks;
        Graph g = graphs.get(key);
        if (g == null) {
            g = capture(batch, blocks, step, cache);
            if (g == null) return null;
            graphs.put(key, g);
        } else {
            g.fill(step, cache.scratchSlot());
        }
        RolloutCuda.graphReplay(g.handle);
        return g.logits.narrow(0, 0, step.batch());
    }

    private Graph capture(int batch, int blocks, Step step, KvCache cache) {
        long t0 = System.nanoTime();
        Graph g = new Graph(batch, blocks, model.device());
        g.fill(step, cache.scratchSlot());
        ForwardBatch fb = g.forwardBatch(cache.blockSize());
        try {
            // warm-up on the capture stream: libtorch's kernels load and its allocator settles
            RolloutCuda.useCaptureStream();
            try {
                for (int i = 0; i < 2; i++) {
                    try (PointerScope scope = new PointerScope()) {
                        model.logits(model.forward(fb, cache));
                    }
                }
            } finally {
                RolloutCuda.useDefaultStream();
            }
            g.handle = RolloutCuda.graphBegin();
            try (PointerScope scope = new PointerScope()) {
                g.logits = keep(model.logits(model.forward(fb, cache)));
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
        }
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
    }

    public int size() {
        return graphs.size();
    }
}
