package dev.rollout.ranks;

import dev.rollout.dist.C10d;
import dev.rollout.model.C10dTpGroup;
import dev.rollout.model.CausalLm;
import dev.rollout.model.DeviceMemory;
import dev.rollout.model.ForwardBatch;
import dev.rollout.model.Kernels;
import dev.rollout.model.KvCache;
import dev.rollout.model.StepBroadcast;
import dev.rollout.model.TensorShard;
import dev.rollout.model.Torch;
import dev.rollout.model.TpGroup;
import dev.rollout.dist.WeightGroupOp;
import dev.rollout.weights.WeightGroups;
import dev.rollout.runtime.DefaultModel;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.function.Function;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * A tensor-parallel rank other than 0: a process with no HTTP that holds its shard of the model
 * and its part of the KV cache, and runs each step rank 0 sends it ({@link StepBroadcast}) until
 * rank 0 stops it or is lost. Settings are the server's own keys, read as MicroProfile Config
 * would read them (system properties, then environment variables such as ROLLOUT_TP_SIZE, then
 * the build's defaults), so a node is configured like the server.
 *
 * <pre>
 *   java -cp BUILD dev.rollout.ranks.Worker
 *       with rollout.tp-rank: runs that rank (the server starts its own node's ranks so)
 *       without, on node rollout.node-rank &gt; 0: starts the node's ranks, one process each, and
 *       exits when they have, with the first one's nonzero exit code
 * </pre>
 */
public final class Worker {
    private static final Logger LOG = Logger.getLogger(Worker.class.getName());
    /** The rank a worker process runs; set by whoever starts it. */
    public static final String RANK_KEY = "rollout.tp-rank";
    private static final String DEFAULTS = "/META-INF/microprofile-config.properties";

    private Worker() {}

    public static void main(String[] args) {
        int code;
        try {
            Function<String, String> settings = settings();
            WorkerSettings w = WorkerSettings.read(settings);
            String rank = settings.apply(RANK_KEY);
            code = rank == null ? runNode(w) : runRank(w, Integer.parseInt(rank.strip()));
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "the worker failed", t);
            code = 1;
        }
        System.exit(code);
    }

    /**
     * The settings of this process: a system property, else the environment variable that
     * MicroProfile Config maps the key to (ROLLOUT_MODEL_PATH for rollout.model.path), else the
     * build's default.
     */
    static Function<String, String> settings() throws IOException {
        Properties defaults = new Properties();
        try (InputStream in = Worker.class.getResourceAsStream(DEFAULTS)) {
            if (in != null) defaults.load(in);
        }
        Map<String, String> env = System.getenv();
        return key -> {
            String v = System.getProperty(key);
            if (v == null) v = env.get(key);
            String mapped = key.replaceAll("[^A-Za-z0-9]", "_");
            if (v == null) v = env.get(mapped);
            if (v == null) v = env.get(mapped.toUpperCase(Locale.ROOT));
            if (v == null) v = defaults.getProperty(key);
            return v;
        };
    }

    /** Node mode: this node's ranks, one process each. */
    private static int runNode(WorkerSettings w) throws IOException, InterruptedException {
        RankSettings r = w.ranks();
        if (r.nodeRank() == 0)
            throw new IllegalArgumentException("node 0 runs the server, which starts its own workers; start this on the nodes with "
                    + "rollout.node-rank 1 to " + (r.nnodes() - 1));
        List<Integer> ranks = new ArrayList<>();
        for (int i = 0; i < r.ranksPerNode(); i++) ranks.add(r.firstRank() + i);
        LOG.info(() -> "node " + r.nodeRank() + " of " + r.nnodes() + ": starting tensor-parallel ranks " + ranks + " to meet rank 0 at "
                + r.initAddr());
        WorkerProcesses workers = WorkerProcesses.start(WorkerProcesses.Launch.likeThisJvm(System.getProperty("java.class.path")),
                w.handedOn(), ranks, why -> {});
        int code = workers.awaitAll();
        workers.close();
        return code;
    }

    /** One rank: join, load the shard, allocate the announced cache, run steps until told to stop. */
    static int runRank(WorkerSettings w, int rank) throws IOException {
        RankSettings r = w.ranks();
        if (rank < r.firstRank() || rank >= r.firstRank() + r.ranksPerNode() || rank == 0)
            throw new IllegalArgumentException("rank " + rank + " is not a worker rank of node " + r.nodeRank() + " (its ranks are "
                    + r.firstRank() + " to " + (r.firstRank() + r.ranksPerNode() - 1) + "; rank 0 is the server)");
        if (w.torchThreads() > 0) torch.set_num_threads(w.torchThreads());
        Device device = w.model().device(rank - r.firstRank());
        Kernels kernels = w.model().kernels(r.tpSize(), device);
        C10d.Backend backend = device.is_cuda() ? C10d.Backend.NCCL : C10d.Backend.GLOO;
        long t0 = System.nanoTime();
        try (InferenceMode guard = new InferenceMode();
             TpGroup tp = C10dTpGroup.join(r.initHost(), r.initPort(), rank, r.tpSize(), backend, r.joinTimeout(), r.stepTimeout())) {
            CausalLm lm = w.model().load(tp, device, kernels);
            StepBroadcast steps = new StepBroadcast(tp, device);
            int[] kv = steps.awaitCache(r.joinTimeout());
            Shard shard = new Shard(lm, kv[0], kv[1], w.model().device(rank - r.firstRank()).str().getString(), rank, r.tpSize());
            LOG.info(() -> String.format("tensor-parallel rank %d of %d ready on %s in %.1f s: %s, %d of %d query heads, %d KV heads, "
                            + "KV cache of %d blocks of %d", rank, r.tpSize(), device.str().getString(), (System.nanoTime() - t0) / 1e9,
                    lm.config().architecture(), lm.layout().heads(), lm.config().numHeads(), lm.layout().kvHeads(), kv[0], kv[1]));
            long steps0 = shard.follow(steps);
            LOG.info(() -> "tensor-parallel rank " + rank + " stopped by rank 0 after " + steps0 + " steps");
            shard.close();
            return 0;
        }
    }

    /**
     * A worker's part of the model and of the KV cache, and while its weights are released, their
     * host copy and the parts of updates that came meanwhile, as rank 0 keeps its own.
     */
    static final class Shard {
        private final CausalLm lm;
        private final int kvBlocks, blockSize;
        private KvCache cache;                                              // null while released
        private Map<String, Tensor> hostCopy;                               // kept from the first release with a copy on
        private boolean hostCopyHeld;                                       // the last release made one, the resume has not used it
        private final Map<String, Tensor> pending = new java.util.LinkedHashMap<>();   // this rank's parts of updates while released
        private final Map<String, TensorShard> parts = new java.util.LinkedHashMap<>(); // the table is gone while released
        private final String device;
        private final int rank, tpSize;
        private WeightGroups groups;                                         // made at the first GROUP message

        Shard(CausalLm lm, int kvBlocks, int blockSize, String device, int rank, int tpSize) {
            this.lm = lm;
            this.kvBlocks = kvBlocks;
            this.blockSize = blockSize;
            this.device = device;
            this.rank = rank;
            this.tpSize = tpSize;
            this.cache = allocateCache();
            for (String name : lm.parameters().names()) parts.put(name, lm.parameters().shard(name));
        }

        /**
         * The trainer's weight-update groups, as rank 0 keeps them: this rank joins each one, takes
         * part in each push and leaves it when rank 0 says (the timeout travels with each operation).
         */
        private WeightGroups groups(StepBroadcast from) {
            if (groups == null) {
                groups = new WeightGroups(new WeightGroups.Settings(java.time.Duration.ZERO, device, tpSize, rank,
                        WeightGroups.maxPushBytes(parts.values().stream().map(TensorShard::fullShape).toList())),
                        new WeightGroups.Ranks() {
                            @Override
                            public <T> WeightGroupOp.Outcome<T> run(WeightGroupOp op, java.time.Duration bound,
                                                                   java.util.concurrent.Callable<T> here) {
                                return from.perform(here, bound);   // rank 0 sent op; every rank now does its part
                            }
                        });
            }
            return groups;
        }

        private KvCache allocateCache() {
            return new KvCache(lm.shardConfig(), kvBlocks, blockSize, lm.dtype(), lm.device());
        }

        /**
         * Runs rank 0's steps, copies in the parameter values it sends, hands it checksums and
         * shards, and releases or takes back memory as it says, until it sends STOP; returns the number of
         * steps run. Throws when rank 0 is lost.
         */
        long follow(StepBroadcast from) {
            long steps = 0;
            while (true) {
                StepBroadcast.Memory memory = null;
                WeightGroupOp group = null;
                try (PointerScope scope = new PointerScope()) {   // frees each message's tensors
                    StepBroadcast.Received m = from.receive();
                    switch (m.kind()) {
                        case STOP -> {
                            return steps;
                        }
                        case IDLE -> { }
                        case WEIGHTS -> from.receiveParameters(m, lm.dtype(), this::update);
                        case CHECKSUMS -> from.sendChecksums(checksums());
                        case READ -> {
                            String name = m.parameters().get(0).name();
                            from.sendShard(parts.get(name), readable().get(name));
                        }
                        case MEMORY -> memory = m.memory();
                        case GROUP -> group = m.group();
                        case STEP -> {
                            execute(lm, cache, m.step().batch(), m.step().logitsRows());
                            steps++;
                        }
                    }
                }
                // outside the message's scope, which would free the weights and the cache it allocates, and a group's store
                if (memory != null) memory(memory);
                if (group != null) groups(from).follow(group);
            }
        }

        /** SHA-256 of each part this rank holds now (as rank 0 hashes its own). */
        private java.util.TreeMap<String, String> checksums() {
            java.util.TreeMap<String, String> sums = new java.util.TreeMap<>();
            readable().forEach((name, part) -> sums.put(name, Torch.sha256(part)));
            return sums;
        }

        /**
         * The parts this rank holds now: its weights, or while they are released, their host copy.
         * Rank 0 asks only when it holds its own copy, and every rank kept one when it did.
         */
        private Map<String, Tensor> readable() {
            if (!lm.weightsReleased()) {
                Map<String, Tensor> live = new java.util.LinkedHashMap<>();
                for (String name : lm.parameters().names()) live.put(name, lm.parameters().get(name));
                return live;
            }
            if (!hostCopyHeld) throw new IllegalStateException("rank 0 asked for released weights, and this rank kept no host copy");
            return hostCopy;
        }

        /** A parameter's new full value: into the weights, or while they are released, into host memory until the resume. */
        private void update(String name, Tensor full) {
            if (!lm.weightsReleased()) {
                lm.parameters().copyFull(name, full);
                return;
            }
            Tensor part = parts.get(name).narrow(full);
            if (hostCopyHeld) {
                hostCopy.get(name).copy_(part);
            } else {
                Tensor copy = Torch.hostCopy(part.contiguous());
                copy.retainReference();   // kept past the message's scope (which releases one reference) until the resume closes it
                Tensor earlier = pending.put(name, copy);
                if (earlier != null) earlier.close();
            }
        }

        /** As rank 0 did: each part released or taken again once (a repeated message changes nothing). */
        private void memory(StepBroadcast.Memory m) {
            if (m.release()) {
                if (m.kvCache() && cache != null) {
                    cache.release();
                    cache = null;
                }
                if (m.weights() && !lm.weightsReleased()) {
                    if (m.hostCopy()) keepHostCopy();
                    hostCopyHeld = m.hostCopy();
                    lm.releaseWeights();
                }
                DeviceMemory.giveBack(lm.device());
            } else {
                if (m.weights() && lm.weightsReleased()) {
                    lm.reallocateWeights();
                    try (PointerScope scope = new PointerScope()) {
                        if (m.hostCopy()) {
                            if (!hostCopyHeld) throw new IllegalStateException("rank 0 restores its weights from a host copy, and this rank has none");
                            hostCopy.forEach((name, host) -> lm.parameters().get(name).copy_(host));
                        }
                        pending.forEach((name, host) -> lm.parameters().get(name).copy_(host));   // updates made while released
                    }
                    hostCopyHeld = false;
                    pending.values().forEach(Tensor::close);
                    pending.clear();
                }
                if (m.kvCache() && cache == null) cache = allocateCache();
            }
        }

        private void keepHostCopy() {
            if (hostCopy == null) {  // allocated once, outside any scope, and reused
                hostCopy = new java.util.LinkedHashMap<>();
                for (String name : lm.parameters().names()) hostCopy.put(name, Torch.hostCopy(lm.parameters().get(name)));
            } else {
                try (PointerScope scope = new PointerScope()) {
                    hostCopy.forEach((name, host) -> host.copy_(lm.parameters().get(name)));
                }
            }
        }

        void close() {
            if (groups != null) groups.close();
            if (cache != null) cache.release();
            if (!lm.weightsReleased()) lm.releaseWeights();
            if (hostCopy != null) hostCopy.values().forEach(Tensor::close);
            pending.values().forEach(Tensor::close);
        }
    }

    /**
     * One step on a worker: the forward, then each logits call in rank 0's order (each is an
     * all-gather that every rank joins; rank 0 alone samples from the result).
     */
    static void execute(CausalLm lm, KvCache cache, ForwardBatch batch, List<Tensor> logitsRows) {
        Tensor hidden = lm.forward(batch, cache);                          // (T, hidden)
        for (Tensor rows : logitsRows)
            try (PointerScope slice = new PointerScope()) {   // each call's gathered logits go before the next, as on rank 0
                lm.logits(hidden.index_select(0, rows));                   // (rows, vocab) f32, gathered
            }
    }

    /**
     * The settings a worker process needs, as rollout.* keys, with the values rank 0 resolved
     * (the model's directory, the port it chose): what the server and a node's launcher hand on.
     */
    public static Map<String, String> handOn(RankSettings r, ModelSpec m, int torchThreads) {
        Map<String, String> s = new java.util.LinkedHashMap<>();
        s.put("rollout.tp-size", String.valueOf(r.tpSize()));
        s.put("rollout.nnodes", String.valueOf(r.nnodes()));
        s.put("rollout.node-rank", String.valueOf(r.nodeRank()));
        s.put("rollout.dist-init-addr", r.initAddr());
        s.put("rollout.dist-timeout-seconds", String.valueOf(r.stepTimeout().toMillis() / 1000.0));
        s.put("rollout.dist-join-timeout-seconds", String.valueOf(r.joinTimeout().toMillis() / 1000.0));
        s.put("rollout.model.path", m.modelDir().toAbsolutePath().toString());
        s.put("rollout.load-format", m.loadFormat());
        s.put("rollout.dummy-seed", String.valueOf(m.dummySeed()));
        s.put("rollout.device", m.device());
        s.put("rollout.dtype", m.dtype());
        s.put("rollout.native-kernels", String.valueOf(m.nativeKernels()));
        s.put("rollout.cuda-graphs", String.valueOf(m.cudaGraphs()));
        s.put("rollout.fp32-lm-head", String.valueOf(m.fp32LmHead()));
        s.put("rollout.deterministic", String.valueOf(m.deterministic()));
        s.put("rollout.torch-threads", String.valueOf(torchThreads));
        return s;
    }

    /**
     * What a worker reads: the rank settings, the model and its threads.
     *
     * @param handedOn the settings as rollout.* keys, for the processes a node starts
     */
    record WorkerSettings(RankSettings ranks, ModelSpec model, int torchThreads, Map<String, String> handedOn) {
        static WorkerSettings read(Function<String, String> get) throws IOException {
            RankSettings ranks = RankSettings.of(integer(get, "rollout.tp-size"), integer(get, "rollout.nnodes"),
                    integer(get, "rollout.node-rank"), get.apply("rollout.dist-init-addr"), number(get, "rollout.dist-timeout-seconds"),
                    number(get, "rollout.dist-join-timeout-seconds"));
            String path = get.apply("rollout.model.path");
            Path dir = path == null || path.isBlank()
                    ? DefaultModel.materialize(Path.of(orElse(get.apply("rollout.cache-dir"), System.getProperty("java.io.tmpdir"))))
                    : Path.of(path);
            ModelSpec model = new ModelSpec(dir, required(get, "rollout.load-format"), Long.parseLong(required(get, "rollout.dummy-seed")),
                    required(get, "rollout.device"), required(get, "rollout.dtype"), bool(get, "rollout.native-kernels"),
                    bool(get, "rollout.cuda-graphs"), bool(get, "rollout.fp32-lm-head"),
                    Boolean.parseBoolean(orElse(get.apply("rollout.deterministic"), "false")));
            int threads = integer(get, "rollout.torch-threads");
            return new WorkerSettings(ranks, model, threads, handOn(ranks, model, threads));
        }

        private static String required(Function<String, String> get, String key) {
            String v = get.apply(key);
            if (v == null || v.isBlank()) throw new IllegalArgumentException(key + " is not set");
            return v.strip();
        }

        private static String orElse(String v, String otherwise) {
            return v == null || v.isBlank() ? otherwise : v;
        }

        private static int integer(Function<String, String> get, String key) {
            try {
                return Integer.parseInt(required(get, key));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(key + " must be an integer, not " + get.apply(key));
            }
        }

        private static double number(Function<String, String> get, String key) {
            try {
                return Double.parseDouble(required(get, key));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(key + " must be a number, not " + get.apply(key));
            }
        }

        private static boolean bool(Function<String, String> get, String key) {
            return Boolean.parseBoolean(required(get, key));
        }
    }
}
