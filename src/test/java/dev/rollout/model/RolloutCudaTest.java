package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;

/**
 * Without its JNI library (CI builds none: it is built on the GPU machine against that machine's
 * libtorch) the native preset says so instead of failing, and nothing that runs on a CPU needs it.
 */
@DisabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class RolloutCudaTest {
    @Test
    void absentLibraryIsReportedNotThrown() {
        assertFalse(RolloutCuda.available());
        assertTrue(RolloutCuda.whyUnavailable().contains("jniRolloutCuda"), RolloutCuda.whyUnavailable());
        DeviceMemory.giveBack(new Device("cpu"));  // a no-op on the CPU, with or without the library
    }
}
