package dev.rollout.engine;

import java.util.List;

/**
 * The leading values of one parameter, read back as float32.
 *
 * @param shape  the parameter's full shape
 * @param values its first elements in row-major order, at most the number asked for
 */
public record ParameterValues(String name, List<Long> shape, float[] values) {
    public ParameterValues {
        shape = List.copyOf(shape);
    }
}
