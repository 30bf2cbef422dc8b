package dev.rollout.constrain;

import java.util.List;
import java.util.Map;

/**
 * An EBNF/GBNF grammar as {@link EbnfParser} reads it: named rules, each an expression over
 * literals, character classes and references to rules. Positions (1-based line and column) stay
 * with rules and references, so that the compiler's errors can point at the text.
 *
 * @param rules by name, in the order of the text
 */
public record EbnfGrammar(Map<String, Rule> rules) {
    public EbnfGrammar {
        rules = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(rules));
    }

    public record Rule(String name, Expr body, int line, int column) {}

    public sealed interface Expr {}

    /** A string literal (empty: the empty string). */
    public record Text(String text) implements Expr {}

    /** One character from the set ({@code [a-z]}, {@code [^"]}, {@code .}). */
    public record Chars(CodePointSet set) implements Expr {}

    /** The rule {@code name}, where the text names it. */
    public record Ref(String name, int line, int column) implements Expr {}

    public record Seq(List<Expr> parts) implements Expr {
        public Seq {
            parts = List.copyOf(parts);
        }
    }

    public record Alt(List<Expr> options) implements Expr {
        public Alt {
            options = List.copyOf(options);
        }
    }

    /** {@code max} −1: unbounded. */
    public record Repeat(Expr body, int min, int max) implements Expr {}
}
