package dev.rollout.model;

/**
 * How the decoding sequences (one query token each) attend to their context in the paged KV cache.
 */
public enum DecodeAttention {
    /** Gather every context slot into a padded batch and run libtorch's attention with a mask. */
    GATHER,
    /** The same with libtorch's ops, but starting from the block table: the paged kernel's reference. */
    PAGED_TORCH,
    /** Our kernel (native-presets/src/paged_attention.cu) reads K/V in place from the block table. */
    PAGED_NATIVE;

    /** Whether the step must describe the context as a block table rather than as slots. */
    public boolean paged() {
        return this != GATHER;
    }
}
