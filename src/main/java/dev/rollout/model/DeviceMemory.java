package dev.rollout.model;

import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.SizeTPointer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch_cuda;

/** The device's free memory, and giving freed tensor memory back to it rather than to libtorch's cache. */
public final class DeviceMemory {
    private DeviceMemory() {}

    /** Bytes free on a CUDA device now, as the driver counts them (libtorch's cached blocks count as used). */
    public static long free(Device device) {
        int index = device.has_index() ? device.index() : 0;
        try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
            check(cudart.cudaSetDevice(index), "cudaSetDevice");
            check(cudart.cudaMemGetInfo(free, total), "cudaMemGetInfo");
            return free.get();
        }
    }

    private static void check(int status, String what) {
        if (status != 0) throw new IllegalStateException(what + " failed: " + cudart.cudaGetErrorString(status).getString());
    }

    /**
     * On CUDA: waits for the device, then empties libtorch's caching allocator, through our native
     * preset where it is built, else through the presets' torch_cuda. On CPU freed memory is already back.
     */
    public static void giveBack(Device device) {
        if (!device.is_cuda()) return;
        cudart.cudaDeviceSynchronize();
        if (RolloutCuda.available()) {
            RolloutCuda.emptyCache();
            return;
        }
        try {
            torch_cuda.getDeviceAllocator(torch.DeviceType.CUDA).emptyCache();
        } catch (LinkageError e) {
            // torch_cuda's class pulls in cuBLAS, cuDNN, ... JNI glue that a slim distribution leaves out
            java.util.logging.Logger.getLogger(DeviceMemory.class.getName()).warning("could not empty libtorch's CUDA cache ("
                    + RolloutCuda.whyUnavailable() + "; " + e + "): freed memory stays reserved by this process");
        }
    }
}
