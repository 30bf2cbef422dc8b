package dev.rollout.constrain;

/**
 * A regex or schema the engine cannot or will not compile; its message names the problem and is
 * meant for the client (the API turns it into a 400).
 */
public class ConstraintException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public ConstraintException(String message) {
        super(message);
    }
}
