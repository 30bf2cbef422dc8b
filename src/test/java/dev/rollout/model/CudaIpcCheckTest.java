package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/** CUDA IPC descriptors from a request are checked on any machine, before CUDA sees them. */
class CudaIpcCheckTest {
    static CudaIpc.Handle h(String name, long[] shape, long[] stride, long offset, int handleBytes) {
        return new CudaIpc.Handle(name, ScalarType.Float, shape, stride, offset, new byte[handleBytes], 0, null, 0, null, false);
    }

    static String refused(CudaIpc.Handle... hs) {
        return assertThrows(IOException.class, () -> CudaIpc.check(List.of(hs))).getMessage();
    }

    @Test
    void badLayoutsAreRefused() {
        assertTrue(refused(h("a", new long[] {4294967296L, 4294967296L, 2}, new long[] {8589934592L, 2, 1}, 0, 66)).contains("2^63"));
        assertTrue(refused(h("a", new long[] {-1, 4}, new long[] {4, 1}, 0, 66)).contains("negative"));
        assertTrue(refused(h("a", new long[] {2, 4}, new long[] {1}, 0, 66)).contains("strides for 2 dimensions"));
        assertTrue(refused(h("a", new long[] {2, 4}, new long[] {-4, 1}, 0, 66)).contains("stride 0 is negative"));
        assertTrue(refused(h("a", new long[] {4}, new long[] {1}, -1, 66)).contains(">= 0"));
        assertTrue(refused(h("a", new long[] {4}, new long[] {1}, 0, 10)).contains("ipc_handle"));
        assertTrue(refused(h("a", new long[] {2, 2}, new long[] {Long.MAX_VALUE / 2, 1}, 0, 66)).contains("past 2^63"));
        assertTrue(refused(h("a", new long[] {4}, new long[] {1}, 0, 66), h("a", new long[] {4}, new long[] {1}, 0, 66)).contains("twice"));
    }

    @Test
    void aTensorOfTorchIsAccepted() {
        assertDoesNotThrow(() -> CudaIpc.check(List.of(h("model.norm.weight", new long[] {2, 128}, new long[] {128, 1}, 0, 66),
                h("empty", new long[] {0, 128}, new long[] {128, 1}, 0, 64))));
    }
}
