package dev.rollout.engine;

import java.util.List;

/**
 * The leading rows of one parameter (slices along its first dimension), read back as float32.
 *
 * @param shape  the parameter's full shape
 * @param values the rows asked for (at most as many as it has), row-major
 */
public record ParameterValues(String name, List<Long> shape, float[] values) {
    public ParameterValues {
        shape = List.copyOf(shape);
    }

    /** Values in one row: the product of the dimensions after the first (1 for a 1-D parameter). */
    public long rowSize() {
        long n = 1;
        for (int i = 1; i < shape.size(); i++) n *= shape.get(i);
        return n;
    }
}
