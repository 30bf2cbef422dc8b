package dev.rollout.weights;

import dev.rollout.model.CudaIpc;
import dev.rollout.model.TensorPayloads;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import net.razorvine.pickle.IObjectConstructor;
import net.razorvine.pickle.Opcodes;
import net.razorvine.pickle.PickleException;
import net.razorvine.pickle.PickleUtils;
import net.razorvine.pickle.Unpickler;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * SGLang's and veRL's weight pushes: {@code ForkingPickler} blobs of CUDA tensors (their IPC
 * handles, not their data). Read by a pickle machine that knows only an allow-list of globals:
 * torch's CUDA-tensor rebuild function (and SGLang's patched copy, which names the GPU by UUID),
 * {@code torch.Size}, storage and tensor classes, dtypes, SGLang's {@code LocalSerializedTensor}
 * and {@code FlattenedTensorMetadata}. Every other global, and the opcodes that build objects by
 * name (INST, OBJ, persistent ids, extensions), is refused before anything is built; nothing in a
 * payload ever runs. Off unless {@code rollout.allow-pickle=true}.
 */
public final class TorchPickles {
    private TorchPickles() {}

    /** What a payload held: tensors by name, or one flat uint8 bucket and where each tensor sits in it. */
    public record Decoded(List<CudaIpc.Handle> tensors, CudaIpc.Handle flat, List<TensorPayloads.FlatEntry> flatEntries) {}

    /** @param rank the engine's TP rank: which of a LocalSerializedTensor's values is ours */
    public static Decoded decode(byte[] pickle, int rank) throws IOException {
        Object root = load(pickle);
        if (root instanceof Map<?, ?> m && m.containsKey("flattened_tensor")) {
            CudaIpc.Handle flat = handle("flattened_tensor", m.get("flattened_tensor"), rank);
            List<TensorPayloads.FlatEntry> entries = new ArrayList<>();
            if (!(m.get("metadata") instanceof List<?> metas)) throw new IOException("a flattened bucket needs a metadata list");
            for (Object o : metas) {
                if (!(o instanceof FlatMeta f)) throw new IOException("flattened bucket metadata must be FlattenedTensorMetadata");
                entries.add(f.entry());
            }
            return new Decoded(List.of(), flat, entries);
        }
        if (!(root instanceof List<?> items)) throw new IOException("expected a list of (name, tensor) pairs or a flattened bucket, got "
                + describe(root));
        List<CudaIpc.Handle> out = new ArrayList<>();
        for (Object item : items) {
            if (!(item instanceof Object[] pair) || pair.length != 2 || !(pair[0] instanceof String name))
                throw new IOException("expected (name, tensor) pairs, got " + describe(item));
            out.add(handle(name, pair[1], rank));
        }
        return new Decoded(out, null, List.of());
    }

    private static CudaIpc.Handle handle(String name, Object value, int rank) throws IOException {
        if (value instanceof LocalSerializedTensor l) {
            if (l.values == null || rank >= l.values.size() || !(l.values.get(rank) instanceof byte[] inner))
                throw new IOException(name + ": LocalSerializedTensor has no value for rank " + rank);
            value = load(inner);
        }
        if (!(value instanceof RebuildCall r)) throw new IOException(name + ": expected a CUDA tensor, got " + describe(value));
        return r.handle(name);
    }

    static Object load(byte[] pickle) throws IOException {
        Restricted u = new Restricted();
        try {
            return u.load(new ByteArrayInputStream(pickle));
        } catch (PickleException e) {
            throw new IOException("refused pickle: " + e.getMessage());
        } catch (RuntimeException e) {
            throw new IOException("unreadable pickle: " + e);
        } finally {
            u.close();
        }
    }

    private static String describe(Object o) {
        return o == null ? "None" : o.getClass().getSimpleName();
    }

    // ---- the allow-list ----------------------------------------------------------------

    private static final Map<String, Object> GLOBALS = new HashMap<>();

    static {
        IObjectConstructor rebuild = RebuildCall::new;
        GLOBALS.put("torch.multiprocessing.reductions.rebuild_cuda_tensor", rebuild);
        GLOBALS.put("sglang.srt.utils.patch_torch._rebuild_cuda_tensor_modified", rebuild);
        for (String t : List.of("torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter"))
            GLOBALS.put(t, new Marker(t));
        for (String s : List.of("torch.storage.TypedStorage", "torch.storage.UntypedStorage", "torch.UntypedStorage", "torch.TypedStorage"))
            GLOBALS.put(s, new Marker(s));
        GLOBALS.put("torch.Size", (IObjectConstructor) args -> longs(args[0]));
        Map<String, ScalarType> dtypes = Map.ofEntries(Map.entry("float32", ScalarType.Float), Map.entry("float", ScalarType.Float),
                Map.entry("bfloat16", ScalarType.BFloat16), Map.entry("float16", ScalarType.Half), Map.entry("half", ScalarType.Half),
                Map.entry("float64", ScalarType.Double), Map.entry("double", ScalarType.Double), Map.entry("uint8", ScalarType.Byte),
                Map.entry("int8", ScalarType.Char), Map.entry("int16", ScalarType.Short), Map.entry("int32", ScalarType.Int),
                Map.entry("int64", ScalarType.Long), Map.entry("bool", ScalarType.Bool));
        dtypes.forEach((n, t) -> GLOBALS.put("torch." + n, new DType(t)));
        GLOBALS.put("sglang.srt.model_executor.model_runner.LocalSerializedTensor", (IObjectConstructor) args -> new LocalSerializedTensor());
        GLOBALS.put("sglang.srt.weight_sync.tensor_bucket.FlattenedTensorMetadata", (IObjectConstructor) args -> new FlatMeta());
        GLOBALS.put("collections.OrderedDict", (IObjectConstructor) args -> new LinkedHashMap<>());
    }

    private static final class Restricted extends Unpickler {
        @Override
        protected Object dispatch(short key) throws PickleException, IOException {
            switch (key) {
                case Opcodes.GLOBAL -> {
                    String module = PickleUtils.readline(input);
                    String name = PickleUtils.readline(input);
                    stack.add(resolve(module, name));
                    return NO_RETURN_VALUE;
                }
                case Opcodes.STACK_GLOBAL -> {
                    Object name = stack.pop(), module = stack.pop();
                    stack.add(resolve(String.valueOf(module), String.valueOf(name)));
                    return NO_RETURN_VALUE;
                }
                case Opcodes.INST, Opcodes.OBJ, Opcodes.PERSID, Opcodes.BINPERSID, Opcodes.EXT1, Opcodes.EXT2, Opcodes.EXT4 ->
                        throw new PickleException("opcode " + key + " is not allowed in a weight payload");
                case Opcodes.BINBYTES, Opcodes.BINUNICODE, Opcodes.BINSTRING -> {
                    checkLength(4, key);
                    return super.dispatch(key);
                }
                case Opcodes.BINBYTES8, Opcodes.BINUNICODE8, Opcodes.BYTEARRAY8 -> {
                    checkLength(8, key);
                    return super.dispatch(key);
                }
                default -> {
                    return super.dispatch(key);
                }
            }
        }

        /**
         * The pickle library allocates a byte string's length before reading it; a length from
         * the payload is checked against the bytes that are there first (a 10-byte pickle could
         * claim 2 GB).
         */
        private void checkLength(int width, short key) throws IOException {
            input.mark(width);
            byte[] b = input.readNBytes(width);
            input.reset();
            long n = 0;
            for (int i = width - 1; i >= 0; i--) n = (n << 8) | (b[i] & 0xff);
            long left = input.available() - width;
            if (b.length < width || n < 0 || n > left)
                throw new PickleException("opcode " + key + " claims " + n + " bytes, but " + Math.max(0, left) + " are left in the payload");
        }

        private static Object resolve(String module, String name) {
            Object g = GLOBALS.get(module + "." + name);
            if (g == null) throw new PickleException("global " + module + "." + name + " is not allowed in a weight payload");
            return g;
        }
    }

    /** A global that may appear as a value but must never be called. */
    private record Marker(String name) implements IObjectConstructor {
        @Override
        public Object construct(Object[] args) {
            throw new PickleException(name + " may not be called in a weight payload");
        }
    }

    private record DType(ScalarType type) {}

    /** torch.multiprocessing.reductions.rebuild_cuda_tensor's 15 arguments, not called: read. */
    private record RebuildCall(Object[] a) {
        RebuildCall {
            if (a.length != 15) throw new PickleException("rebuild_cuda_tensor takes 15 arguments, got " + a.length);
        }

        CudaIpc.Handle handle(String name) throws IOException {
            if (!(a[5] instanceof DType dtype)) throw new IOException(name + ": no dtype");
            if (!(a[7] instanceof byte[] mem)) throw new IOException(name + ": no IPC handle");
            String uuid = a[6] instanceof String s ? s : null;
            int index = a[6] instanceof Number n ? n.intValue() : -1;
            return new CudaIpc.Handle(name, dtype.type(), longs(a[1]), longs(a[2]), num(a[3]), mem, num(a[9]), uuid, index,
                    a[13] instanceof byte[] ev ? ev : null, Boolean.TRUE.equals(a[14]));
        }
    }

    /** sglang's LocalSerializedTensor: one serialized tensor per TP rank. */
    public static final class LocalSerializedTensor {
        List<?> values;

        public void __setstate__(HashMap<?, ?> state) {
            if (!(state.get("values") instanceof List<?> v)) throw new PickleException("LocalSerializedTensor.values must be a list");
            values = v;
        }
    }

    /** sglang's FlattenedTensorMetadata. */
    public static final class FlatMeta {
        private HashMap<?, ?> s;

        public void __setstate__(HashMap<?, ?> state) {
            s = state;
        }

        TensorPayloads.FlatEntry entry() throws IOException {
            if (s == null || !(s.get("name") instanceof String name) || !(s.get("dtype") instanceof DType d))
                throw new IOException("incomplete FlattenedTensorMetadata");
            return new TensorPayloads.FlatEntry(name, safetensorsName(d.type()), longs(s.get("shape")), num(s.get("start_idx")),
                    num(s.get("end_idx")));
        }
    }

    private static String safetensorsName(ScalarType t) throws IOException {
        Function<ScalarType, String> f = x -> switch (x) {
            case Float -> "F32";
            case BFloat16 -> "BF16";
            case Half -> "F16";
            case Double -> "F64";
            default -> null;
        };
        String n = f.apply(t);
        if (n == null) throw new IOException("weights must be floating point, got " + t);
        return n;
    }

    private static long num(Object o) {
        if (o instanceof Number n) return n.longValue();
        throw new PickleException("expected a number, got " + describe(o));
    }

    private static long[] longs(Object o) {
        if (o instanceof long[] l) return l;
        if (o instanceof Object[] t) {
            long[] out = new long[t.length];
            for (int i = 0; i < t.length; i++) out[i] = num(t[i]);
            return out;
        }
        throw new PickleException("expected a tuple of ints, got " + describe(o));
    }
}
