package dev.rollout.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;

/**
 * How the decoding sequences (one query token each) attend to their context in the paged KV
 * cache: a strategy chosen once, in {@link Kernels}, and called by every layer of the forward.
 */
public enum DecodeAttention {
    /** Gather every context slot into a padded batch and run libtorch's attention with a mask. */
    GATHER {
        @Override
        Tensor attend(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c) {
            return PagedDecode.gathered(q, kCache, vCache, dec.slots(), dec.maxContext(), dec.mask(), c);
        }
    },
    /** The same with libtorch's ops, but starting from the block table: the paged kernel's reference. */
    PAGED_TORCH {
        @Override
        Tensor attend(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c) {
            return PagedDecode.reference(q, kCache, vCache, dec, blockSize, c);
        }
    },
    /** Our kernel (native-presets/src/paged_attention.cu) reads K/V in place from the block table. */
    PAGED_NATIVE {
        @Override
        Tensor attend(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c) {
            return PagedDecode.attend(q, kCache, vCache, dec, blockSize, c);
        }

        @Override
        public Tensor splitCounters(int batch, int kvHeads, Device device) {
            return PagedDecode.splitCounters(batch, kvHeads, device);
        }
    };

    /**
     * What a step of {@code batch} decoding sequences hands every layer's call besides the context:
     * our kernel's split counters ({@link ForwardBatch.DecodeGroup#splitCounters}), null for the others.
     */
    public Tensor splitCounters(int batch, int kvHeads, Device device) {
        return null;
    }

    /** Whether the step must describe the context as a block table rather than as slots. */
    public boolean paged() {
        return this != GATHER;
    }

    /** q (B, nH, d) of the decoding sequences over their cached context; returns (B, nH, d). */
    abstract Tensor attend(Tensor q, Tensor kCache, Tensor vCache, ForwardBatch.DecodeGroup dec, int blockSize, ModelConfig c);
}
