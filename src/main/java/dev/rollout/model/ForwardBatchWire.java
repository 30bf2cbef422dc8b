package dev.rollout.model;

import java.util.ArrayList;
import java.util.Arrays;
import dev.rollout.dist.WeightGroupOp;
import java.util.List;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A step of the model ({@link ForwardBatch} and the rows whose logits are taken) as three flat
 * tensors, so that rank 0 can send it to the other tensor-parallel ranks in three broadcasts,
 * whatever the batch holds: a fixed-size int64 header (receivers must know the sizes before they
 * can allocate), an int64 body, and the float32 values of the rows given as embeddings. Decoding
 * gives back every tensor with its exact dtype, shape and values, and every int.
 *
 * <p>Body: a directory, then the tensors' words one after the other.
 * <pre>
 *   directory  hasDecode, prefillGroups, hasEmbeds, logitsCalls,
 *              [decode: batch, maxContext, maxBlocks], [each prefill group: chunks, maxQuery, maxContext],
 *              then each tensor in the fixed order below: its encoding (ABSENT, LONGS, BITS, FLOATS),
 *              its number of dims, its dims
 *   tensors    inputIds, positions, slotMapping,
 *              [decode: tokenIndex, slots, mask, blockTable, seqLens],
 *              [each prefill group: rows, queryPos, slots, valid, targets],
 *              [embeds: rows, values], each logits call's rows
 * </pre>
 * int64 tensors take a word per element; the decode mask (bool) 64 elements a word, since the
 * gathered layout's mask has an element per context position of every sequence; the embeddings'
 * values travel in the float tensor (the body only names their shape and dtype). The header names
 * the wire's version, so that a rank of another build refuses the step rather than misread it.
 * Encoding runs on the host; decoding leaves the int64 tensors as views of the received body, on
 * its device, so that a worker copies nothing but the small directory (and a mask) to the host.
 */
public final class ForwardBatchWire {
    /** The header's first word: "RSTP", a step of the rollout server. */
    public static final long MAGIC = 0x52535450L;
    /** Raised whenever the layout of the header or the body changes (2: WEIGHTS; 3: CHECKSUMS; 4: MEMORY; 5: READ; 6: GROUP). */
    public static final long VERSION = 6;
    /** Words of the header: magic, version, kind, number, directory words, body words, float words. */
    public static final int HEADER_WORDS = 7;

    /** What a message tells the workers. */
    public enum Kind {
        /** Run this forward and these logits. */
        STEP(1),
        /** Nothing to run: rank 0 is alive, so the workers' deadline starts again. */
        IDLE(2),
        /** The loop ends: rank 0 leaves the group. */
        STOP(3),
        /**
         * New values of named parameters: the body names them and their full shapes, then each
         * full value follows in its own broadcast, in the model's dtype; every rank copies its shard.
         */
        WEIGHTS(4),
        /** Every rank's checksums of its shards, gathered to rank 0 (an all-gather every rank joins). */
        CHECKSUMS(5),
        /** Memory released or taken again (release/resume_memory_occupation): a few words of body ({@link StepBroadcast.Memory}). */
        MEMORY(6),
        /** One parameter put back together on rank 0 from every rank's shard (two all-gathers every rank joins); the body names it. */
        READ(7),
        /**
         * A weight-update group's operation (join, receive a push, leave) that every rank performs
         * at once, then reports on in an all-gather: the body is a {@link WeightGroupOp}.
         */
        GROUP(8);

        final long code;

        Kind(long code) {
            this.code = code;
        }

        static Kind of(long code) {
            for (Kind k : values()) if (k.code == code) return k;
            throw new IllegalStateException("a step message of kind " + code + ", which this build does not know");
        }
    }

    /**
     * The fixed-size first message.
     *
     * @param number         rank 0's count of messages, from 1: a worker that sees another number is out of step
     * @param directoryWords the body's directory, which the receiver reads on the host
     * @param bodyWords      int64 words of the body, directory included (0 unless a step)
     * @param floatWords     float32 values of the embeddings (0 when none)
     */
    public record Header(Kind kind, long number, int directoryWords, long bodyWords, long floatWords) {
        public long[] words() {
            return new long[] {MAGIC, VERSION, kind.code, number, directoryWords, bodyWords, floatWords};
        }

        /** Reads a received header; a header of another build or of no step at all is refused by name. */
        public static Header read(long[] w) {
            if (w.length != HEADER_WORDS || w[0] != MAGIC)
                throw new IllegalStateException("the step header is no rollout step (" + Arrays.toString(w) + "): the ranks run different builds");
            if (w[1] != VERSION)
                throw new IllegalStateException("the step header has wire version " + w[1] + "; this rank reads version " + VERSION
                        + ": every rank must run the same build");
            return new Header(Kind.of(w[2]), w[3], Math.toIntExact(w[4]), w[5], w[6]);
        }
    }

    /** A step on the host, ready to send: {@code body} (bodyWords) int64, {@code floats} (floatWords) float32. */
    public record Encoded(Header header, long[] body, float[] floats) {}

    /**
     * A step as the workers run it.
     *
     * @param logitsRows each {@code logits()} call of the step, in order: (n) int64 rows of the
     *                   forward's hidden states. Workers make the same calls, since each is an
     *                   all-gather that every rank must join.
     */
    public record Step(ForwardBatch batch, List<Tensor> logitsRows) {}

    private static final long ABSENT = -1, LONGS = 0, BITS = 1, FLOATS = 2;

    private ForwardBatchWire() {}

    /** A parameter of a WEIGHTS message: its name and its full shape. */
    public record Parameter(String name, long[] shape) {}

    /**
     * A WEIGHTS (or READ) message's body: the count, then per parameter its number of dims, its
     * dims, the length of its UTF-8 name and the name's bytes, eight to a word (little-endian).
     */
    public static Encoded encodeParameters(long number, List<Parameter> parameters) {
        return encodeParameters(Kind.WEIGHTS, number, parameters);
    }

    /** {@link #encodeParameters(long, List)} for a message of {@code kind}. */
    public static Encoded encodeParameters(Kind kind, long number, List<Parameter> parameters) {
        Words w = new Words();
        w.add(parameters.size());
        for (Parameter p : parameters) {
            w.shape(p.shape());
            w.string(p.name());
        }
        long[] body = w.toArray();
        return new Encoded(new Header(kind, number, body.length, body.length, 0), body, new float[0]);
    }

    /** The parameters a WEIGHTS body names, in order. */
    public static List<Parameter> decodeParameters(long[] body) {
        Words.Reader r = new Words.Reader(body);
        List<Parameter> out = new ArrayList<>();
        int count = r.int32();
        for (int k = 0; k < count; k++) {
            long[] shape = r.shape();
            out.add(new Parameter(r.string(), shape));
        }
        r.end("a WEIGHTS body");
        return out;
    }

    /** A GROUP message: a weight-update group's operation, for every rank to perform ({@link WeightGroupOp}). */
    public static Encoded encodeGroupOp(long number, WeightGroupOp op) {
        // op, timeout, flattened, group name, [spec], tensors
        Words w = new Words().add(op.op().ordinal()).add(op.timeout()).add(op.flattened() ? 1 : 0).string(op.groupName());
        WeightGroupOp.Spec spec = op.spec();
        if (spec != null)
            w.string(spec.masterAddress()).add(spec.masterPort()).add(spec.rankOffset()).add(spec.worldSize()).string(spec.backend());
        w.add(op.tensors().size());
        for (WeightGroupOp.Announced a : op.tensors()) w.string(a.name()).string(a.dtype()).shape(a.shape());
        long[] body = w.toArray();
        return new Encoded(new Header(Kind.GROUP, number, body.length, body.length, 0), body, new float[0]);
    }

    /** The operation a GROUP body carries. */
    public static WeightGroupOp decodeGroupOp(long[] body) {
        Words.Reader r = new Words.Reader(body);
        WeightGroupOp.Op op = WeightGroupOp.Op.values()[r.int32()];
        long timeout = r.next();
        boolean flattened = r.next() == 1;
        String name = r.string();
        // arguments are read left to right, in the order written
        WeightGroupOp.Spec spec = op != WeightGroupOp.Op.JOIN ? null : new WeightGroupOp.Spec(r.string(), r.int32(), r.int32(), r.int32(), name, r.string());
        int count = r.int32();
        List<WeightGroupOp.Announced> tensors = new ArrayList<>(count);
        for (int i = 0; i < count; i++) tensors.add(new WeightGroupOp.Announced(r.string(), r.string(), r.shape()));
        r.end("a GROUP body");
        return new WeightGroupOp(op, name, spec, timeout, tensors, flattened);
    }

    /**
     * Control bodies as int64 words: numbers as they are, a shape as its number of dims then its
     * dims, a string as the length of its UTF-8 bytes then the bytes, eight to a word
     * (little-endian).
     */
    static final class Words {
        private long[] w = new long[16];
        private int n;

        Words add(long v) {
            if (n == w.length) w = Arrays.copyOf(w, 2 * n);
            w[n++] = v;
            return this;
        }

        Words shape(long[] shape) {
            add(shape.length);
            for (long d : shape) add(d);
            return this;
        }

        Words string(String s) {
            byte[] b = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            add(b.length);
            for (int i = 0; i < b.length; i += 8) {
                long word = 0;
                for (int j = 0; j < 8 && i + j < b.length; j++) word |= (b[i + j] & 0xFFL) << (8 * j);
                add(word);
            }
            return this;
        }

        long[] toArray() {
            return Arrays.copyOf(w, n);
        }

        /** Reads what a {@link Words} wrote, in the same order. */
        static final class Reader {
            private final long[] body;
            private int at;

            Reader(long[] body) {
                this.body = body;
            }

            long next() {
                if (at >= body.length) throw new IllegalStateException("a control body of " + body.length + " words ended early");
                return body[at++];
            }

            int int32() {
                return Math.toIntExact(next());
            }

            long[] shape() {
                long[] shape = new long[int32()];
                for (int i = 0; i < shape.length; i++) shape[i] = next();
                return shape;
            }

            String string() {
                byte[] b = new byte[int32()];
                for (int i = 0; i < b.length; i++) {
                    if (i % 8 == 0) next();
                    b[i] = (byte) (body[at - 1] >>> (8 * (i % 8)));
                }
                return new String(b, java.nio.charset.StandardCharsets.UTF_8);
            }

            void end(String what) {
                if (at != body.length) throw new IllegalStateException(what + " of " + body.length + " words was read in " + at);
            }
        }
    }

    /** The header of a message without a body: {@link Kind#IDLE} or {@link Kind#STOP}. */
    public static Header signal(Kind kind, long number) {
        if (kind == Kind.STEP || kind == Kind.WEIGHTS || kind == Kind.MEMORY || kind == Kind.READ || kind == Kind.GROUP)
            throw new IllegalArgumentException("a " + kind + " message has a body: encode it");
        return new Header(kind, number, 0, 0, 0);
    }

    /** Encodes a step; its tensors may be on any device (they are copied to the host). */
    public static Encoded encode(long number, ForwardBatch b, List<Tensor> logitsRows) {
        Writer w = new Writer();
        ForwardBatch.DecodeGroup d = b.decode();
        w.dir(d == null ? 0 : 1, b.prefills().size(), b.embeds() == null ? 0 : 1, logitsRows.size());
        if (d != null) w.dir(d.batch(), d.maxContext(), d.maxBlocks());
        for (ForwardBatch.PrefillGroup g : b.prefills()) w.dir(g.chunks(), g.maxQuery(), g.maxContext());
        w.longs("inputIds", b.inputIds());
        w.longs("positions", b.positions());
        w.longs("slotMapping", b.slotMapping());
        if (d != null) {
            w.longs("decode.tokenIndex", d.tokenIndex());
            w.longs("decode.slots", d.slots());
            w.bits("decode.mask", d.mask());
            w.longs("decode.blockTable", d.blockTable());
            w.longs("decode.seqLens", d.seqLens());
        }
        for (ForwardBatch.PrefillGroup g : b.prefills()) {
            w.longs("prefill.rows", g.rows());
            w.longs("prefill.queryPos", g.queryPos());
            w.longs("prefill.slots", g.slots());
            w.longs("prefill.valid", g.valid());
            w.longs("prefill.targets", g.targets());
        }
        if (b.embeds() != null) {
            w.longs("embeds.rows", b.embeds().rows());
            w.floats("embeds.values", b.embeds().values());
        }
        for (Tensor rows : logitsRows) w.longs("logits rows", rows);
        long[] body = w.body();
        return new Encoded(new Header(Kind.STEP, number, w.directory.size(), body.length, w.floats.length), body, w.floats);
    }

    /**
     * The step that {@code body} (bodyWords int64) and {@code floats} (floatWords float32, or null
     * when none) carry, with its tensors on {@code device}: int64 tensors are views of the body
     * (moved there first if it lies elsewhere); the mask and the embeddings are new tensors.
     */
    public static Step decode(Header h, Tensor body, Tensor floats, Device device) {
        if (h.kind() != Kind.STEP) throw new IllegalArgumentException("a " + h.kind() + " message carries no step");
        if (body.numel() != h.bodyWords() || h.directoryWords() > h.bodyWords())
            throw new IllegalStateException("a step body of " + body.numel() + " words; its header says " + h.bodyWords()
                    + ", of which " + h.directoryWords() + " directory");
        Tensor onDevice = body.to(device, ScalarType.Long);   // the body itself when it is there already
        Reader r = new Reader(Torch.toLongs(onDevice.narrow(0, 0, h.directoryWords())), onDevice, h.directoryWords(), floats, device);
        boolean hasDecode = r.dir() == 1;
        int groups = Math.toIntExact(r.dir());
        boolean hasEmbeds = r.dir() == 1;
        int calls = Math.toIntExact(r.dir());
        int[] dec = hasDecode ? new int[] {r.dirInt(), r.dirInt(), r.dirInt()} : null;
        int[][] pre = new int[groups][];
        for (int i = 0; i < groups; i++) pre[i] = new int[] {r.dirInt(), r.dirInt(), r.dirInt()};
        Tensor ids = r.next(), pos = r.next(), slots = r.next();
        ForwardBatch.DecodeGroup decode = null;
        if (hasDecode) {
            Tensor index = r.next(), ctx = r.next(), mask = r.next(), table = r.next(), lens = r.next();
            decode = new ForwardBatch.DecodeGroup(index, ctx, dec[0], dec[1], mask, table, lens, dec[2]);
        }
        List<ForwardBatch.PrefillGroup> prefills = new ArrayList<>(groups);
        for (int[] g : pre) prefills.add(new ForwardBatch.PrefillGroup(g[0], g[1], g[2], r.next(), r.next(), r.next(), r.next(), r.next()));
        ForwardBatch.Embeds embeds = hasEmbeds ? new ForwardBatch.Embeds(r.next(), r.next()) : null;
        List<Tensor> logits = new ArrayList<>(calls);
        for (int i = 0; i < calls; i++) logits.add(r.next());
        r.end(h);
        return new Step(new ForwardBatch(ids, pos, slots, decode, prefills, embeds), logits);
    }

    /** Wire codes of the embeddings' dtypes: the values travel as float32, which holds each of them exactly. */
    private static long dtypeCode(ScalarType t) {
        return switch (t.intern()) {  // intern(): JavaCPP returns native enums as new instances
            case Float -> 0;
            case BFloat16 -> 1;
            case Half -> 2;
            default -> throw new IllegalArgumentException("embeddings of dtype " + t + " cannot be sent: float32, bfloat16 or float16");
        };
    }

    private static ScalarType dtypeOf(long code) {
        return switch ((int) code) {
            case 0 -> ScalarType.Float;
            case 1 -> ScalarType.BFloat16;
            case 2 -> ScalarType.Half;
            default -> throw new IllegalStateException("embeddings of wire dtype " + code + ", which this build does not know");
        };
    }

    private static long[] shape(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int i = 0; i < s.length; i++) s[i] = t.size(i);
        return s;
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** Builds the directory and the data side by side; the body is the one followed by the other. */
    private static final class Writer {
        final List<Long> directory = new ArrayList<>();
        final List<long[]> data = new ArrayList<>();
        float[] floats = new float[0];

        void dir(long... words) {
            for (long x : words) directory.add(x);
        }

        void describe(long encoding, long[] shape) {
            dir(encoding, shape.length);
            dir(shape);
        }

        void longs(String name, Tensor t) {
            if (t == null) {
                dir(ABSENT);
                return;
            }
            // any other integer dtype would come back as int64: not the tensor that was sent
            if (t.scalar_type().intern() != ScalarType.Long) throw new IllegalArgumentException(name + " is " + t.scalar_type() + "; the wire carries int64");
            describe(LONGS, shape(t));
            data.add(Torch.toLongs(t));
        }

        void bits(String name, Tensor t) {
            if (t == null) {
                dir(ABSENT);
                return;
            }
            if (t.scalar_type().intern() != ScalarType.Bool) throw new IllegalArgumentException(name + " is " + t.scalar_type() + "; the wire carries bool");
            describe(BITS, shape(t));
            long[] v = Torch.toLongs(t);   // 0 or 1
            long[] words = new long[(v.length + 63) / 64];
            for (int i = 0; i < v.length; i++) if (v[i] != 0) words[i >>> 6] |= 1L << (i & 63);
            data.add(words);
        }

        void floats(String name, Tensor t) {
            describe(FLOATS, shape(t));
            dir(dtypeCode(t.scalar_type()));
            floats = Torch.toFloats(t);
        }

        long[] body() {
            int n = directory.size();
            for (long[] d : data) n = Math.addExact(n, d.length);
            long[] body = new long[n];
            int at = 0;
            for (long x : directory) body[at++] = x;
            for (long[] d : data) {
                System.arraycopy(d, 0, body, at, d.length);
                at += d.length;
            }
            return body;
        }
    }

    /** Reads the directory on the host and cuts the tensors out of the body in the same order. */
    private static final class Reader {
        final long[] dir;
        final Tensor body, floats;
        final Device device;
        int d;       // next directory word
        long data;   // next body word of data
        boolean floatsTaken;

        Reader(long[] dir, Tensor body, int directoryWords, Tensor floats, Device device) {
            this.dir = dir;
            this.body = body;
            this.floats = floats;
            this.device = device;
            this.data = directoryWords;
        }

        long dir() {
            if (d >= dir.length) throw new IllegalStateException("the step's directory ends early: a corrupt or foreign step");
            return dir[d++];
        }

        int dirInt() {
            return Math.toIntExact(dir());
        }

        Tensor next() {
            long encoding = dir();
            if (encoding == ABSENT) return null;
            long[] shape = new long[dirInt()];
            for (int i = 0; i < shape.length; i++) shape[i] = dir();
            long n = numel(shape);
            long words = encoding == LONGS ? n : encoding == BITS ? (n + 63) / 64 : 0;
            if (n < 0 || data + words > body.numel())
                throw new IllegalStateException("the step's directory names more words than its body has: a corrupt or foreign step");
            if (encoding == LONGS) {
                Tensor t = body.narrow(0, data, n).view(shape);
                data += n;
                return t;
            }
            if (encoding == BITS) {
                long[] w = Torch.toLongs(body.narrow(0, data, words));
                data += words;
                boolean[] v = new boolean[Math.toIntExact(n)];
                for (int i = 0; i < v.length; i++) v[i] = (w[i >>> 6] >>> (i & 63) & 1) != 0;
                return Torch.bools(v, device, shape);
            }
            if (encoding == FLOATS) {
                ScalarType dtype = dtypeOf(dir());
                if (floats == null || floatsTaken || floats.numel() != n)
                    throw new IllegalStateException("the step names " + n + " embedding values; " + (floats == null ? 0 : floats.numel()) + " came");
                floatsTaken = true;
                return floats.to(device, dtype).view(shape);
            }
            throw new IllegalStateException("a tensor of wire encoding " + encoding + ", which this build does not know");
        }

        void end(Header h) {
            if (d != dir.length || data != h.bodyWords())
                throw new IllegalStateException("the step's body has " + h.bodyWords() + " words; its directory describes " + data);
        }
    }
}
