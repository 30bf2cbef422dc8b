package dev.rollout.env;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ArithmeticTest {
    @Test
    void evaluatesWithPrecedenceParenthesesAndUnaryMinus() throws Exception {
        assertEquals(3367, Arithmetic.eval("37*91"));
        assertEquals(14, Arithmetic.eval("2 + 3 * 4"));
        assertEquals(20, Arithmetic.eval("(2+3)*4"));
        assertEquals(-5, Arithmetic.eval("-(2+3)"));
        assertEquals(2, Arithmetic.eval("10 - 4 - 4"));
        assertEquals(5, Arithmetic.eval("100/4/5"));
        assertEquals(7, Arithmetic.eval("--7"));
    }

    @Test
    void refusesWhatItCannotEvaluateNamingWhere() {
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("12*(3")).getMessage().startsWith("missing ')'"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("2+")).getMessage().contains("ends early"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("2^3")).getMessage().contains("'^'"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("1/0")).getMessage().contains("division by zero"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("7/2")).getMessage().contains("not a whole number"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("9223372036854775807+1")).getMessage().contains("overflow"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("99999999999999999999")).getMessage().contains("too large"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("(".repeat(40) + "1" + ")".repeat(40)))
                .getMessage().contains("nested too deep"));
        assertTrue(assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("1+".repeat(200) + "1")).getMessage().contains("longer than"));
        // digits of other scripts are not numbers here
        assertThrows(Arithmetic.EvalException.class, () -> Arithmetic.eval("\u0663+1"));
    }

    @Test
    void tasksAreReproducibleAndTheirAnswersCheckable() throws Exception {
        String e = ArithmeticTasks.expression(7, 3);
        assertEquals(e, ArithmeticTasks.expression(7, 3));
        assertEquals(e, ArithmeticTasks.expressionOf(ArithmeticTasks.question(e)));
        assertTrue(e.matches("\\d\\d[-+*]\\d\\d"), e);
        Arithmetic.eval(e);
        assertNull(ArithmeticTasks.expressionOf("What time is it"));
        assertEquals(3367L, ArithmeticTasks.answerOf("37*91 is 3367."));
        assertEquals(-54L, ArithmeticTasks.answerOf("The answer is -54"));
        assertNull(ArithmeticTasks.answerOf("I do not know."));
    }

    @Test
    void latencyIsAFixedValueOrAUniformRange() {
        assertEquals(200, EnvironmentResource.drawLatency("200"));
        for (int i = 0; i < 100; i++) {
            long v = EnvironmentResource.drawLatency("50-60");
            assertTrue(v >= 50 && v <= 60, "" + v);
        }
        for (String bad : new String[] {"soon", "60-50", "-5", "1-2-3", "700000"})
            assertTrue(assertThrows(IllegalArgumentException.class, () -> EnvironmentResource.drawLatency(bad), bad).getMessage()
                    .contains("not \"" + bad + "\""), bad);
    }
}
