package dev.rollout.constrain;

/**
 * One sequence's place in its constraint. Not thread-safe: a sequence is advanced by one thread
 * at a time (the engine's), while the {@link TokenIndex} it reads is shared.
 */
public final class ConstraintCursor {
    private final TokenIndex index;
    private int state;
    private boolean ended;

    ConstraintCursor(TokenIndex index) {
        this.index = index;
        this.state = index.start();
    }

    public int state() {
        return state;
    }

    /** Whether EOS has been accepted. */
    public boolean ended() {
        return ended;
    }

    /** The tokens allowed next (nothing once ended). */
    public TokenMask allowed() {
        return ended ? index.none() : index.mask(state);
    }

    public boolean canEnd() {
        return !ended && index.canEnd(state);
    }

    /** The text is complete and nothing may follow: only EOS is allowed. */
    public boolean mustEnd() {
        return !ended && index.mustEnd(state);
    }

    /**
     * Takes a token: true and moves on where it is allowed, false and stays put where not (the
     * caller decides whether a rejected token is a bug or a request to refuse).
     */
    public boolean advance(int tokenId) {
        if (ended) return false;
        if (index.vocabulary().isEos(tokenId)) {
            if (!index.canEnd(state)) return false;
            ended = true;
            return true;
        }
        int s = index.next(state, tokenId);
        if (s == ByteDfa.DEAD) return false;
        state = s;
        return true;
    }
}
