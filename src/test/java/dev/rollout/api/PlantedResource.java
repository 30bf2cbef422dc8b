package dev.rollout.api;

import dev.rollout.engine.LlmEngine;
import org.bytedeco.pytorch.Tensor;

/**
 * A planted violation for ArchitectureTest: a class in the HTTP package that holds the engine and
 * a tensor. It lives in the test sources only; the rules must flag it.
 */
public final class PlantedResource {
    Object parameters(LlmEngine engine) {
        return engine.model().parameters();
    }

    long bytes(Tensor t) {
        return t.nbytes();
    }
}
