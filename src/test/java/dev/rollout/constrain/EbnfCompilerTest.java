package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * EBNF grammars compiled to byte DFAs: the language, exactly where the grammar is regular
 * (recursion at a rule's ends is repetition), bounded to the limit's depth where it nests, and
 * refusals that name the rule and the limit.
 */
class EbnfCompilerTest {
    static ByteDfa compile(String grammar) {
        return Constraint.ebnf(grammar, ConstraintLimits.DEFAULT).dfa();
    }

    static ByteDfa compile(String grammar, int depth) {
        ConstraintLimits d = ConstraintLimits.DEFAULT;
        return EbnfCompiler.compile(grammar, new ConstraintLimits(d.maxPatternChars(), d.maxRepeat(), d.maxNfaStates(), d.maxDfaStates(),
                d.maxMillis(), d.maxRefDepth(), depth));
    }

    static boolean matches(ByteDfa dfa, String text) {
        return dfa.matches(text.getBytes(StandardCharsets.UTF_8));
    }

    static String refused(String grammar) {
        return assertThrows(ConstraintException.class, () -> compile(grammar)).getMessage();
    }

    @Test
    void theDialectsFeatures() {
        ByteDfa d = compile("""
                root   ::= greeting ", " name "!"? (" " emoji){0,2}
                greeting ::= "hi" | "hello" | "h\\u00e9"   # xgrammar's escapes
                name   ::= [A-Z] [a-z]+
                emoji  ::= [\\U0001F600-\\U0001F64F]
                unused ::= "never referenced"
                """);
        for (String ok : List.of("hi, Bo", "hello, Alice!", "hé, Zed! 😀 🙏", "hi, Ab 😃"))
            assertTrue(matches(d, ok), ok);
        for (String no : List.of("hi, bo", "hey, Bo", "hi, B", "hi, Bo 😀 😀 😀", "hi, Bo 🚀", "never referenced"))
            assertFalse(matches(d, no), no);
    }

    @Test
    void tailAndLeftRecursionAreRepetitionAndUnbounded() {
        // xgrammar's own JSON string: right recursion; a list by left recursion
        ByteDfa s = compile("""
                root ::= "\\"" chars "\\""
                chars ::= "" | [^"\\\\] chars | "\\\\" ["\\\\n] chars
                """, 1);
        assertTrue(matches(s, "\"" + "abc\\\"def\\n".repeat(50) + "\""), "a string far longer than any depth bound");
        assertFalse(matches(s, "\"a\"b\""));
        ByteDfa list = compile("""
                root ::= list
                list ::= list "," item | item
                item ::= [0-9]+
                """, 0);
        assertTrue(matches(list, "1" + ",22".repeat(100)), "left recursion is a loop, even where the depth limit is 0");
        assertFalse(matches(list, "1,,2"));
        ByteDfa both = compile("a ::= a \"x\" | \"y\" a | \"z\"  root ::= a", 0);
        for (String ok : List.of("z", "yyzxxx", "zx", "yz")) assertTrue(matches(both, ok), ok);
        for (String no : List.of("", "xz", "zy", "yzy")) assertFalse(matches(both, no), no);
    }

    @Test
    void nestingIsBoundedAtTheLimit() {
        String parens = "root ::= \"(\" root \")\" | \"x\"";
        for (int depth : new int[] {0, 1, 3, 6}) {
            ByteDfa d = compile(parens, depth);
            String inside = "(".repeat(depth) + "x" + ")".repeat(depth);
            assertTrue(matches(d, inside), depth + ": " + inside);
            assertFalse(matches(d, "(" + inside + ")"), depth + ": one level more is cut");
            assertFalse(matches(d, "(" + inside), "and the shape is kept");
        }
        assertEquals(ConstraintLimits.DEFAULT_GRAMMAR_DEPTH, ConstraintLimits.DEFAULT.maxGrammarDepth());
        ByteDfa mutual = compile("""
                root ::= a
                a ::= "[" b "]" | "1"
                b ::= "{" a "}" | "2"
                """, 2);
        assertTrue(matches(mutual, "[{[{1}]}]"), "two re-entries of a");
        assertTrue(matches(mutual, "[{[{[2]}]}]"), "and the last a holds no b that holds an a");
        assertFalse(matches(mutual, "[{[{[{1}]}]}]"), "three are past the limit");
    }

    /** A JSON grammar as users write it (llama.cpp's json.gbnf, compacted): nesting to the limit, any length. */
    @Test
    void aJsonGrammarWithBoundedNesting() {
        String json = """
                root   ::= object
                value  ::= object | array | string | number | ("true" | "false" | "null") ws
                object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
                array  ::= "[" ws ( value ("," ws value)* )? "]" ws
                string ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\"" ws
                number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
                ws ::= | " " | "\\n" [ \\t]{0,20}
                """;
        long t0 = System.nanoTime();
        // the shape, not the speed, is under test here: a cold JVM on a loaded machine may take past the 2 s limit
        ConstraintLimits x = ConstraintLimits.DEFAULT;
        ByteDfa d = EbnfCompiler.compile(json, new ConstraintLimits(x.maxPatternChars(), x.maxRepeat(), x.maxNfaStates(), x.maxDfaStates(),
                60_000, x.maxRefDepth(), x.maxGrammarDepth()));
        double ms = (System.nanoTime() - t0) / 1e6;
        int depth = ConstraintLimits.DEFAULT_GRAMMAR_DEPTH;
        assertTrue(matches(d, "{\"a\": [1, -2.5e3, \"x\\u00e9\\n\", true, null, {}], \"b\": {\"c\": []}}"));
        assertTrue(matches(d, "{\"long\": \"" + "y".repeat(5000) + "\"}"), "strings and lists are unbounded");
        // the top object, then `depth` containers inside it, alternating arrays and objects
        StringBuilder open = new StringBuilder("{\"k\": "), close = new StringBuilder("}");
        for (int i = 0; i < depth; i++) {
            open.append(i % 2 == 0 ? "[" : "{\"k\": ");
            close.insert(0, i % 2 == 0 ? "]" : "}");
        }
        assertTrue(matches(d, open + "1" + close), open + "1" + close);
        assertFalse(matches(d, open + "[1]" + close), "one level more");
        assertTrue(matches(d, open + "[]" + close), "but an empty one needs no value inside");
        assertFalse(matches(d, "{\"a\": tru}"));
        assertFalse(matches(d, "[1]"), "root is an object");
        System.out.printf("json.gbnf at depth %d: %d states in %.0f ms%n", depth, d.states(), ms);
    }

    @Test
    void refusalsNameTheRule() {
        assertTrue(refused("item ::= \"x\"").contains("no rule 'root'"));
        String undefined = refused("root ::= item\n  (\", \" itme)*\nitem ::= \"x\"");
        assertTrue(undefined.contains("the rule 'itme' is not defined, at line 2, column 9 (rule 'root')"), undefined);
        String never = refused("root ::= a\na ::= a \"x\" | \"y\" a");
        assertTrue(never.contains("no text: the rule 'a' never ends") && never.contains("line 2, column 1"), never);
        assertTrue(matches(compile("root ::= \"x\" a?\na ::= a \"x\""), "x"), "a rule that never ends only where it is optional");
        String noWayOut = refused("root ::= a\na ::= \"x\" b\nb ::= \"y\" a");
        assertTrue(noWayOut.contains("matches no text") && noWayOut.contains("'a', 'b'") && noWayOut.contains("levels"), noWayOut);
        String nothing = refused("root ::= [^\\x00-\\U0010FFFF]");
        assertTrue(nothing.contains("no text"), nothing);
    }

    /** Hostile grammars are refused by the state and time limits, naming the rule (and, if recursive, the depth). */
    @Test
    void hostileGrammarsAreRefusedWithinTheLimits() {
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            String exploding = refused("root ::= [ab]* \"a\" [ab]{25}");
            assertTrue(exploding.startsWith("ebnf: rule 'root': ") && exploding.contains("automaton states"), exploding);
            // 26 children a level: 26^depth ways to be part-way through a tree
            String wide = refused("root ::= t\nt ::= \"(\" t t t t t t t t t t t t t t t t t t t t t t t t t t \")\" | \"x\"");
            assertTrue(wide.contains("the recursive rule 't', expanded") && wide.contains("of at most 4 levels deep (the limit of nesting)"), wide);
            String copies = refused("root ::= a{1000}\na ::= b{1000}\nb ::= \"x\" | \"y\"");
            assertTrue(copies.contains("automaton states"), copies);
        });
    }

    @Test
    void longChainsOfRulesCompileWithoutDeepRecursion() {
        ByteDfa d = assertTimeoutPreemptively(Duration.ofSeconds(30), () -> compile(chain(300)));
        assertTrue(matches(d, "a".repeat(300) + "c"));
        assertTrue(matches(d, "aab"));
        assertFalse(matches(d, "a".repeat(301) + "c"));
        // 3,000 rules deep: compiled or refused by the time limit, but no StackOverflowError
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            try {
                assertTrue(matches(compile(chain(3000)), "a".repeat(3000) + "c"));
            } catch (ConstraintException e) {
                assertTrue(e.getMessage().contains("ms to compile"), e.getMessage());
            }
        });
    }

    /** r0 ::= "a" r1 | "b", r1 ::= "a" r2 | "b", ..., rn ::= "c". */
    static String chain(int n) {
        StringBuilder g = new StringBuilder("root ::= r0\n");
        for (int i = 0; i < n; i++) g.append("r").append(i).append(" ::= \"a\" r").append(i + 1).append(" | \"b\"\n");
        return g.append("r").append(n).append(" ::= \"c\"\n").toString();
    }

    @Test
    void theCacheKeepsGrammarsAndRefusals() {
        Vocabulary v = Vocabulary.of(new byte[][] {"a".getBytes(), "b".getBytes(), "ab".getBytes(), new byte[0]}, 4, new int[] {3});
        ConstraintCache cache = new ConstraintCache(v, ConstraintLimits.DEFAULT, 4);
        TokenIndex a = cache.ebnf("root ::= \"a\" \"b\"*");
        assertTrue(a == cache.ebnf("root ::= \"a\" \"b\"*"));
        assertTrue(a != cache.regex("root ::= \"a\" \"b\"*"), "a grammar and a regex of the same text are different constraints");
        assertThrows(ConstraintException.class, () -> cache.ebnf("root ::= x"));
        assertThrows(ConstraintException.class, () -> cache.ebnf("root ::= x"));
        assertEquals(3, cache.size());
    }
}
