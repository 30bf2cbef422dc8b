package dev.rollout.constrain;

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

    public TokenIndex(Vocabulary vocab, ByteDfa dfa) {
        this.vocab = vocab;
        this.dfa = dfa;
        this.masks = new AtomicReferenceArray<>(dfa.states());
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
