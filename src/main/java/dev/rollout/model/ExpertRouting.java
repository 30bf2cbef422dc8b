package dev.rollout.model;

import org.bytedeco.pytorch.Tensor;

/**
 * Where a mixture-of-experts layer sends its T tokens: each token's k choices made into T k
 * copies (copy t k + j is token t's j-th choice, most probable first), and the copies sorted by
 * expert, stably, so that each expert's GEMMs run over one contiguous block of rows. Everything
 * stays on the device: nothing here waits for the host.
 *
 * @param weights each choice's weight, (T, k): libtorch's ops hand them back in the model's dtype
 *                where the router rounds them (Qwen's), else float32; our kernel always in float32,
 *                holding the rounded values, and its combine rounds each product where the model says so
 * @param rowOf   (T k) int64: the sorted row of each copy
 * @param tokenOf (T k) int64: the token of each sorted row
 * @param ends    (E) int32: where each expert's block of sorted rows ends (cumulative), the grouped
 *                GEMMs' offsets
 */
record ExpertRouting(Tensor weights, Tensor rowOf, Tensor tokenOf, Tensor ends) {}
