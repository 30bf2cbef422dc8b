package dev.rollout.env;

import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The example environment's task: "What is 37*91?", answered with the help of the calculator.
 * Two-digit operands make the products hard to guess and easy to check; the same seed and index
 * always give the same question, so that runs compare on the same episodes.
 */
public final class ArithmeticTasks {
    private static final Pattern QUESTION = Pattern.compile("What is (.+)\\?");
    private static final Pattern LAST_INTEGER = Pattern.compile("-?\\d+(?!.*\\d)", Pattern.DOTALL);
    private static final char[] OPS = {'+', '-', '*'};

    private ArithmeticTasks() {}

    /** The expression of task {@code index} of the stream {@code seed}. */
    public static String expression(long seed, int index) {
        SplittableRandom r = new SplittableRandom(seed * 1_000_003L + index);
        int a = r.nextInt(10, 100), b = r.nextInt(10, 100);
        return a + "" + OPS[r.nextInt(OPS.length)] + b;
    }

    public static String question(String expression) {
        return "What is " + expression + "?";
    }

    /** The expression a question asks about, or null when it is not one of these tasks. */
    public static String expressionOf(String question) {
        Matcher m = QUESTION.matcher(question.strip());
        return m.matches() ? m.group(1) : null;
    }

    /** The last integer in a response: its answer, or null when it states none. */
    public static Long answerOf(String response) {
        Matcher m = LAST_INTEGER.matcher(response);
        if (!m.find()) return null;
        try {
            return Long.parseLong(m.group());
        } catch (NumberFormatException e) {
            return null;
        }
    }
}
