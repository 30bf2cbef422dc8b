package dev.rollout.model;

import dev.rollout.dist.WeightGroupOp;
import dev.rollout.model.ForwardBatchWire.Header;
import dev.rollout.model.ForwardBatchWire.Kind;
import java.time.Duration;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The steps of a tensor-parallel model, from rank 0, which schedules them, to the other ranks,
 * which run the same forward: each message is a fixed-size header broadcast (a worker cannot
 * allocate what it does not know the size of), then for a step its body and, when rows are given
 * as embeddings, their values ({@link ForwardBatchWire}). Three broadcasts rather than one padded
 * to the largest step: a decode step's body is a few hundred words.
 *
 * <p>Every broadcast has the group's deadline ({@link TpGroup}). A worker waits for the next
 * message no longer than that, so a rank 0 that died or hangs ends the worker with an error naming
 * the broadcast instead of leaving it waiting; in turn, rank 0 must send something within every
 * deadline, an {@link #idle()} while it has nothing to run. {@link #stop()} ends the workers'
 * loops. Messages are numbered, so that a worker that missed one refuses the next rather than run
 * a step out of order. One thread per rank uses it, as every collective of the group.
 */
public final class StepBroadcast {
    /** The rank that schedules and sends. */
    public static final int ROOT = 0;

    private final TpGroup group;
    private final Device device;
    private long number;   // the last message sent (rank 0) or received (the others)
    private long lastSentNanos = System.nanoTime();

    /**
     * @param device where the messages' tensors live while broadcast, and where a worker's step
     *               tensors end up: the model's device (CUDA for NCCL, which sends nothing else)
     */
    public StepBroadcast(TpGroup group, Device device) {
        this.group = group;
        this.device = device;
    }

    /**
     * What a worker received.
     *
     * @param step       the step to run; null unless {@code kind} is STEP
     * @param parameters what a WEIGHTS message names, whose values follow ({@link #receiveParameters}); empty otherwise
     * @param memory     what a MEMORY message asks; null otherwise
     * @param group      what a GROUP message asks; null otherwise
     */
    public record Received(Kind kind, long number, ForwardBatchWire.Step step, List<ForwardBatchWire.Parameter> parameters,
                           Memory memory, WeightGroupOp group) {
        Received(Kind kind, long number, ForwardBatchWire.Step step) {
            this(kind, number, step, List.of(), null, null);
        }
    }

    /**
     * What a MEMORY message asks of every rank: release or take again the weights and/or the KV
     * cache.
     *
     * @param hostCopy on release, keep a host copy of the weights (rollout.weights-host-backup); on
     *                 resume, restore the weights from it (rank 0 restores its own from its copy)
     */
    public record Memory(boolean release, boolean weights, boolean kvCache, boolean hostCopy) {
        long[] words() {
            return new long[] {release ? 1 : 0, weights ? 1 : 0, kvCache ? 1 : 0, hostCopy ? 1 : 0};
        }

        static Memory of(long[] w) {
            if (w.length != 4) throw new IllegalStateException("a MEMORY message of " + w.length + " words; this build reads 4");
            return new Memory(w[0] == 1, w[1] == 1, w[2] == 1, w[3] == 1);
        }
    }

    /** Rank 0: asks every other rank to release or take again its memory; nothing at one rank. */
    public void sendMemory(Memory m) {
        requireRoot("send a memory message");
        if (group.size() == 1) return;
        long[] body = m.words();
        sendHeader(new Header(Kind.MEMORY, number + 1, 0, body.length, 0));
        group.broadcast(Torch.longs(body, device), ROOT);                                     // (4) int64
    }

    /** Where each rank puts a parameter's full value: its shard of it ({@link ParameterTable#copyFull}). */
    @FunctionalInterface
    public interface ParameterSink {
        void accept(String name, Tensor full);
    }

    /**
     * Rank 0: new values of named parameters (full shapes, any dtype and device), for every rank.
     * Each value, converted to {@code dtype} on the model's device, goes to the other ranks in
     * its own broadcast and then to {@code sink} here, one at a time, so that no more than one
     * parameter's full value exists at once on any rank beyond what the caller holds. At one
     * rank, each value goes to {@code sink} as it is.
     */
    public void sendParameters(List<String> names, List<Tensor> values, ScalarType dtype, ParameterSink sink) {
        requireRoot("send parameters");
        if (group.size() == 1) {
            for (int i = 0; i < names.size(); i++) sink.accept(names.get(i), values.get(i));
            return;
        }
        List<ForwardBatchWire.Parameter> described = new java.util.ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            Tensor v = values.get(i);
            long[] shape = new long[(int) v.dim()];
            for (int d = 0; d < shape.length; d++) shape[d] = v.size(d);
            described.add(new ForwardBatchWire.Parameter(names.get(i), shape));
        }
        ForwardBatchWire.Encoded e = ForwardBatchWire.encodeParameters(number + 1, described);
        sendHeader(e.header());
        inStep("sending parameters", () -> {
            group.broadcast(Torch.longs(e.body(), device), ROOT);                             // (bodyWords) int64
            for (int i = 0; i < names.size(); i++) {
                try (PointerScope scope = new PointerScope()) {   // one full parameter on the device at a time
                    Tensor v = values.get(i).to(device, dtype).contiguous();                  // the full parameter
                    group.broadcast(v, ROOT);
                    sink.accept(names.get(i), v);
                }
            }
            return null;
        });
        lastSentNanos = System.nanoTime();   // a long push counts as a sign of life
    }

    /**
     * Rank 0: every rank's SHA-256 of each of its shards (hex, by parameter name), in rank
     * order, {@code mine} first. Every rank names the same parameters, so each sends a digest
     * per name in name order, and one all-gather brings them together.
     */
    public List<java.util.Map<String, String>> gatherChecksums(java.util.function.Supplier<java.util.SortedMap<String, String>> mine) {
        requireRoot("gather checksums");
        if (group.size() == 1) return List.of(mine.get());
        signal(Kind.CHECKSUMS);   // first: every rank hashes its shards at once
        return inStep("gathering checksums", () -> exchangeChecksums(mine.get()));
    }

    /** A worker, after a CHECKSUMS message: hands rank 0 its own. */
    public void sendChecksums(java.util.SortedMap<String, String> mine) {
        exchangeChecksums(mine);
    }

    private static final int DIGEST_WORDS = 4;   // SHA-256: 32 bytes

    private List<java.util.Map<String, String>> exchangeChecksums(java.util.SortedMap<String, String> mine) {
        List<String> names = new java.util.ArrayList<>(mine.keySet());
        long[] words = new long[names.size() * DIGEST_WORDS];
        for (int i = 0; i < names.size(); i++) {
            String hex = mine.get(names.get(i));
            for (int w = 0; w < DIGEST_WORDS; w++)
                words[i * DIGEST_WORDS + w] = Long.parseUnsignedLong(hex.substring(16 * w, 16 * w + 16), 16);
        }
        long[] all = Torch.toLongs(group.allGather(Torch.longs(words, device), 0));        // (size * names * 4) int64
        List<java.util.Map<String, String>> out = new java.util.ArrayList<>();
        for (int r = 0; r < group.size(); r++) {
            java.util.Map<String, String> rank = new java.util.TreeMap<>();
            for (int i = 0; i < names.size(); i++) {
                StringBuilder hex = new StringBuilder(64);
                for (int w = 0; w < DIGEST_WORDS; w++)
                    hex.append(String.format("%016x", all[(r * names.size() + i) * DIGEST_WORDS + w]));
                rank.put(names.get(i), hex.toString());
            }
            out.add(rank);
        }
        return out;
    }

    /**
     * Rank 0: the full value of parameter {@code name}, put together from every rank's part
     * ({@link TensorShard} says where each lies), in {@code local}'s dtype on the channel's device;
     * at one rank, {@code local} itself. Each rank's part is what it holds now: its weights, or
     * while they are released, its host copy of them.
     *
     * @param mine  where rank 0's part lies
     * @param local rank 0's part
     */
    public Tensor gatherParameter(String name, TensorShard mine, Tensor local) {
        requireRoot("gather a parameter");
        if (group.size() == 1) return local;
        ForwardBatchWire.Encoded e = ForwardBatchWire.encodeParameters(Kind.READ, number + 1,
                List.of(new ForwardBatchWire.Parameter(name, mine.fullShape())));
        sendHeader(e.header());
        return inStep("gathering " + name, () -> {
            group.broadcast(Torch.longs(e.body(), device), ROOT);                             // (bodyWords) int64
            return exchangeShard(mine, local);
        });
    }

    /** A worker, after a READ message: hands rank 0 its part of the parameter named ({@code m.parameters().get(0)}). */
    public void sendShard(TensorShard mine, Tensor local) {
        exchangeShard(mine, local);
    }

    private static final int SHARD_WORDS = 4;   // dim, start, length, elements

    /**
     * Every rank's part of a parameter to every rank, in two all-gathers: where each lies, then
     * its elements, padded to the largest shard (the vocabulary's last rows may be fewer). Rank 0
     * writes each in its place of the full tensor; the others return null.
     */
    private Tensor exchangeShard(TensorShard mine, Tensor held) {
        Tensor local = held.contiguous();                                                      // localShape
        long[] where = {mine.dim(), mine.start(), mine.length(), local.numel()};
        long[] all = Torch.toLongs(group.allGather(Torch.longs(where, device), 0));            // (size * 4) int64
        long most = 0;
        for (int r = 0; r < group.size(); r++) most = Math.max(most, all[r * SHARD_WORDS + 3]);
        Tensor padded = Torch.zeros(Torch.options(local.scalar_type(), device), most);       // (most)
        padded.narrow(0, 0, local.numel()).copy_(local.reshape(-1));
        Tensor gathered = group.allGather(padded, 0);                                         // (size * most)
        if (group.rank() != ROOT) return null;
        long[] fullShape = mine.fullShape();
        Tensor full = Torch.empty(Torch.options(local.scalar_type(), device), fullShape);
        for (int r = 0; r < group.size(); r++) {
            int dim = (int) all[r * SHARD_WORDS];
            long start = all[r * SHARD_WORDS + 1], length = all[r * SHARD_WORDS + 2], n = all[r * SHARD_WORDS + 3];
            long[] shape = fullShape.clone();
            if (dim >= 0) shape[dim] = length;
            Tensor part = gathered.narrow(0, r * most, n).view(shape);
            if (dim < 0) {
                if (r == ROOT) full.copy_(part);   // every rank holds the same: rank 0's is the value
            } else {
                full.narrow(dim, start, length).copy_(part);
            }
        }
        return full;
    }

    /** A worker, after a WEIGHTS message: receives each value it named, in the model's {@code dtype}, into {@code sink}. */
    public void receiveParameters(Received m, ScalarType dtype, ParameterSink sink) {
        for (ForwardBatchWire.Parameter p : m.parameters()) {
            try (PointerScope scope = new PointerScope()) {   // one full parameter on the device at a time
                Tensor v = Torch.empty(Torch.options(dtype, device), p.shape());                // the full parameter
                group.broadcast(v, ROOT);
                sink.accept(p.name(), v);
            }
        }
    }

    /**
     * Runs the collectives of a message whose header rank 0 has sent: if this rank fails part way
     * (out of memory, say), the workers are inside a collective it will never join, so the group
     * is marked broken and the failure reported as a lost rank rather than left to desynchronise
     * the next message.
     */
    public <T> T inStep(String what, java.util.function.Supplier<T> collectives) {
        try {
            return collectives.get();
        } catch (RuntimeException | Error e) {
            group.markBroken("rank 0 failed part way through " + what + ", so the ranks are out of step: " + e);
            throw e;
        }
    }

    /**
     * Rank 0: a weight-update group's operation, which every rank then performs, this one too
     * ({@link #perform}); nothing at one rank.
     */
    public void sendGroupOp(WeightGroupOp op) {
        requireRoot("send a weight group operation");
        if (group.size() == 1) return;
        ForwardBatchWire.Encoded e = ForwardBatchWire.encodeGroupOp(number + 1, op);
        try (PointerScope scope = new PointerScope()) {
            sendHeader(e.header());
            inStep("sending a weight group operation", () -> {
                group.broadcast(Torch.longs(e.body(), device), ROOT);                         // (bodyWords) int64
                return null;
            });
        }
    }

    /**
     * Every rank, after a GROUP message: runs {@code part}, this rank's share of it, then learns
     * how every rank fared in one all-gather. {@code part}'s failure, whatever it is, is its
     * problem, reported rather than thrown, since the others wait for the report.
     *
     * @param bound the group's deadline, which each rank's part keeps ({@link #groupOpDeadline})
     */
    public <T> WeightGroupOp.Outcome<T> perform(java.util.concurrent.Callable<T> part, Duration bound) {
        WeightGroupOp.Part<T> mine = WeightGroupOp.Part.of(part);
        return new WeightGroupOp.Outcome<>(mine.value(), exchangeProblems(mine.problem(), groupOpDeadline(bound)));
    }

    /**
     * How long the ranks may wait for each other's report on a group operation: twice the
     * group's deadline (joining is a store, then a mesh, each with it) and a margin for the
     * message to reach them.
     */
    public static Duration groupOpDeadline(Duration bound) {
        return bound.multipliedBy(2).plusSeconds(30);
    }

    /** The longest a whole group operation takes on a rank: its part (twice the deadline, at most) and then the report. */
    public static Duration groupOpLimit(Duration bound) {
        return bound.multipliedBy(2).plus(groupOpDeadline(bound));
    }

    /** The UTF-8 bytes of a problem that travel: enough for a sentence, and a fixed size for the all-gather. */
    private static final int PROBLEM_BYTES = 1016;

    /**
     * Each rank's problem, in rank order, null where there was none (at one rank, {@code mine}),
     * waited for no longer than {@code deadline}. A long problem is cut to about a thousand bytes.
     */
    private List<String> exchangeProblems(String mine, Duration deadline) {
        if (group.size() == 1) return java.util.Collections.singletonList(mine);
        int width = 1 + PROBLEM_BYTES / 8;   // every rank's block the same size, for the all-gather
        long[] words = new long[width];
        words[0] = -1;                       // no problem
        if (mine != null) {
            byte[] text = mine.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            // cut to fit: a character split by the cut becomes one replacement character (3 bytes), still within the block
            String fitting = text.length <= PROBLEM_BYTES - 8 ? mine
                    : new String(java.util.Arrays.copyOf(text, PROBLEM_BYTES - 8), java.nio.charset.StandardCharsets.UTF_8);
            long[] packed = new ForwardBatchWire.Words().string(fitting).toArray();
            System.arraycopy(packed, 0, words, 0, packed.length);
        }
        long[] all;
        try (PointerScope scope = new PointerScope()) {
            all = Torch.toLongs(inRoot("exchanging weight group outcomes",
                    () -> group.allGather(Torch.longs(words, device), 0, deadline)));              // (size * width) int64
        }
        List<String> out = new java.util.ArrayList<>(group.size());
        for (int r = 0; r < group.size(); r++) {
            long[] block = java.util.Arrays.copyOfRange(all, r * width, (r + 1) * width);
            out.add(block[0] < 0 ? null : new ForwardBatchWire.Words.Reader(block).string());
        }
        return out;
    }

    /** {@link #inStep} on rank 0; a worker's failure already ends its loop. */
    private <T> T inRoot(String what, java.util.function.Supplier<T> collectives) {
        return group.rank() == ROOT ? inStep(what, collectives) : collectives.get();
    }

    /** The first message's words: a marker of this build's wire, the KV cache's blocks and tokens per block. */
    private static final int CACHE_WORDS = 4;

    /**
     * Rank 0, once, before the first step: the size of the KV cache it chose (from its own
     * memory, or as configured), which every rank allocates for its KV heads. Waits for the
     * slowest worker to load its shard, for at most {@code deadline}.
     */
    public void announceCache(int numBlocks, int blockSize, Duration deadline) {
        requireRoot("announce the KV cache");
        if (group.size() == 1) return;
        Tensor t = Torch.longs(new long[] {ForwardBatchWire.MAGIC, ForwardBatchWire.VERSION, numBlocks, blockSize}, device);  // (4) int64
        group.broadcast(t, ROOT, deadline);
        lastSentNanos = System.nanoTime();
    }

    /** A worker, once, after loading its shard: {numBlocks, blockSize} of rank 0's announcement, waited for no longer than {@code deadline}. */
    public int[] awaitCache(Duration deadline) {
        if (group.rank() == ROOT) throw new IllegalStateException("rank 0 announces the KV cache; it awaits none");
        Tensor t = Torch.zeros(Torch.options(ScalarType.Long, device), CACHE_WORDS);                                  // (4) int64
        group.broadcast(t, ROOT, deadline);
        long[] w = Torch.toLongs(t);
        if (w[0] != ForwardBatchWire.MAGIC || w[1] != ForwardBatchWire.VERSION)
            throw new IllegalStateException("rank 0's first message is of another build (wire " + w[1] + ", this rank reads "
                    + ForwardBatchWire.VERSION + "): every rank must run the same build");
        return new int[] {Math.toIntExact(w[2]), Math.toIntExact(w[3])};
    }

    /**
     * Rank 0, between steps: an {@link #idle()} if nothing was sent for {@code intervalNanos}, so
     * that a worker's deadline never passes while rank 0 is alive and merely has nothing to run.
     */
    public void keepAlive(long nowNanos, long intervalNanos) {
        if (group.size() > 1 && nowNanos - lastSentNanos >= intervalNanos) idle();
    }

    /** Rank 0: sends the step that it is about to run itself. At one rank nothing is sent. */
    public void send(ForwardBatch batch, List<Tensor> logitsRows) {
        requireRoot("send a step");
        if (group.size() == 1) return;
        ForwardBatchWire.Encoded e = ForwardBatchWire.encode(number + 1, batch, logitsRows);
        sendHeader(e.header());
        group.broadcast(Torch.longs(e.body(), device), ROOT);                                 // (bodyWords) int64
        if (e.floats().length > 0) group.broadcast(Torch.floats(e.floats(), device), ROOT);   // (floatWords) float32
    }

    /** Rank 0: tells the workers that it is alive and has nothing to run; their deadline starts again. */
    public void idle() {
        signal(Kind.IDLE);
    }

    /** Rank 0: ends the workers' loops; the last message. */
    public void stop() {
        signal(Kind.STOP);
    }

    private void signal(Kind kind) {
        requireRoot("send " + kind);
        if (group.size() == 1) return;
        sendHeader(ForwardBatchWire.signal(kind, number + 1));
    }

    /** Starts rank 0's next message: {@code h} must carry the next number. */
    private void sendHeader(Header h) {
        number = h.number();
        lastSentNanos = System.nanoTime();
        group.broadcast(Torch.longs(h.words(), device), ROOT);                                // (HEADER_WORDS) int64
    }

    /**
     * A worker: the next message, waited for no longer than the group's deadline. Throws an
     * IllegalStateException naming the broadcast and the message it waited for if rank 0 is lost,
     * and if a message comes out of order or from another build.
     */
    public Received receive() {
        if (group.rank() == ROOT) throw new IllegalStateException("rank 0 sends the steps; it receives none");
        long expected = number + 1;
        try {
            Tensor h = Torch.zeros(Torch.options(ScalarType.Long, device), ForwardBatchWire.HEADER_WORDS);   // (HEADER_WORDS) int64
            group.broadcast(h, ROOT);
            Header header = Header.read(Torch.toLongs(h));
            if (header.number() != expected)
                throw new IllegalStateException("message #" + header.number() + " came; this rank expected #" + expected
                        + ": the ranks are out of step");
            number = expected;
            if (header.kind() == Kind.WEIGHTS || header.kind() == Kind.READ)
                return new Received(header.kind(), number, null, ForwardBatchWire.decodeParameters(receiveBody(header)), null, null);
            if (header.kind() == Kind.MEMORY)
                return new Received(Kind.MEMORY, number, null, List.of(), Memory.of(receiveBody(header)), null);
            if (header.kind() == Kind.GROUP)
                return new Received(Kind.GROUP, number, null, List.of(), null, ForwardBatchWire.decodeGroupOp(receiveBody(header)));
            if (header.kind() != Kind.STEP) return new Received(header.kind(), number, null);
            Tensor body = Torch.empty(Torch.options(ScalarType.Long, device), header.bodyWords());           // (bodyWords) int64
            group.broadcast(body, ROOT);
            Tensor floats = null;
            if (header.floatWords() > 0) {
                floats = Torch.empty(Torch.options(ScalarType.Float, device), header.floatWords());         // (floatWords) float32
                group.broadcast(floats, ROOT);
            }
            return new Received(Kind.STEP, number, ForwardBatchWire.decode(header, body, floats, device));
        } catch (IllegalStateException e) {
            throw new IllegalStateException("tensor-parallel rank " + group.rank() + " of " + group.size() + " got no step message #"
                    + expected + " from rank 0: " + e.getMessage(), e);
        }
    }

    /** A control message's int64 body, on the host. */
    private long[] receiveBody(Header header) {
        Tensor body = Torch.empty(Torch.options(ScalarType.Long, device), header.bodyWords());   // (bodyWords) int64
        group.broadcast(body, ROOT);
        return Torch.toLongs(body);
    }

    private void requireRoot(String what) {
        if (group.rank() != ROOT) throw new IllegalStateException("only rank 0 may " + what + "; this is rank " + group.rank());
    }
}
