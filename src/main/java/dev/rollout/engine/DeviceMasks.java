package dev.rollout.engine;

import dev.rollout.constrain.TokenMask;
import dev.rollout.model.Torch;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The constrained rows' token masks on the device, for {@link Sampler}. A constraint's mask
 * belongs to an automaton state and is shared by every sequence in that state
 * ({@code TokenIndex}), and an RL batch runs one schema hundreds of times, so a step's masks are
 * mostly ones an earlier step used: each is copied to a row of a device table once and gathered
 * from there. A step then copies C row numbers to the device, not C masks of 19 KB each (at
 * Qwen's 151,936 tokens: 4.9 MB at C = 256, a pageable copy that held the host on the GPU's
 * queue every step). The sampling kernel reads the table's bits itself ({@link #place},
 * {@link #table}); the other paths get them unpacked into a boolean mask ({@link #forbidden}).
 *
 * <p>The table grows by doubling up to {@link #BUDGET_BYTES} (some 3,500 masks at Qwen's
 * vocabulary, more than any agent schema we have seen has states) or one step's rows, if more;
 * when full it starts over, and the step's masks are copied again. Masks are known by
 * {@link TokenMask#id()}: no mask's bits are hashed and no mask is kept alive here. A row that
 * also allows its request's {@code stop_token_ids} is a mask of its own, kept by the mask's id and
 * those ids.
 *
 * <p>Engine thread only, like the sampler.
 */
final class DeviceMasks {
    /** The most device memory the table takes. */
    static final long BUDGET_BYTES = 64L << 20;
    /** Row v, column b: whether bit b of the byte v is clear (a token the mask forbids). */
    private static final boolean[] FORBIDDEN_BITS = new boolean[256 * 8];
    static {
        if (java.nio.ByteOrder.nativeOrder() != java.nio.ByteOrder.LITTLE_ENDIAN)
            throw new ExceptionInInitializerError("the constraint masks are read as little-endian bytes");
        for (int v = 0; v < 256; v++) for (int b = 0; b < 8; b++) FORBIDDEN_BITS[v * 8 + b] = ((v >> b) & 1) == 0;
    }

    private final Device device;
    private final long budgetBytes;
    /** Each mask's row: by its id, or by a {@link WithExtra} where a row allows ids besides. */
    private final Map<Object, Integer> rowOf = new HashMap<>();
    /** (capacity, words) int64 on the device: row r holds the mask whose id maps to r. Outlives the steps' PointerScopes. */
    private Tensor table;
    private int words, capacity, used;
    /** The masks a step copies, (P, words) row-major; and the rows they go to. Reused: no host allocation per step. */
    private long[] staging = new long[0];
    private long[] stagingRows = new long[0];
    private long[] rows = new long[0];
    /** FORBIDDEN_BITS on the device, (256, 8) bool: copied by the first constrained step, then kept. */
    private Tensor forbiddenBits;
    /** Masks copied to the device, in all: a step that finds all its masks there copies none. */
    private long copies;

    DeviceMasks(Device device) {
        this(device, BUDGET_BYTES);
    }

    /** With a smaller budget, so that tests start over without thousands of masks. */
    DeviceMasks(Device device, long budgetBytes) {
        this.device = device;
        this.budgetBytes = budgetBytes;
    }

    /**
     * Puts each of {@code c} rows' masks in the table, copying those not there yet, and returns
     * their rows of {@link #table()} (valid until the next call; the array is reused).
     * {@code extra[j]}, when not null, are ids row j allows besides its mask's.
     */
    long[] place(TokenMask[] masks, int[][] extra, int c, long vocab) {
        int w = (int) ((vocab + 63) >>> 6);
        for (int j = 0; j < c; j++)
            if (masks[j].numWords() > w) throw new IllegalStateException("a constraint over " + masks[j].size() + " tokens for logits over " + vocab);
        if (w != words) startOver(w);
        if (rows.length < c) rows = new long[c];
        try {
            int pending = assign(masks, extra, c);
            if (pending < 0) {   // full: start over, and this step's masks are the first
                rowOf.clear();
                used = 0;
                pending = assign(masks, extra, c);
            }
            if (pending > 0) {
                Tensor fresh = Torch.longs(staging, pending * w, device).view(pending, w);                       // (P, W) int64
                table.index_copy_(0, Torch.longs(stagingRows, pending, device), fresh);
                copies += pending;
            }
        } catch (RuntimeException | Error e) {
            // rows were promised to masks before their copy (a device OOM growing the table, say):
            // forget them all, or a later step would read another mask's bits as this one's
            rowOf.clear();
            used = 0;
            throw e;
        }
        return rows;
    }

    /** The masks' words, (capacity, ceil(vocab / 64)) int64 on the device: bit t of a row set where token t is allowed. */
    Tensor table() {
        return table;
    }

    /**
     * Where each of {@code c} rows' masks forbids a token: (c, vocab) bool on the device, true
     * at every token the row may not take. For the paths that write the masks into the logits
     * (the sampling kernel reads {@link #table()} itself).
     */
    Tensor forbidden(TokenMask[] masks, int[][] extra, int c, long vocab) {
        long[] at = place(masks, extra, c, vocab);
        // the words as bytes (little-endian: byte j of word w holds tokens 64w + 8j ...), each byte
        // looked up in a table of its eight bits: one gather, where shifting int64 words broadcast
        // to (C, W, 64) made several passes over eight bytes a token
        Tensor bytes = table.index_select(0, Torch.longs(at, c, device))                                        // (C, W) int64
                .view(ScalarType.Byte).view(-1).to(ScalarType.Int);                                              // (C * W * 8) int32
        if (forbiddenBits == null) {
            forbiddenBits = Torch.bools(FORBIDDEN_BITS, device, 256, 8);
            forbiddenBits.retainReference();
        }
        return forbiddenBits.index_select(0, bytes)                                                              // (C * W * 8, 8) bool
                .view(c, (long) words * 64).narrow(1, 0, vocab);                                                // (C, V) bool
    }

    /** Masks copied to the device so far. */
    long copies() {
        return copies;
    }

    /** Rows of the table in use. */
    int used() {
        return used;
    }

    /**
     * Finds or assigns each row's table row (into {@link #rows}), staging the masks not on the
     * device yet; returns how many were staged, or -1 where the table is full and may not grow.
     */
    private int assign(TokenMask[] masks, int[][] extra, int c) {
        int pending = 0;
        for (int j = 0; j < c; j++) {
            Object key = extra[j] == null ? (Object) masks[j].id() : new WithExtra(masks[j].id(), extra[j]);
            Integer r = rowOf.get(key);
            if (r == null) {
                if (used == capacity && !grow(c)) return -1;   // the caller starts over
                r = used++;
                rowOf.put(key, r);
                stage(pending++, r, masks[j], extra[j]);
            }
            rows[j] = r;
        }
        return pending;
    }

    private void stage(int p, int row, TokenMask mask, int[] extra) {
        if (staging.length < (p + 1) * words) staging = java.util.Arrays.copyOf(staging, Math.max((p + 1) * words, 2 * staging.length));
        if (stagingRows.length < p + 1) stagingRows = java.util.Arrays.copyOf(stagingRows, Math.max(p + 1, 2 * stagingRows.length));
        int at = p * words;
        mask.copyTo(staging, at);
        java.util.Arrays.fill(staging, at + mask.numWords(), at + words, 0L);
        if (extra != null) for (int t : extra) if (t >= 0 && t < (long) words * 64) staging[at + (t >>> 6)] |= 1L << t;
        stagingRows[p] = row;
    }

    /**
     * A mask and the ids a request allows besides it (its {@code stop_token_ids} where the text may
     * end): a row of its own, kept like a mask's, so a request that can end at every step takes one
     * row, not one a step.
     */
    private record WithExtra(long id, int[] extra) {
        @Override
        public boolean equals(Object o) {
            return o instanceof WithExtra w && w.id == id && java.util.Arrays.equals(w.extra, extra);
        }

        @Override
        public int hashCode() {
            return Long.hashCode(id) * 31 + java.util.Arrays.hashCode(extra);
        }
    }

    /** Doubles the table, up to the budget or one step's rows; false where it is there already. */
    private boolean grow(int stepRows) {
        long rowBytes = 8L * words;
        int most = (int) Math.max(stepRows, Math.min(Integer.MAX_VALUE, budgetBytes / rowBytes));
        if (capacity >= most) return false;
        int bigger = Math.min(most, Math.max(Math.max(64, stepRows), 2 * capacity));
        Tensor t = Torch.empty(Torch.options(ScalarType.Long, device), bigger, words);                         // (capacity, W) int64
        if (used > 0) t.narrow(0, 0, used).copy_(table.narrow(0, 0, used));
        t.retainReference();
        if (table != null) table.releaseReference();
        table = t;
        capacity = bigger;
        return true;
    }

    private void startOver(int w) {
        if (table != null) table.releaseReference();
        table = null;
        words = w;
        capacity = 0;
        used = 0;
        rowOf.clear();
    }
}
