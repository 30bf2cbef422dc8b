package dev.rollout.runtime;

import dev.rollout.constrain.ConstraintCache;
import dev.rollout.constrain.ConstraintException;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.constrain.Vocabulary;
import dev.rollout.tokenizer.HfTokenizer;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.logging.Logger;

/**
 * The server's constraint compiler (issue #22, ADR 0029): the served model's vocabulary as token
 * bytes, and one {@link ConstraintCache} over it that every request shares. Called on HTTP
 * threads, so that a bad regex or schema is a 400 and the compile time never lands on the engine
 * thread; the engine thread only walks the {@link TokenIndex}es they hand it.
 *
 * <p>The vocabulary (151,936 Qwen3 tokens: the tokenizer.json read again and a trie sorted) is
 * built by the first constrained request, not at start-up: a server that never sees one never
 * pays for it.
 */
public final class Constraints {
    private static final Logger LOG = Logger.getLogger(Constraints.class.getName());
    /**
     * Compiled constraints kept, least recently used dropped first. Each keeps the masks of the
     * states its requests visited (19 KB a state for Qwen3): an RL run sends a few schemas, each
     * many times.
     */
    static final int CACHE_ENTRIES = 64;
    /** The most masks computed ahead per constraint: 19 MB of them at Qwen's vocabulary. */
    static final int PRECOMPUTED_STATES = 1024;

    private final HfTokenizer tokenizer;
    private final int vocabSize;
    private final int[] eosIds;
    private final ConstraintLimits limits;
    /** Where the masks of a constraint's states are computed ahead of the engine, or null for none. */
    private final Executor background;
    private ConstraintCache cache;   // guarded by this
    private String unavailable;      // guarded by this: why the vocabulary cannot be built, once found

    /**
     * @param tokenizer the model's tokenizer, or null (then every constraint is refused, naming why)
     * @param vocabSize the logits' width: the model's vocabulary, at least the tokenizer's
     * @param eosIds    the ids that end a sequence (the engine's EOS)
     * @param background where to compute masks ahead of the engine (one thread is enough), or null
     */
    public Constraints(HfTokenizer tokenizer, int vocabSize, List<Integer> eosIds, ConstraintLimits limits, Executor background) {
        this.tokenizer = tokenizer;
        this.vocabSize = vocabSize;
        this.eosIds = eosIds.stream().mapToInt(Integer::intValue).toArray();
        this.limits = limits;
        this.background = background;
    }

    /** A regex (Python's {@code re} syntax, the subset of ADR 0029) over this model's vocabulary. */
    public TokenIndex regex(String regex) {
        return warm(cache().regex(regex));
    }

    /** A JSON schema (the subset of ADR 0029) over this model's vocabulary. */
    public TokenIndex jsonSchema(String schema) {
        return warm(cache().jsonSchema(schema));
    }

    /** An EBNF/GBNF grammar (ADR 0029's dialect; recursion bounded) over this model's vocabulary. */
    public TokenIndex ebnf(String grammar) {
        return warm(cache().ebnf(grammar));
    }

    /** A structural tag (xgrammar's format, the subset of ADR 0029's slice-3 addendum): how tool calls are enforced. */
    public TokenIndex structuralTag(String tag) {
        return warm(cache().structuralTag(tag));
    }

    /**
     * The start state's mask is every request's first step: computed here, on the HTTP thread, so
     * the engine's first constrained step finds it cached. The next states' are computed in the
     * background, once per compiled constraint, nearest the start first: otherwise each would be
     * a walk of the vocabulary (about a millisecond at Qwen's) on the engine thread, inside a step
     * of every request in the batch, the first time a request reached its state.
     */
    private TokenIndex warm(TokenIndex index) {
        index.mask(index.start());
        if (background != null && !index.precomputed()) {   // once per constraint, not once per request
            try {
                background.execute(() -> index.precompute(PRECOMPUTED_STATES));
            } catch (RejectedExecutionException stopping) {
                // the server is stopping: the engine computes what it needs, as without a background
            }
        }
        return index;
    }

    /**
     * The cache, built on first use; a {@link ConstraintException} naming why where it cannot be
     * (no tokenizer, or not a byte-level BPE one).
     */
    private synchronized ConstraintCache cache() {
        if (cache != null) return cache;
        if (unavailable == null) {
            try {
                long t0 = System.nanoTime();
                if (tokenizer == null) throw new UnsupportedOperationException("the model has no tokenizer.json");
                byte[][] bytes = tokenizer.tokenBytes();
                if (bytes.length > vocabSize)
                    throw new UnsupportedOperationException("the tokenizer has ids up to " + (bytes.length - 1) + ", past the model's "
                            + vocabSize + " logits");
                cache = new ConstraintCache(Vocabulary.of(bytes, vocabSize, eosIds), limits, CACHE_ENTRIES);
                LOG.info(() -> String.format("constrained decoding: the vocabulary of %d tokens is ready in %.1f s", bytes.length,
                        (System.nanoTime() - t0) / 1e9));
                return cache;
            } catch (UnsupportedOperationException | IOException e) {
                unavailable = e.getMessage();
                LOG.warning("constrained decoding is unavailable: " + unavailable);
            }
        }
        throw new ConstraintException("constrained decoding is unavailable on this server: " + unavailable);
    }
}
