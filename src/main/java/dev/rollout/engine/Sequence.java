package dev.rollout.engine;

import dev.rollout.constrain.ConstraintCursor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One sample being generated: its tokens, how far its KV is computed, its blocks in the cache,
 * and what it has produced. Mutated only on the engine thread.
 */
public final class Sequence {
    final String rid;
    final int index;                 // sample index within its request (for n > 1)
    int promptLen;                   // grows once if a session puts its history first (Sessions.bind)
    final IntList tokens;            // prompt then output; appended to only once queued (snapshots share its prefixes)
    final SamplingParams params;
    final LogprobOptions logprobs;
    final SplittableRandom rng;
    /**
     * Where its output stands in its request's constraint, or null when unconstrained. Advanced
     * once per sampled token ({@link LlmEngine}), never for tokens computed again after a
     * retraction: those are not sampled again, so the state stays a function of the output.
     */
    final ConstraintCursor constraint;
    final SequenceListener listener;
    final boolean stream;
    final long arrivalNanos;

    SequenceStatus status = SequenceStatus.WAITING;
    /** Tokens whose K/V are in the cache. */
    int numComputed;
    /** Prompt tokens found in the prefix cache at first admission. */
    int numCachedTokens = -1;
    int numRetractions;
    final IntList blockTable = new IntList();
    /** Full blocks already entered into the prefix cache, and the chained hash of the last. */
    int numHashedBlocks;
    long lastBlockHash;
    /** The sibling whose prompt KV this one waits to share (n > 1), or null. */
    Sequence prefixLeader;
    /** False for the server's own probes (warm-up, health), which metrics leave out, as SGLang's log_metrics. */
    boolean logMetrics = true;
    /** The prompt as embeddings (its token ids are then placeholders), or null. */
    PromptEmbeds promptEmbeds;
    /**
     * Mixed into the prefix cache's root hash: 0 for token prompts, which share one namespace; a
     * request's own random value for an embeddings prompt, whose placeholder ids say nothing of
     * its KV, so that only its own samples (n > 1) and its own recompute find its blocks.
     */
    long cacheNamespace;

    /**
     * Every computed position's routed experts, (positions, layers, topK) flattened, when the
     * request asked for them (SGLang's return_routed_experts); null otherwise. Kept across a
     * retraction and an abort: what was computed stays reported.
     */
    IntList routedExperts;

    final AppendOnlyList<TokenLogprob> outputLogprobs = new AppendOnlyList<>();   // snapshots share their prefixes
    final AppendOnlyList<TokenLogprob> inputLogprobs = new AppendOnlyList<>();
    /** The next prompt position to score; a recompute after preemption does not score twice. */
    int inputScoredUpTo;
    /** Where each weight version began generating this sequence's output: (version, first output index). */
    final List<String> spanVersions = new ArrayList<>();
    final IntList spanStarts = new IntList(4);
    IncrementalDetokenizer detokenizer;
    /** Its place in a session, while it runs; null for a request outside sessions. */
    Sessions.Node sessionNode;
    FinishReason finishReason;
    /** When it last entered the waiting queue (the waiting timeout's clock; a preemption restarts it). */
    long queuedNanos;
    /** When it was first admitted (the running timeout's clock); 0 before. */
    long admittedNanos;
    long firstTokenNanos;
    long lastTokenNanos;
    long finishedNanos;

    public Sequence(String rid, int index, int[] prompt, SamplingParams params, LogprobOptions logprobs,
                    TokenDecoder decoder, SequenceListener listener, boolean stream, long seed) {
        this.rid = rid;
        this.index = index;
        this.promptLen = prompt.length;
        this.tokens = IntList.of(prompt);
        this.params = params;
        this.logprobs = logprobs;
        this.rng = new SplittableRandom(seed);
        this.constraint = params.constraint() == null ? null : params.constraint().cursor();   // each of n samples its own
        this.listener = listener;
        this.stream = stream;
        this.arrivalNanos = System.nanoTime();
        this.detokenizer = decoder == null ? null : new IncrementalDetokenizer(decoder, params.skipSpecialTokens(),
                Arrays.copyOfRange(prompt, Math.max(0, prompt.length - IncrementalDetokenizer.CONTEXT), prompt.length));
        this.inputScoredUpTo = logprobs.wantsInput() ? Math.max(logprobs.startLen(), 1) : promptLen;
    }

    /** Asks for each position's routed experts in the output (before the sequence reaches the engine). */
    public void collectRoutedExperts() {
        if (routedExperts == null) routedExperts = new IntList();
    }

    /**
     * Puts a session's history before the prompt (without the prompt's first token if {@code
     * dropFirst}: a BOS the history already has), on the engine thread before the sequence is
     * queued: the prompt, the decoding context and the first position to score follow.
     */
    void prependHistory(int[] history, boolean dropFirst) {
        if (history.length == 0 && !dropFirst) return;
        if (status != SequenceStatus.WAITING || numComputed > 0 || numOutputTokens() > 0)
            throw new IllegalStateException("a history goes before a sequence that has not started");
        int[] prompt = tokens.toArray();
        tokens.clearDetached();   // snapshots share the token array's prefixes (SequenceOutput.Ids)
        for (int t : history) tokens.add(t);
        for (int i = dropFirst ? 1 : 0; i < prompt.length; i++) tokens.add(prompt[i]);
        promptLen = tokens.size();
        if (detokenizer != null)
            detokenizer = detokenizer.withContext(tokens.toArray(Math.max(0, promptLen - IncrementalDetokenizer.CONTEXT), promptLen));
        inputScoredUpTo = logprobs.wantsInput() ? Math.max(logprobs.startLen(), 1) : promptLen;
    }

    /** Makes this sample wait for {@code leader}'s prompt KV and then reuse it (n > 1). */
    public void sharePrefixWith(Sequence leader) {
        this.prefixLeader = leader;
    }

    /** Leaves this sequence out of the metrics (warm-up and health probes). */
    public Sequence withoutMetrics() {
        logMetrics = false;
        return this;
    }

    /**
     * Makes the prompt these embeddings (SGLang's {@code input_embeds}); the token ids given at
     * construction are placeholders of the same length. Samples of one request pass the same
     * {@code cacheNamespace} so that they share the prompt's KV.
     */
    public Sequence withPromptEmbeds(PromptEmbeds embeds, long cacheNamespace) {
        if (embeds.length() != promptLen)
            throw new IllegalArgumentException(embeds.length() + " embedding rows for a prompt of " + promptLen + " positions");
        if (cacheNamespace == 0) throw new IllegalArgumentException("namespace 0 is the token prompts'");
        this.promptEmbeds = embeds;
        this.cacheNamespace = cacheNamespace;
        return this;
    }

    public String rid() {
        return rid;
    }

    public SequenceStatus status() {
        return status;
    }

    int numTokens() {
        return tokens.size();
    }

    int numOutputTokens() {
        return tokens.size() - promptLen;
    }

    /** Tokens still to run through the model (the prompt's rest, or the last sampled token). */
    int numUncomputed() {
        return tokens.size() - numComputed;
    }

    /** True once the prompt is computed, so siblings may reuse its blocks. */
    boolean promptComputed() {
        return numComputed >= promptLen || status == SequenceStatus.FINISHED;
    }

    /** Notes the version that generated the output token just appended. */
    void noteVersion(String version) {
        if (spanVersions.isEmpty() || !spanVersions.get(spanVersions.size() - 1).equals(version)) {
            spanVersions.add(version);
            spanStarts.add(numOutputTokens() - 1);
        }
    }

    /**
     * The sequence as it stands, for its listener: the text copied; the ids, the logprobs and the
     * routed experts shared prefixes of arrays only appended to (no copy on the engine thread).
     */
    SequenceOutput snapshot(String weightVersion) {
        return snapshot(weightVersion, System.nanoTime());
    }

    /**
     * As {@link #snapshot(String)}, its latency measured at {@code nowNanos} while it runs (the
     * step's clock, read once for all of a step's snapshots). A streamed step makes one snapshot a
     * sequence on the engine thread, so each allocation here counts: the common single version span
     * is an immutable one-element list, not an ArrayList and its array.
     */
    SequenceOutput snapshot(String weightVersion, long nowNanos) {
        long now = finishedNanos != 0 ? finishedNanos : nowNanos;
        String text = detokenizer == null ? null : detokenizer.text();
        return new SequenceOutput(rid, index, new SequenceOutput.Ids(tokens.backing(), promptLen, tokens.size()), text, finishReason, promptLen,
                Math.max(numCachedTokens, 0), numRetractions, outputLogprobs.prefix(), inputLogprobs.prefix(),
                weightVersion, versionSpans(), (now - arrivalNanos) / 1e9,
                firstTokenNanos == 0 ? Double.NaN : (firstTokenNanos - arrivalNanos) / 1e9,
                routedExperts == null ? null : new RoutedExperts(routedExperts.backing(), routedExperts.size()));
    }

    /** Which version generated which output tokens: each span ends where the next begins, the last at the output's end. */
    private List<SequenceOutput.VersionSpan> versionSpans() {
        int n = spanVersions.size();
        if (n == 0) return List.of();
        if (n == 1) return List.of(new SequenceOutput.VersionSpan(spanVersions.get(0), spanStarts.get(0), numOutputTokens()));
        SequenceOutput.VersionSpan[] spans = new SequenceOutput.VersionSpan[n];
        for (int i = 0; i < n; i++)
            spans[i] = new SequenceOutput.VersionSpan(spanVersions.get(i), spanStarts.get(i),
                    i + 1 < n ? spanStarts.get(i + 1) : numOutputTokens());
        return List.of(spans);
    }
}
