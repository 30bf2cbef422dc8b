package dev.rollout.env;

/**
 * The calculator tool's evaluator: integer expressions with {@code + - * /}, unary minus and
 * parentheses, by recursive descent. Hand-written because the tool must evaluate exactly this and
 * nothing more (no scripting engine running model output), and its errors are observations the
 * model reads, so they name the position.
 */
public final class Arithmetic {
    /** An expression the calculator cannot evaluate; the message is what the model is shown. */
    public static final class EvalException extends Exception {
        EvalException(String message) {
            super(message, null, false, false);
        }
    }

    static final int MAX_LENGTH = 256;

    private final String s;
    private int at;

    private Arithmetic(String s) {
        this.s = s;
    }

    /** Evaluates {@code expression}; division must be exact, and results must fit in a long. */
    public static long eval(String expression) throws EvalException {
        if (expression.length() > MAX_LENGTH) throw new EvalException("expression longer than " + MAX_LENGTH + " characters");
        Arithmetic p = new Arithmetic(expression);
        long v = p.sum(0);
        p.skipSpaces();
        if (p.at < p.s.length()) throw p.error("unexpected '" + p.s.charAt(p.at) + "'");
        return v;
    }

    private long sum(int depth) throws EvalException {
        long v = product(depth);
        while (true) {
            char c = peek();
            if (c == '+' || c == '-') {
                at++;
                long r = product(depth);
                try {
                    v = c == '+' ? Math.addExact(v, r) : Math.subtractExact(v, r);
                } catch (ArithmeticException e) {
                    throw error("overflow");
                }
            } else {
                return v;
            }
        }
    }

    private long product(int depth) throws EvalException {
        long v = unary(depth);
        while (true) {
            char c = peek();
            if (c == '*' || c == '/') {
                at++;
                int opAt = at;
                long r = unary(depth);
                if (c == '*') {
                    try {
                        v = Math.multiplyExact(v, r);
                    } catch (ArithmeticException e) {
                        throw error("overflow");
                    }
                } else {
                    if (r == 0) throw new EvalException("division by zero at " + opAt);
                    if (v % r != 0) throw new EvalException(v + "/" + r + " is not a whole number");
                    v /= r;
                }
            } else {
                return v;
            }
        }
    }

    private long unary(int depth) throws EvalException {
        if (peek() == '-') {
            at++;
            return -unary(depth);
        }
        return atom(depth);
    }

    private long atom(int depth) throws EvalException {
        char c = peek();
        if (c == '(') {
            if (depth > 32) throw error("parentheses nested too deep");
            at++;
            long v = sum(depth + 1);
            if (peek() != ')') throw error("missing ')'");
            at++;
            return v;
        }
        if (c < '0' || c > '9') throw error(at >= s.length() ? "expression ends early" : "unexpected '" + c + "'");
        int start = at;
        while (at < s.length() && s.charAt(at) >= '0' && s.charAt(at) <= '9') at++;
        try {
            return Long.parseLong(s.substring(start, at));
        } catch (NumberFormatException e) {
            throw new EvalException("number too large at " + start);
        }
    }

    private char peek() {
        skipSpaces();
        return at < s.length() ? s.charAt(at) : '\0';
    }

    private void skipSpaces() {
        while (at < s.length() && s.charAt(at) == ' ') at++;
    }

    private EvalException error(String what) {
        return new EvalException(what + " at " + at);
    }
}
