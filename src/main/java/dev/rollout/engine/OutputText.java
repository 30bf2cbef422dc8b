package dev.rollout.engine;

import java.util.Arrays;

/**
 * The text of one sequence's output, decoded by whoever reads its snapshots rather than by the
 * engine thread. Detokenizing is two tokenizer calls per token; on the engine thread that is two
 * calls for every running sequence in every step, while the threads that read the snapshots
 * (one per HTTP call) do it in parallel (R6, 512 streams on an H100: 21.8 ms per output token,
 * docs/benchmarks-log.md, "The first GPU figures"). The engine decodes only sequences with stop
 * strings, which it must match as they are generated; their snapshots arrive with text and pass
 * through unchanged.
 */
public final class OutputText {
    private final IncrementalDetokenizer detokenizer;
    private int fed;

    /** Same decoding as the engine's: the prompt's last tokens as context, special tokens skipped or not. */
    public OutputText(TokenDecoder decoder, boolean skipSpecial, int[] prompt) {
        this.detokenizer = new IncrementalDetokenizer(decoder, skipSpecial,
                Arrays.copyOfRange(prompt, Math.max(0, prompt.length - IncrementalDetokenizer.CONTEXT), prompt.length));
    }

    /** The snapshot with its text: the ids it adds since the last one decoded, flushed at the end as the engine does. */
    public SequenceOutput apply(SequenceOutput out) {
        if (out.text() != null) return out;
        int[] ids = out.outputIds();
        for (; fed < ids.length; fed++) detokenizer.add(ids[fed]);
        if (out.finished() && out.finishReason().type() != FinishReason.Type.STOP) detokenizer.finish();
        return out.withText(detokenizer.text());
    }

    /** Whether the engine must decode this sequence itself: it has stop strings or patterns to match as it goes. */
    public static boolean engineDecodes(SamplingParams params) {
        return !params.stop().isEmpty() || !params.stopRegex().isEmpty();
    }
}
