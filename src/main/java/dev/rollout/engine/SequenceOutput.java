package dev.rollout.engine;

import java.util.Arrays;
import java.util.List;

/**
 * An immutable snapshot of a sequence, handed to its listener from the engine thread: while it
 * streams (finishReason null) and once when it ends.
 *
 * @param ids             the output token ids ({@link #outputIds()})
 * @param text            detokenized output, or null when the sequence was given no decoder (the
 *                        reader of its snapshots then decodes the ids itself, see {@link OutputText})
 * @param inputLogprobs   one per scored prompt position (from logprob_start_len), first may be unscored
 * @param weightVersion   the version served when this snapshot was taken (SGLang's meta_info.weight_version)
 * @param weightVersions  which version generated which output tokens; more than one span when an update
 *                        landed while the sequence ran
 * @param e2eLatency      seconds from arrival to the end (or to this snapshot while running)
 * @param timeToFirstToken seconds from arrival to the first generated token, NaN before it
 * @param routed          each computed position's routed experts, (positions, layers, topK)
 *                        flattened, when asked for (positions 0 .. prompt + output - 2: the last
 *                        token has not gone through the model); null otherwise
 */
public record SequenceOutput(
        String rid,
        int index,
        Ids ids,
        String text,
        FinishReason finishReason,
        int promptTokens,
        int cachedTokens,
        int numRetractions,
        List<TokenLogprob> outputLogprobs,
        List<TokenLogprob> inputLogprobs,
        String weightVersion,
        List<VersionSpan> weightVersions,
        double e2eLatency,
        double timeToFirstToken,
        RoutedExperts routed) {

    public SequenceOutput {
        if (ids == null) throw new NullPointerException("ids");
    }

    /** A snapshot of these output ids (the array itself, not a copy). */
    public SequenceOutput(String rid, int index, int[] outputIds, String text, FinishReason finishReason, int promptTokens,
                          int cachedTokens, int numRetractions, List<TokenLogprob> outputLogprobs, List<TokenLogprob> inputLogprobs,
                          String weightVersion, List<VersionSpan> weightVersions, double e2eLatency, double timeToFirstToken,
                          RoutedExperts routed) {
        this(rid, index, Ids.of(outputIds), text, finishReason, promptTokens, cachedTokens, numRetractions, outputLogprobs,
                inputLogprobs, weightVersion, weightVersions, e2eLatency, timeToFirstToken, routed);
    }

    /** A snapshot without routed experts. */
    public SequenceOutput(String rid, int index, int[] outputIds, String text, FinishReason finishReason, int promptTokens,
                          int cachedTokens, int numRetractions, List<TokenLogprob> outputLogprobs, List<TokenLogprob> inputLogprobs,
                          String weightVersion, List<VersionSpan> weightVersions, double e2eLatency, double timeToFirstToken) {
        this(rid, index, Ids.of(outputIds), text, finishReason, promptTokens, cachedTokens, numRetractions, outputLogprobs,
                inputLogprobs, weightVersion, weightVersions, e2eLatency, timeToFirstToken, null);
    }

    /**
     * The output token ids as an array, copied from the sequence's tokens the first time it is asked
     * for, on the reader's thread (an HTTP thread), and the same array after that.
     */
    public int[] outputIds() {
        return ids.array();
    }

    /**
     * A snapshot's output ids: a range of the sequence's token array, which the engine thread only
     * appends to (an append writes past the size, and a full array is replaced by a larger copy),
     * so the range never changes. Copying the ids at every streamed snapshot cost the engine thread
     * O(n) a token, O(n²) a request: 128 ints a snapshot on average at R6's 256 output tokens, 4,096
     * at 8,192 (issue #20, "the server's hot path"). As {@link RoutedExperts} and the logprobs'
     * shared prefixes, the reader copies.
     */
    public static final class Ids {
        private final int[] tokens;
        private final int from, to;
        /** The ids as their own array once made; racing readers make equal copies, and either may stay. */
        private volatile int[] array;

        Ids(int[] tokens, int from, int to) {
            if (from < 0 || from > to || to > tokens.length)
                throw new IllegalArgumentException("ids [" + from + ", " + to + ") of " + tokens.length);
            this.tokens = tokens;
            this.from = from;
            this.to = to;
        }

        /** These ids, the array itself. */
        public static Ids of(int[] ids) {
            Ids i = new Ids(ids, 0, ids.length);
            i.array = ids;
            return i;
        }

        public int length() {
            return to - from;
        }

        int[] array() {
            int[] a = array;
            if (a == null) array = a = Arrays.copyOfRange(tokens, from, to);
            return a;
        }

        @Override
        public String toString() {
            return Arrays.toString(array());
        }
    }

    /** The routed experts as an array of their own, or null when not asked for. */
    public int[] routedExperts() {
        return routed == null ? null : routed.copy(0);
    }

    /** Output tokens [start, end) were generated by weights {@code version}. */
    public record VersionSpan(String version, int start, int end) {}

    public boolean finished() {
        return finishReason != null;
    }

    public int completionTokens() {
        return ids.length();
    }

    /** This snapshot with {@code text} in place of its own. */
    public SequenceOutput withText(String text) {
        return new SequenceOutput(rid, index, ids, text, finishReason, promptTokens, cachedTokens, numRetractions,
                outputLogprobs, inputLogprobs, weightVersion, weightVersions, e2eLatency, timeToFirstToken, routed);
    }
}
