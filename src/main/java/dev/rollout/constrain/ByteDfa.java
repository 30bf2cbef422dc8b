package dev.rollout.constrain;


/**
 * A trimmed DFA over bytes as flat tables, for the token walk's inner loop: states are ints (the
 * start is 0), bytes fall into classes (bytes no transition tells apart share one), and every state
 * is live: an accepting state can be reached from it. A step that would leave the live states
 * answers {@link #DEAD}, so "this prefix can still become a match" is just "the walk did not die".
 *
 * @param classOf each byte's class
 * @param classes how many classes
 * @param next {@code next[state * classes + class]}: the next state, or {@link #DEAD}
 * @param accept whether each state accepts (the text may end there)
 */
public record ByteDfa(byte[] classOf, int classes, int[] next, boolean[] accept) {
    public static final int DEAD = -1;
    public static final int START = 0;

    public int states() {
        return accept.length;
    }

    public int step(int state, int b) {
        return next[state * classes + (classOf[b & 0xFF] & 0xFF)];
    }

    /** The state after all the bytes, or {@link #DEAD}. */
    public int walk(int state, byte[] bytes) {
        for (int i = 0; i < bytes.length && state != DEAD; i++) state = step(state, bytes[i]);
        return state;
    }

    public boolean matches(byte[] text) {
        int s = walk(START, text);
        return s != DEAD && accept[s];
    }

    /** True where no byte can follow: the text must end here. */
    public boolean isFinal(int state) {
        for (int c = 0; c < classes; c++) if (next[state * classes + c] != DEAD) return false;
        return true;
    }
}
