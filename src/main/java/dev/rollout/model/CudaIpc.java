package dev.rollout.model;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.cudart.cudaIpcEventHandle_t;
import org.bytedeco.cuda.cudart.cudaIpcMemHandle_t;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Tensors that another process on this host shares through CUDA IPC, as torch's
 * {@code _share_cuda_} exports them: the allocation's IPC handle, the byte offset of the storage in
 * it, and the tensor's dtype, shape, strides and element offset. They are opened, copied into
 * memory of our own, and closed again before the caller answers, so the sender may reuse its
 * buffers as soon as the HTTP call returns.
 */
public final class CudaIpc {
    private CudaIpc() {}

    /**
     * @param memHandle          torch's handle bytes: a version byte, a kind byte ('c' for a cudaMalloc
     *                           block) and the 64-byte cudaIpcMemHandle_t; or the bare 64 bytes
     * @param storageOffsetBytes where the storage starts inside the shared allocation
     * @param storageOffset      the tensor's offset into its storage, in elements
     * @param deviceUuid         the sender's GPU by UUID (SGLang's patched pickles), or null
     * @param deviceIndex        the sender's device index when no UUID is given
     */
    public record Handle(String name, ScalarType dtype, long[] shape, long[] stride, long storageOffset, byte[] memHandle,
                         long storageOffsetBytes, String deviceUuid, int deviceIndex, byte[] eventHandle,
                         boolean eventSyncRequired) {}

    /**
     * Checks every handle's layout before CUDA maps or copies anything: each name once, a shape
     * of non-negative dimensions whose element count fits 64 bits, one non-negative stride per
     * dimension, non-negative offsets, a furthest byte that fits 64 bits, torch's handle sizes.
     * A descriptor comes from a request; libtorch would fail on these with a 500, or read
     * outside the shared allocation.
     */
    public static void check(List<Handle> handles) throws java.io.IOException {
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Handle h : handles) {
            String what = "CUDA IPC tensor '" + h.name() + "'";
            if (!names.add(h.name())) throw new java.io.IOException(what + " appears twice");
            long numel = TensorLayout.numel(h.shape(), what);
            if (h.stride().length != h.shape().length)
                throw new java.io.IOException(what + ": " + h.stride().length + " strides for " + h.shape().length + " dimensions");
            if (h.storageOffset() < 0 || h.storageOffsetBytes() < 0)
                throw new java.io.IOException(what + ": storage_offset and storage_offset_bytes must be >= 0");
            if (h.deviceUuid() == null && h.deviceIndex() < 0) throw new java.io.IOException(what + ": device_index must be >= 0");
            if (h.memHandle() == null || (h.memHandle().length != 64 && h.memHandle().length != 66))
                throw new java.io.IOException(what + ": ipc_handle must be torch's 66 bytes or the raw 64 (got "
                        + (h.memHandle() == null ? "none" : h.memHandle().length + "") + ")");
            if (h.eventHandle() != null && h.eventHandle().length != 64)
                throw new java.io.IOException(what + ": event_handle must be 64 bytes, got " + h.eventHandle().length);
            for (int i = 0; i < h.shape().length; i++)
                if (h.stride()[i] < 0) throw new java.io.IOException(what + ": stride " + i + " is negative (" + h.stride()[i] + ")");
            if (numel > 0 && extentBytes(h) < 0) throw new java.io.IOException(what + ": its shape, strides and offsets reach past 2^63 bytes");
        }
    }

    /**
     * How many bytes of the shared allocation the tensor's view reaches (its furthest byte + 1),
     * or -1 where that overflows 64 bits. Shape, strides and offsets must be non-negative.
     */
    static long extentBytes(Handle h) {
        try {
            long last = h.storageOffset();
            for (int i = 0; i < h.shape().length; i++) {
                if (h.shape()[i] == 0) return h.storageOffsetBytes();  // an empty tensor reads nothing
                last = Math.addExact(last, Math.multiplyExact(h.shape()[i] - 1, h.stride()[i]));
            }
            long elem = org.bytedeco.pytorch.global.torch.elementSize(h.dtype());
            return Math.addExact(h.storageOffsetBytes(), Math.multiplyExact(Math.addExact(last, 1), elem));
        } catch (ArithmeticException overflow) {
            return -1;
        }
    }

    /** Opens the handle, copies the tensor onto {@code target}, closes the handle. */
    public static Tensor copyOut(Handle h, Device target) {
        return copyOut(List.of(h), target).get(0);
    }

    /**
     * Copies every tensor onto {@code target}: each distinct allocation is opened once (tensors
     * that share a storage share its handle, and CUDA maps a handle only once per process), every
     * copy is queued, the device is synchronized once, and the handles are closed. A whole model
     * arrives as hundreds of tensors; a synchronization per tensor waited each time for the
     * engine's running step as well.
     */
    public static List<Tensor> copyOut(List<Handle> handles, Device target) {
        Map<String, Pointer> opened = new HashMap<>();  // raw handle (hex) -> mapped base address
        List<Tensor> out = new ArrayList<>(handles.size());
        try {
            for (Handle h : handles) {
                int device = h.deviceUuid() != null ? deviceByUuid(h.deviceUuid()) : h.deviceIndex();
                check(cudart.cudaSetDevice(device), "cudaSetDevice");
                byte[] raw = rawHandle(h.memHandle());
                String key = HexFormat.of().formatHex(raw);
                Pointer base = opened.get(key);
                if (base == null) {
                    cudaIpcMemHandle_t mh = new cudaIpcMemHandle_t();
                    for (int i = 0; i < raw.length; i++) mh.reserved(i, raw[i]);
                    base = new Pointer();
                    check(cudart.cudaIpcOpenMemHandle(base, mh, cudart.cudaIpcMemLazyEnablePeerAccess),
                            "cudaIpcOpenMemHandle(" + h.name() + ")");
                    opened.put(key, base);
                }
                checkInsideAllocation(h, base);
                if (h.eventSyncRequired() && h.eventHandle() != null && h.eventHandle().length == 64) waitFor(h.eventHandle());
                long elem = org.bytedeco.pytorch.global.torch.elementSize(h.dtype());
                Pointer at = new Pointer(base).position(h.storageOffsetBytes() + h.storageOffset() * elem);
                try (Tensor view = org.bytedeco.pytorch.global.torch.from_blob(at, h.shape(), h.stride(),
                        Torch.options(h.dtype(), new Device("cuda:" + device)))) {
                    Tensor owned = Torch.empty(Torch.options(h.dtype(), target), h.shape());
                    out.add(owned);
                    owned.copy_(view);
                }
            }
            check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // every copy done before the handles close
            return out;
        } catch (RuntimeException e) {
            out.forEach(Tensor::close);
            throw e;
        } finally {
            for (Pointer base : opened.values()) cudart.cudaIpcCloseMemHandle(base);
        }
    }

    /**
     * The view must stay inside the allocation the handle maps: a descriptor that claims more
     * would make the copy read past it (an illegal-address fault ends the CUDA context, and with
     * it the server). The driver knows the allocation's range; where it cannot say, the copy
     * goes ahead as before.
     */
    private static void checkInsideAllocation(Handle h, Pointer base) {
        long[] start = new long[1];
        try (org.bytedeco.javacpp.SizeTPointer size = new org.bytedeco.javacpp.SizeTPointer(1)) {
            if (cudart.cuMemGetAddressRange(start, size, base.address()) != 0) return;
            long available = start[0] + size.get() - base.address();
            long needed = extentBytes(h);
            if (needed < 0 || needed > available)
                throw new IllegalArgumentException("CUDA IPC tensor '" + h.name() + "' reaches " + needed + " bytes into an allocation of "
                        + available + " bytes: its shape, strides or offsets do not match what the trainer shared");
        }
    }

    /** The 64-byte cudaIpcMemHandle_t inside torch's handle bytes. */
    static byte[] rawHandle(byte[] torchHandle) {
        if (torchHandle.length == 64) return torchHandle;
        if (torchHandle.length == 66 && torchHandle[1] == 'c') return java.util.Arrays.copyOfRange(torchHandle, 2, 66);
        throw new IllegalArgumentException("unsupported CUDA IPC handle (" + torchHandle.length + " bytes"
                + (torchHandle.length > 1 ? ", kind '" + (char) torchHandle[1] + "'" : "")
                + "): only cudaMalloc blocks can be opened; run the trainer without expandable_segments");
    }

    private static void waitFor(byte[] eventHandle) {
        cudaIpcEventHandle_t eh = new cudaIpcEventHandle_t();
        for (int i = 0; i < 64; i++) eh.reserved(i, eventHandle[i]);
        CUevent_st event = new CUevent_st();
        check(cudart.cudaIpcOpenEventHandle(event, eh), "cudaIpcOpenEventHandle");
        try {
            check(cudart.cudaEventSynchronize(event), "cudaEventSynchronize");
        } finally {
            cudart.cudaEventDestroy(event);
        }
    }

    /** This process's GPUs' UUIDs by index, read once: they do not change while it runs. */
    private static volatile List<String> uuids;

    /**
     * The local index of the GPU with this UUID ("0a18..." or "GPU-0a18..."). SGLang's pickles and
     * our descriptors name the device of every tensor, and cudaGetDeviceProperties, which reads
     * the UUID, takes a good part of a millisecond: asked once per tensor it cost most of a
     * whole-model push.
     */
    public static int deviceByUuid(String uuid) {
        String want = uuid.startsWith("GPU-") ? uuid.substring(4) : uuid;
        List<String> known = uuids;
        if (known == null) {
            int[] n = new int[1];
            check(cudart.cudaGetDeviceCount(n), "cudaGetDeviceCount");
            List<String> all = new ArrayList<>(n[0]);
            for (int i = 0; i < n[0]; i++) all.add(uuidOf(i));
            uuids = known = List.copyOf(all);
        }
        for (int i = 0; i < known.size(); i++) {
            if (known.get(i).equalsIgnoreCase(want)) return i;
        }
        throw new IllegalArgumentException("no GPU with UUID " + uuid + " on this host; CUDA IPC needs the trainer on the same machine");
    }

    /** A GPU's UUID as torch prints it (8-4-4-4-12 hex digits). */
    public static String uuidOf(int device) {
        try (cudaDeviceProp prop = new cudaDeviceProp()) {
            check(cudart.cudaGetDeviceProperties(prop, device), "cudaGetDeviceProperties");
            byte[] b = new byte[16];
            new BytePointer(prop.uuid()).capacity(16).get(b, 0, 16);  // cudaUUID_t is char bytes[16]
            String hex = HexFormat.of().formatHex(b);
            return hex.substring(0, 8) + "-" + hex.substring(8, 12) + "-" + hex.substring(12, 16) + "-" + hex.substring(16, 20)
                    + "-" + hex.substring(20);
        }
    }

    private static void check(int err, String what) {
        if (err != 0) throw new IllegalStateException(what + " failed: " + cudart.cudaGetErrorString(err).getString());
    }
}
