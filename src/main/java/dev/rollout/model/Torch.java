package dev.rollout.model;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The few conversions between Java arrays and libtorch tensors that the model and the engine
 * share. Host arrays go through a pinned-free CPU tensor and one copy to the target device.
 */
public final class Torch {
    private Torch() {}

    public static TensorOptions options(ScalarType dtype, Device device) {
        return new TensorOptions(dtype).device(new DeviceOptional(device));
    }

    public static TensorOptions options(ScalarType dtype) {
        return new TensorOptions(dtype);
    }

    /** A 1-D int64 tensor on {@code device} holding {@code values}. */
    public static Tensor longs(long[] values, Device device) {
        Tensor cpu = empty(options(ScalarType.Long), values.length);
        if (values.length > 0) new LongPointer(cpu.data_ptr_long()).put(values);
        return onDevice(cpu, device);
    }

    /** A 1-D int64 tensor on {@code device} holding the first {@code length} of {@code values} (a reused buffer's prefix). */
    public static Tensor longs(long[] values, int length, Device device) {
        Tensor cpu = empty(options(ScalarType.Long), length);
        if (length > 0) new LongPointer(cpu.data_ptr_long()).put(values, 0, length);
        return onDevice(cpu, device);
    }

    /** A 2-D int64 tensor of shape (rows, cols) on {@code device}; {@code values} is row-major. */
    public static Tensor longs(long[] values, int rows, int cols, Device device) {
        return longs(values, device).view(rows, cols);
    }

    /** A 1-D float32 tensor on {@code device} holding {@code values}. */
    public static Tensor floats(float[] values, Device device) {
        Tensor cpu = empty(options(ScalarType.Float), values.length);
        if (values.length > 0) new FloatPointer(cpu.data_ptr_float()).put(values);
        return onDevice(cpu, device);
    }

    /** A boolean tensor of the given shape; {@code values} is row-major. */
    public static Tensor bools(boolean[] values, Device device, long... shape) {
        byte[] bytes = new byte[values.length];
        for (int i = 0; i < values.length; i++) bytes[i] = (byte) (values[i] ? 1 : 0);
        Tensor cpu = empty(options(ScalarType.Bool), values.length);
        if (bytes.length > 0) new BytePointer(cpu.data_ptr()).put(bytes);
        return onDevice(cpu, device).view(shape);
    }

    /** Copies a tensor of any dtype and device into a Java float array (row-major). */
    public static float[] toFloats(Tensor t) {
        Tensor cpu = t.to(new Device("cpu"), ScalarType.Float).contiguous();
        float[] out = new float[(int) cpu.numel()];
        if (out.length > 0) new FloatPointer(cpu.data_ptr_float()).get(out);
        return out;
    }

    /** An int32 tensor's values, from any device, in row-major order. */
    public static int[] toInts(Tensor t) {
        Tensor host = t.to(new Device("cpu"), ScalarType.Int).contiguous();
        int[] out = new int[(int) host.numel()];
        if (out.length > 0) new IntPointer(host.data_ptr_int()).get(out);
        return out;
    }

    /** Copies an integer tensor of any device into a Java long array (row-major). */
    public static long[] toLongs(Tensor t) {
        Tensor cpu = t.to(new Device("cpu"), ScalarType.Long).contiguous();
        long[] out = new long[(int) cpu.numel()];
        if (out.length > 0) new LongPointer(cpu.data_ptr_long()).get(out);
        return out;
    }

    /** Bytes per element of the dtypes a model or KV cache may use. */
    public static int elementSize(ScalarType dtype) {
        return switch (dtype) {
            case Float -> 4;
            case BFloat16, Half -> 2;
            default -> throw new IllegalArgumentException("not a model dtype: " + dtype);
        };
    }

    public static Tensor empty(TensorOptions options, long... shape) {
        return torch.empty(shape, options, new MemoryFormatOptional());
    }

    public static Tensor zeros(TensorOptions options, long... shape) {
        return torch.zeros(shape, options);
    }

    /**
     * A host copy of {@code t} (same dtype and shape, contiguous) that {@code t.copy_(copy)} can
     * restore bit for bit. From a CUDA tensor the copy goes to pinned memory, which the device
     * reads and writes at full bus speed; pageable memory would halve that.
     */
    public static Tensor hostCopy(Tensor t) {
        long[] shape = new long[(int) t.dim()];
        for (int i = 0; i < shape.length; i++) shape[i] = t.size(i);
        TensorOptions o = options(t.scalar_type());
        if (t.is_cuda()) o = o.pinned_memory(new org.bytedeco.pytorch.BoolOptional(true));
        Tensor copy = empty(o, shape);
        copy.copy_(t);
        return copy;
    }

    /** SHA-256 (hex) of a tensor's bytes: its own dtype, row-major, little-endian, copied to the host. */
    public static String sha256(Tensor t) {
        Tensor cpu = t.to(new Device("cpu"), t.scalar_type()).contiguous();
        byte[] bytes = new byte[(int) cpu.nbytes()];
        if (bytes.length > 0) new BytePointer(cpu.data_ptr()).get(bytes);
        return sha256(bytes);
    }

    public static String sha256(byte[] bytes) {
        try {
            return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Tensor onDevice(Tensor cpu, Device device) {
        return device.is_cpu() ? cpu : cpu.to(device, cpu.scalar_type());
    }

    /** A scalar type as the settings and transformers spell it: float32, bfloat16, float16. */
    public static String name(ScalarType t) {
        return switch (t) {
            case Float -> "float32";
            case BFloat16 -> "bfloat16";
            case Half -> "float16";
            default -> t.toString().toLowerCase();
        };
    }
}
