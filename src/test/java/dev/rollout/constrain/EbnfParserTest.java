package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.constrain.EbnfGrammar.Alt;
import dev.rollout.constrain.EbnfGrammar.Chars;
import dev.rollout.constrain.EbnfGrammar.Expr;
import dev.rollout.constrain.EbnfGrammar.Ref;
import dev.rollout.constrain.EbnfGrammar.Repeat;
import dev.rollout.constrain.EbnfGrammar.Seq;
import dev.rollout.constrain.EbnfGrammar.Text;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The EBNF/GBNF dialect (xgrammar's, llama.cpp's): what parses to what, and errors that say where. */
class EbnfParserTest {
    static EbnfGrammar parse(String text) {
        return EbnfParser.parse(text, ConstraintLimits.DEFAULT);
    }

    static Expr body(String text, String rule) {
        return parse(text).rules().get(rule).body();
    }

    static String error(String text) {
        return assertThrows(ConstraintException.class, () -> parse(text)).getMessage();
    }

    @Test
    void rulesSpanLinesAndEndWhereTheNextBegins() {
        EbnfGrammar g = parse("""
                # a comment line
                root ::= greeting ws-1 name_2   # trailing comment
                greeting ::= "hi" |
                             "hello"
                  | "hey"
                ws-1 ::= [ \\t]*
                name_2 ::= [A-Z] [a-z]{1,8}
                """);
        assertEquals(List.of("root", "greeting", "ws-1", "name_2"), List.copyOf(g.rules().keySet()));
        assertEquals(new Seq(List.of(new Ref("greeting", 2, 10), new Ref("ws-1", 2, 19), new Ref("name_2", 2, 24))), g.rules().get("root").body());
        assertEquals(new Alt(List.of(new Text("hi"), new Text("hello"), new Text("hey"))), g.rules().get("greeting").body());
        assertEquals(3, g.rules().get("greeting").line());
        assertEquals(new Repeat(new Chars(CodePointSet.ofRanges(' ', ' ', '\t', '\t')), 0, -1), g.rules().get("ws-1").body());
        assertEquals(new Seq(List.of(new Chars(CodePointSet.range('A', 'Z')), new Repeat(new Chars(CodePointSet.range('a', 'z')), 1, 8))),
                g.rules().get("name_2").body());
    }

    @Test
    void rulesOnOneLineAndGbnfsEmptyAlternative() {
        EbnfGrammar g = parse("root ::= a b a ::= \"x\" b ::= | \" \" | \"\\n\"");
        assertEquals(new Seq(List.of(new Ref("a", 1, 10), new Ref("b", 1, 12))), g.rules().get("root").body());
        assertEquals(new Alt(List.of(new Seq(List.of()), new Text(" "), new Text("\n"))), g.rules().get("b").body());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '¦', quoteCharacter = '`', value = {
            "\"a\\\"b\\\\c\\/\\'\\?\"¦a\"b\\c/'?",
            "\"\\x41\\x1F600\\u00e9\\U0001F601\"¦A😀é😁",
            "\"\\ud83d\\ude02\"¦😂",
            "\"中文 😀\"¦中文 😀",
            "\"\\[\\]\"¦[]"})
    void literalEscapes(String literal, String text) {
        assertEquals(new Text(text), body("root ::= " + literal, "root"));
    }

    @Test
    void controlCharacterEscapes() {
        assertEquals(new Text("\n\r\t\b\f\u0007\u000b\u0000\u001b"), body("root ::= \"\\n\\r\\t\\b\\f\\a\\v\\0\\e\"", "root"));
    }

    @Test
    void characterClasses() {
        assertEquals(new Chars(CodePointSet.of('"').complement()), body("root ::= [^\"]", "root"));
        assertEquals(new Chars(CodePointSet.ALL), body("root ::= [^]", "root"));
        assertEquals(new Chars(CodePointSet.ALL), body("root ::= .", "root"), "llama.cpp's any character, newlines too");
        assertEquals(new Chars(CodePointSet.ofRanges('-', '-', 'a', 'c', ']', ']', '\\', '\\')), body("root ::= [\\-a-c\\]\\\\]", "root"));
        assertEquals(new Chars(CodePointSet.ofRanges('a', 'a', '-', '-')), body("root ::= [a-]", "root"), "a dash before ] is itself");
        assertEquals(new Chars(CodePointSet.ofRanges(0, 0x1F, '"', '"', '\\', '\\', 0x7F, 0x7F).complement()),
                body("root ::= [^\"\\\\\\x7F\\x00-\\x1F]", "root"), "llama.cpp's json.gbnf string character");
        assertEquals(new Chars(CodePointSet.range(0x4E00, 0x9FFF)), body("root ::= [\\u4e00-\\u9fff]", "root"));
    }

    @Test
    void groupingAndRepetition() {
        Expr e = body("root ::= (\"a\" | \"b\")+ \"c\"? \"d\"* \"e\"{3} \"f\"{2,} \"g\"{1,4} \"h\"{,2} ( )", "root");
        assertEquals(new Seq(List.of(
                new Repeat(new Alt(List.of(new Text("a"), new Text("b"))), 1, -1),
                new Repeat(new Text("c"), 0, 1), new Repeat(new Text("d"), 0, -1), new Repeat(new Text("e"), 3, 3),
                new Repeat(new Text("f"), 2, -1), new Repeat(new Text("g"), 1, 4), new Repeat(new Text("h"), 0, 2),
                new Seq(List.of()))), e);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '¦', quoteCharacter = '`', value = {
            "root ::= \"abc¦the literal is not closed at line 1, column 10",
            "root ::= [abc¦the character class is not closed at line 1, column 10",
            "root ::= (\"a\" | \"b\"¦'(' is not closed at line 1, column 10",
            "root ::= \"a\")¦unbalanced ')' at line 1, column 13",
            "root ::= \"\\q\"¦bad escape \\q at line 1, column 11 (rule 'root')",
            "root ::= [\\d]¦\\d is a regex class",
            "root ::= \"\\x\"¦\\x needs hex digits",
            "root ::= \"\\ud800\"¦is not a Unicode character",
            "root ::= [z-a]¦the range z-a is backwards",
            "root ::= []¦matches nothing",
            "root ::= \"a\"{3,2}¦minimum above its maximum",
            "root ::= \"a\"{99999}¦above the limit of 10000",
            "root ::= \"a\"{x}¦a repetition is {m}",
            "root ::= *\"a\"¦'*' has nothing to repeat",
            "root ::= 'a'¦double quotes",
            "root ::= \"a\" @¦unexpected '@' at line 1, column 14",
            "root = \"a\"¦expected '::=' after the rule name 'root', found '='",
            "start: \"a\"¦a Lark grammar?",
            "root[temperature=0.5] ::= \"a\"¦rule options (root[...]) are not supported",
            "root ::= \"a\" (= \"b\")¦lookahead assertions",
            "root ::= TagDispatch((\"<t>\", x))¦TagDispatch(...) is not supported",
            "root ::= \"a\" root ::= \"b\"¦the rule 'root' is defined twice (first at line 1, column 1) at line 1, column 14"})
    void errorsSayWhatAndWhere(String grammar, String says) {
        String m = error(grammar);
        assertTrue(m.startsWith("ebnf: ") && m.contains(says), m);
    }

    @Test
    void positionsCountLinesAndColumns() {
        String m = error("root ::= item+\n\nitem ::= \"x\" |\n   \"y\\z\"\n");
        assertTrue(m.endsWith("bad escape \\z at line 4, column 6 (rule 'item')"), m);
        assertTrue(error("  # nothing but a comment\n").contains("the grammar is empty"));
        String raw = error("root ::= \"a\nb\"");
        assertTrue(raw.contains("line break") && raw.contains("line 1, column 12"), raw);
    }

    @Test
    void hostileNestingIsRefusedNotAStackOverflow() {
        String deep = "root ::= " + "(".repeat(10_000) + "\"a\"" + ")".repeat(10_000);
        assertTrue(error(deep).contains("nest deeper than " + EbnfParser.MAX_NESTING));
        assertTrue(error("root ::= \"a\"" + "?".repeat(50_000)).contains("repetition operators"));
        String big = "root ::= \"" + "a".repeat(ConstraintLimits.DEFAULT.maxPatternChars()) + "\"";
        assertTrue(error(big).contains("more than the limit of " + ConstraintLimits.DEFAULT.maxPatternChars()));
    }
}
