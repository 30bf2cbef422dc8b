package dev.rollout.constrain;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * One constraint's automaton over one vocabulary: for each automaton state, the tokens whose
 * bytes keep the output a prefix of some match (the walk through the DFA does not die; every
 * state of a {@link ByteDfa} is live), plus the EOS ids where the state accepts.
 *
 * <p>Masks are computed on first use, one trie walk per state, and kept: concurrent callers may
 * both compute one, and the first stored wins, so no lock is held during a walk. The bytes of a
 * token may end inside a character (byte-level BPE splits rare characters); the walk is over
 * bytes, so such a token is allowed exactly when some continuation completes the character into
 * one the constraint allows.
 */
public final class TokenIndex {
    private final Vocabulary vocab;
    private final ByteDfa dfa;
    private final AtomicReferenceArray<TokenMask> masks;
    /** Whether {@link #precompute} has been called: one walk of the states per index. */
    private final AtomicBoolean precomputed = new AtomicBoolean();
    /** What an ended output allows: nothing. One per index, as every state's mask is, so caches of masks see one. */
    private final TokenMask none;

    public TokenIndex(Vocabulary vocab, ByteDfa dfa) {
        this.vocab = vocab;
        this.dfa = dfa;
        this.masks = new AtomicReferenceArray<>(dfa.states());
        this.none = new TokenMask(new long[(vocab.size() + 63) >>> 6], vocab.size());
    }

    public Vocabulary vocabulary() {
        return vocab;
    }

    public ByteDfa dfa() {
        return dfa;
    }

    /** The state a sequence starts in. */
    public int start() {
        return ByteDfa.START;
    }

    public TokenMask mask(int state) {
        TokenMask m = masks.get(state);
        if (m == null) {
            m = compute(state);
            if (!masks.compareAndSet(state, null, m)) m = masks.get(state);
        }
        return m;
    }

    /**
     * Computes the masks of up to {@code maxStates} states, nearest the start first (breadth-first
     * over the automaton's byte transitions), so that the engine's steps find them cached rather
     * than walking the vocabulary themselves. Once per index: a later call returns 0 at once.
     * Safe beside the engine's own {@link #mask} calls (the first mask stored wins).
     *
     * @return how many masks this call computed
     */
    public int precompute(int maxStates) {
        if (!precomputed.compareAndSet(false, true)) return 0;
        int states = dfa.states(), classes = dfa.classes(), computed = 0;
        int[] next = dfa.next();
        int[] queue = new int[states];
        boolean[] seen = new boolean[states];
        int head = 0, tail = 0;
        queue[tail++] = start();
        seen[start()] = true;
        while (head < tail && computed < maxStates) {
            int s = queue[head++];
            if (masks.get(s) == null) {
                mask(s);
                computed++;
            }
            for (int c = 0; c < classes; c++) {
                int t = next[s * classes + c];
                if (t != ByteDfa.DEAD && !seen[t]) {
                    seen[t] = true;
                    queue[tail++] = t;
                }
            }
        }
        return computed;
    }

    /** Whether {@link #precompute} has been called on this index. */
    public boolean precomputed() {
        return precomputed.get();
    }

    /** Whether a state's mask has been computed. */
    boolean hasMask(int state) {
        return masks.get(state) != null;
    }

    /** The empty mask: nothing may follow an output that has ended. */
    public TokenMask none() {
        return none;
    }

    /** The state after a token (not EOS), or {@link ByteDfa#DEAD} where the token is not allowed. */
    public int next(int state, int tokenId) {
        byte[] b = vocab.bytes(tokenId);
        return b == null ? ByteDfa.DEAD : dfa.walk(state, b);
    }

    /** Whether the output may end (EOS) in this state. */
    public boolean canEnd(int state) {
        return dfa.accept()[state];
    }

    /** Whether the output must end here: it accepts and nothing may follow. */
    public boolean mustEnd(int state) {
        return dfa.accept()[state] && dfa.isFinal(state);
    }

    public ConstraintCursor cursor() {
        return new ConstraintCursor(this);
    }

    private TokenMask compute(int state) {
        long[] words = new long[(vocab.size() + 63) >>> 6];
        int[] stateAt = new int[vocab.maxDepth + 1];
        stateAt[0] = state;
        byte[] nodeByte = vocab.nodeByte;
        int[] depth = vocab.depth, skip = vocab.skip, from = vocab.tokensFrom, tokens = vocab.tokens;
        byte[] classOf = dfa.classOf();
        int classes = dfa.classes();
        int[] next = dfa.next();
        int n = nodeByte.length;
        for (int i = 0; i < n; ) {
            int d = depth[i];
            int s = next[stateAt[d - 1] * classes + (classOf[nodeByte[i] & 0xFF] & 0xFF)];
            if (s == ByteDfa.DEAD) {
                i = skip[i];
                continue;
            }
            stateAt[d] = s;
            for (int t = from[i]; t < from[i + 1]; t++) {
                int id = tokens[t];
                words[id >>> 6] |= 1L << id;
            }
            i++;
        }
        if (dfa.accept()[state]) for (int e : vocab.eosIds()) words[e >>> 6] |= 1L << e;
        return new TokenMask(words, vocab.size());
    }
}
