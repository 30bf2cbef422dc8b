package dev.rollout.model;

import java.util.Locale;
import java.util.function.LongSupplier;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * What handing one tensor to a native op costs on the host, three ways (ADR 0014): as before, its
 * data pointer read in Java ({@code data_ptr().address()}: a JNI call and a Pointer object); checked
 * in Java before that (device, dtype, dimensions, sizes, contiguity: a JNI call each); or, as now, the Tensor itself as a JNI argument, which JavaCPP
 * reads with two field loads inside the op's one JNI call ({@code is_same(Tensor)} below is such a
 * call with a trivial body). None of this touches the device, so the CPU measures it.
 *
 * <pre>NativeCallCost [ITERATIONS]</pre>
 */
public final class NativeCallCost {
    private NativeCallCost() {}

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 2_000_000;
        Device cpu = new Device("cpu");
        Tensor a = torch.zeros(new long[] {5, 128}, Torch.options(ScalarType.BFloat16, cpu));
        Tensor b = torch.zeros(new long[] {5, 128}, Torch.options(ScalarType.BFloat16, cpu));
        for (int round = 0; round < 5; round++) {  // the last rounds are the ones to read: JIT warm
            report(round, "data_ptr_address", n, () -> a.data_ptr().address());
            report(round, "java_checks", n, () -> javaChecks(a));
            report(round, "tensor_argument", n, () -> a.is_same(b) ? 1 : 0);
            report(round, "jni_call_no_argument", n, () -> a.is_contiguous() ? 1 : 0);
        }
    }

    /**
     * The Java-side checks of one (rows, hidden) bf16 tensor that ADR 0014 weighed against checking
     * in C++, the cheapest way: six JNI calls, and no check of the device's index (the presets'
     * Tensor has no get_device(); device() would allocate a Device from libtorch's heap).
     */
    static long javaChecks(Tensor t) {
        long bad = t.is_cuda() ? 0 : 1;  // (on the CPU this is the refusal; the cost is the same)
        bad += t.scalar_type().intern() == ScalarType.BFloat16 ? 0 : 1;
        bad += t.dim() == 2 ? 0 : 1;
        bad += t.is_contiguous() ? 0 : 1;
        return bad + t.size(0) + t.size(1);
    }

    private static void report(int round, String what, int n, LongSupplier op) {
        long sink = 0, t0 = System.nanoTime();
        for (int i = 0; i < n; i++) sink += op.getAsLong();
        double ns = (System.nanoTime() - t0) / (double) n;
        System.out.printf(Locale.ROOT, "RESULT {\"what\": \"native_call_cost\", \"round\": %d, \"way\": \"%s\", \"ns_per_tensor\": %.1f, "
                + "\"sink\": %d}%n", round, what, ns, sink % 7);
    }
}
