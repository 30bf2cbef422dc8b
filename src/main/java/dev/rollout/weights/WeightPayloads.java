package dev.rollout.weights;

import dev.rollout.engine.WeightUpdate;
import dev.rollout.model.Checkpoint;
import dev.rollout.model.CudaIpc;
import dev.rollout.model.TensorLayout;
import dev.rollout.model.TensorPayloads;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;

/** Turns the bytes of a weight push, or a checkpoint directory, into a {@link WeightUpdate}. */
public final class WeightPayloads {
    private WeightPayloads() {}

    /** How a push was encoded. */
    public enum Format { SAFETENSORS, FLATTENED_BUCKET }

    /**
     * @param direct   the payload in native memory: safetensors bytes, or the flat buffer of a bucket;
     *                 the tensors are copied out, so the caller may free it once this returns
     * @param manifest where each tensor sits in a flat buffer (FLATTENED_BUCKET only)
     * @throws IOException with a message fit for the caller when the bytes do not hold what they claim
     */
    public static WeightUpdate decode(ByteBuffer direct, Format format, List<TensorPayloads.FlatEntry> manifest, String version,
                                      boolean abortAll, String transport) throws IOException {
        Map<String, Tensor> tensors;
        if (format == Format.FLATTENED_BUCKET) {
            tensors = TensorPayloads.fromFlatBuffer(direct, manifest);  // raw tensor bytes, described by JSON
        } else {
            try {
                tensors = TensorPayloads.fromSafetensors(direct);
            } catch (IOException notSafetensors) {
                if (looksLikePickle(direct)) throw new PickleRefused();
                throw notSafetensors;
            }
        }
        return new WeightUpdate(tensors, version, abortAll, transport, direct.remaining());
    }

    /**
     * A safetensors request body read straight from the socket into native memory: one copy in,
     * one copy out into the tensors, no Java heap in between.
     *
     * @param length the Content-Length, or -1 when the body is chunked
     */
    public static WeightUpdate readSafetensors(InputStream in, long length, long limit, String version, boolean abortAll,
                                               String transport) throws IOException {
        if (length > limit) throw new BodyTooLarge(limit);
        // Content-Length is what the client claims: the buffer grows as the bytes come (NativeBytes)
        try (NativeBytes buffer = new NativeBytes(length, limit)) {
            buffer.readFrom(Channels.newChannel(in));
            return decode(buffer.bytes(), Format.SAFETENSORS, null, version, abortAll, transport);
        } catch (NativeBytes.TooLarge e) {
            throw new BodyTooLarge(limit);
        }
    }

    /** A body over its route's limit. */
    public static final class BodyTooLarge extends IOException {
        BodyTooLarge(long limit) {
            super("request body is larger than the limit of " + limit + " bytes (rollout.max-weight-body-bytes)");
        }
    }

    /**
     * SGLang's and veRL's pickled pushes (allowed by rollout.allow-pickle): CUDA tensors shared by
     * IPC, opened and copied onto {@code device}, and closed before this returns.
     */
    public static WeightUpdate fromPickle(byte[] raw, String device, String version, boolean abortAll) throws IOException {
        return fromIpc(TorchPickles.decode(raw, 0), device, version, abortAll, "pickle-cuda-ipc");
    }

    /**
     * One tensor of our JSON CUDA-IPC transport: what torch's {@code _share_cuda_} returns plus the
     * tensor's dtype, shape, strides and offset.
     */
    public record IpcDescriptor(String name, String dtype, long[] shape, long[] stride, long storageOffset, byte[] ipcHandle,
                                long storageOffsetBytes, String deviceUuid, int deviceIndex, byte[] eventHandle,
                                boolean eventSyncRequired) {}

    /** Our JSON descriptors of CUDA IPC tensors (no pickle at all). */
    public static WeightUpdate fromCudaIpc(List<IpcDescriptor> descriptors, String device, String version, boolean abortAll)
            throws IOException {
        requireGpu(device);  // the first thing to tell a client on a CPU server, whatever its descriptors say
        List<CudaIpc.Handle> handles = new java.util.ArrayList<>();
        for (IpcDescriptor d : descriptors) {
            long[] stride = d.stride();
            if (stride == null) {  // contiguous
                TensorLayout.numel(d.shape(), "CUDA IPC tensor '" + d.name() + "'");  // no overflow below
                stride = new long[d.shape().length];
                long s = 1;
                for (int i = stride.length - 1; i >= 0; i--) {
                    stride[i] = s;
                    s *= d.shape()[i];
                }
            }
            handles.add(new CudaIpc.Handle(d.name(), Checkpoint.scalarType(TensorPayloads.safetensorsDtype(d.dtype())), d.shape(),
                    stride, d.storageOffset(), d.ipcHandle(), d.storageOffsetBytes(), d.deviceUuid(), d.deviceIndex(),
                    d.eventHandle(), d.eventSyncRequired()));
        }
        return fromIpc(new TorchPickles.Decoded(handles, null, List.of()), device, version, abortAll, "cuda-ipc");
    }

    private static void requireGpu(String device) throws IOException {
        if (!device.startsWith("cuda"))
            throw new IOException("CUDA IPC tensors can only be opened by a server on a GPU (rollout.device=cuda); this one runs on "
                    + device + ": push safetensors instead");
    }

    private static WeightUpdate fromIpc(TorchPickles.Decoded d, String device, String version, boolean abortAll, String transport)
            throws IOException {
        requireGpu(device);
        CudaIpc.check(d.tensors());  // layouts from the request, checked before CUDA maps or copies anything
        if (d.flat() != null) CudaIpc.check(List.of(d.flat()));
        Device target = new Device(device);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        long bytes = 0;
        try {
            if (d.flat() != null) {
                try (Tensor flat = CudaIpc.copyOut(d.flat(), target)) {
                    tensors.putAll(TensorPayloads.sliceFlat(flat, d.flatEntries()));
                    bytes = flat.nbytes();
                }
            }
            List<Tensor> copied = CudaIpc.copyOut(d.tensors(), target);
            for (int i = 0; i < copied.size(); i++) {
                tensors.put(d.tensors().get(i).name(), copied.get(i));
                bytes += copied.get(i).nbytes();
            }
        } catch (IOException | RuntimeException e) {
            tensors.values().forEach(Tensor::close);
            throw e instanceof IOException io ? io : new IOException(e.getMessage(), e);
        }
        return new WeightUpdate(tensors, version, abortAll, transport, bytes);
    }

    /** A payload that is a pickle, where safetensors were expected; never unpickled unless allowed. */
    public static final class PickleRefused extends IOException {
        PickleRefused() {
            super("this payload is a Python pickle, which can run code on the server and is refused; send safetensors bytes "
                    + "(base64), a flattened bucket with a JSON manifest, or CUDA IPC descriptors (docs/api.md), or start the "
                    + "server with rollout.allow-pickle=true to read SGLang/veRL pickles through an allow-list");
        }
    }

    /** Pickle protocol 2+ opens with PROTO (0x80, version) and every pickle ends with STOP ('.'). */
    public static boolean looksLikePickle(ByteBuffer b) {
        int n = b.remaining(), at = b.position();
        return n > 2 && (b.get(at) & 0xff) == 0x80 && b.get(at + 1) >= 2 && b.get(at + 1) <= 5 && b.get(at + n - 1) == '.';
    }

    /** Every parameter of the checkpoint in {@code dir}, read onto the CPU in its stored dtype. */
    public static WeightUpdate fromDisk(Path dir, Collection<String> names, String version, boolean abortAll) throws IOException {
        Checkpoint ckpt = Checkpoint.open(dir);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        long bytes = 0;
        try {
            for (String name : names) {
                if (!ckpt.contains(name)) throw new IOException(dir + " has no " + name);
                Tensor t = ckpt.load(name, ckpt.storedType(name), new Device("cpu"));
                tensors.put(name, t);
                bytes += t.nbytes();
            }
        } catch (IOException | RuntimeException e) {
            tensors.values().forEach(Tensor::close);
            throw e;
        }
        return new WeightUpdate(tensors, version, abortAll, "disk", bytes);
    }
}
