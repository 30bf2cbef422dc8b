package dev.rollout.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch_cuda;

/** Makes freed tensor memory really go back to the device, not just to libtorch's cache. */
public final class DeviceMemory {
    private DeviceMemory() {}

    /** On CUDA: waits for the device, then empties the caching allocator. On CPU freed memory is already back. */
    public static void giveBack(Device device) {
        if (!device.is_cuda()) return;
        org.bytedeco.cuda.global.cudart.cudaDeviceSynchronize();
        try {
            torch_cuda.getDeviceAllocator(torch.DeviceType.CUDA).emptyCache();
        } catch (LinkageError e) {
            // torch_cuda's class pulls in cuBLAS, cuDNN, ... JNI glue that a slim distribution may leave out
            java.util.logging.Logger.getLogger(DeviceMemory.class.getName()).warning(
                    "could not empty libtorch's CUDA cache (" + e + "): freed memory stays reserved by this process");
        }
    }
}
