package dev.rollout.constrain;

import java.util.ArrayList;
import java.util.List;

/**
 * A regular expression as a tree, the one form both the regex parser and the JSON-schema compiler
 * produce and {@link AutomatonBuilder} compiles. Atoms are sets of code points; {@code jsonEscaped}
 * atoms stand for characters inside a JSON string, written as the JSON text writes them (a quote as
 * {@code \"}, a control character as an escape), so that a schema's {@code pattern} constrains the
 * decoded string and not its escaped spelling.
 */
public sealed interface Rx {
    record Chars(CodePointSet set, boolean jsonEscaped) implements Rx {}

    record Seq(List<Rx> parts) implements Rx {
        public Seq {
            parts = List.copyOf(parts);
        }
    }

    record Alt(List<Rx> options) implements Rx {
        public Alt {
            if (options.isEmpty()) throw new IllegalArgumentException("an alternation needs an option");
            options = List.copyOf(options);
        }
    }

    /** {@code max} −1: unbounded. */
    record Repeat(Rx body, int min, int max) implements Rx {}

    /**
     * A JSON string's characters ({@code chars}, {@code jsonEscaped}), at least {@code minCodePoints}
     * of them and at most {@code maxUtf16Units} UTF-16 units: a character outside the Basic
     * Multilingual Plane counts 1 toward the minimum and 2 toward the maximum. JSON Schema counts
     * {@code minLength}/{@code maxLength} in code points, zod (the OpenAI and Vercel SDKs' validator)
     * in JavaScript's {@code string.length}, UTF-16 units; a string held to both readings is valid
     * under each (ADR 0029). Built by {@link AutomatonBuilder} as a counter of (units, characters).
     */
    record StringChars(Chars chars, int minCodePoints, int maxUtf16Units) implements Rx {}

    /**
     * A part compiled already, used as it is. The grammar compiler ({@link EbnfCompiler})
     * minimizes each rule once and refers to the result wherever the rule is used: a recursive
     * rule expanded level by level would otherwise copy its whole subtree at each reference.
     */
    record Compiled(ByteDfa dfa) implements Rx {}

    Rx EMPTY = new Seq(List.of());

    static Rx chars(CodePointSet set) {
        return new Chars(set, false);
    }

    /** The text itself, character by character. */
    static Rx literal(String text) {
        List<Rx> parts = new ArrayList<>();
        text.codePoints().forEach(cp -> parts.add(chars(CodePointSet.of(cp))));
        return parts.size() == 1 ? parts.get(0) : new Seq(parts);
    }

    static Rx seq(Rx... parts) {
        return new Seq(List.of(parts));
    }

    static Rx alt(List<Rx> options) {
        return options.size() == 1 ? options.get(0) : new Alt(options);
    }

    static Rx alt(Rx... options) {
        return alt(List.of(options));
    }

    static Rx optional(Rx body) {
        return new Repeat(body, 0, 1);
    }
}
