package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Free text in structural tags (issue #22): {@code any_text} and {@code triggered_tags} as byte
 * DFAs ({@link FreeText}). Triggers dispatch the moment they are written, tags' contents are
 * constrained, excludes and a surrounding tag's end are kept out of the text, free text is any
 * valid UTF-8 and nothing else, and hostile tag sets are refused by the limits' names. A
 * reference matcher of the streaming semantics is held against the automaton on every short text.
 */
class FreeTextTest {
    static boolean accepts(String tag, String text) {
        return accepts(tag, text.getBytes(StandardCharsets.UTF_8));
    }

    static boolean accepts(String tag, byte[] text) {
        return dfa(tag).matches(text);
    }

    static final java.util.Map<String, ByteDfa> COMPILED = new java.util.concurrent.ConcurrentHashMap<>();

    static ByteDfa dfa(String tag) {
        return COMPILED.computeIfAbsent(tag, t -> Constraint.structuralTag(t, ConstraintLimits.DEFAULT).dfa());
    }

    static String st(String format) {
        return "{\"type\": \"structural_tag\", \"format\": " + format.replace('\'', '"') + "}";
    }

    static byte[] bytes(int... b) {
        byte[] out = new byte[b.length];
        for (int i = 0; i < b.length; i++) out[i] = (byte) b[i];
        return out;
    }

    /** A walk that is still alive (a prefix of some accepted text) but not accepted. */
    static boolean livePrefix(ByteDfa d, byte[] text) {
        int s = d.walk(ByteDfa.START, text);
        return s != ByteDfa.DEAD && !d.accept()[s];
    }

    @Test
    void anyTextIsValidUtf8AndNothingElse() {
        ByteDfa any = dfa(st("{'type': 'any_text'}"));
        for (String ok : List.of("", "plain", "naïve — ünïcödé", "数学", "emoji 😀 and \u0000 nul", "\uFFFF\uD7FF\uE000", "\uDBFF\uDFFF"))
            assertTrue(any.matches(ok.getBytes(StandardCharsets.UTF_8)), ok);
        // overlong forms, an encoded surrogate, past U+10FFFF, a stray continuation, C0/C1/F5+ lead bytes
        for (byte[] bad : List.of(bytes(0xC0, 0x80), bytes(0xC1, 0xBF), bytes(0xE0, 0x80, 0x80), bytes(0xED, 0xA0, 0x80),
                bytes(0xF0, 0x80, 0x80, 0x80), bytes(0xF4, 0x90, 0x80, 0x80), bytes(0x80), bytes('a', 0xBF), bytes(0xF5, 0x80, 0x80, 0x80),
                bytes(0xFF)))
            assertFalse(any.matches(bad), java.util.Arrays.toString(bad));
        assertTrue(livePrefix(any, bytes(0xE2, 0x82)), "a character cut in two may go on (a token can end inside one), not end");
        assertTrue(any.matches(bytes(0xE2, 0x82, 0xAC)));
        assertEquals(any.states(), dfa(st("{'type': 'star', 'content': {'type': 'regex', 'pattern': '(.|\\\\n)'}}")).states(),
                "any text is what every character repeated is elsewhere");
        // random valid text of every plane
        Random r = new Random(7);
        for (int i = 0; i < 200; i++) {
            StringBuilder b = new StringBuilder();
            for (int j = 0; j < 8; j++) {
                int cp;
                do cp = r.nextInt(4) == 0 ? r.nextInt(0x110000) : r.nextInt(0x800); while (cp >= 0xD800 && cp <= 0xDFFF);
                b.appendCodePoint(cp);
            }
            assertTrue(any.matches(b.toString().getBytes(StandardCharsets.UTF_8)), b.toString());
        }
    }

    @Test
    void anyTextExcludesAndMaxChars() {
        String tag = st("{'type': 'any_text', 'excludes': ['</x>', 'ø']}");
        assertTrue(accepts(tag, "a </ x> <x> </X"));
        assertTrue(accepts(tag, "ends with a part </x"));
        assertFalse(accepts(tag, "a </x> b"));
        assertFalse(accepts(tag, "</x>"));
        assertFalse(accepts(tag, "smørbrød"), "a multi-byte exclude");
        assertTrue(accepts(tag, "smorbrod Ø"));
        String three = st("{'type': 'any_text', 'max_chars': 3}");
        assertTrue(accepts(three, "😀é!"), "three characters, seven bytes");
        assertFalse(accepts(three, "abcd"));
        assertTrue(accepts(st("{'type': 'any_text', 'max_chars': 0}"), ""));
        assertFalse(accepts(st("{'type': 'any_text', 'max_chars': 0}"), "a"));
        String both = st("{'type': 'any_text', 'max_chars': 4, 'excludes': ['ab']}");
        assertTrue(accepts(both, "acba"));
        assertFalse(accepts(both, "cabd"));
        assertFalse(accepts(both, "ccccc"));
    }

    @Test
    void insideATagFreeTextStopsAtTheTagsEnd() {
        String think = st("{'type': 'sequence', 'elements': [{'type': 'tag', 'begin': '<think>', 'content': {'type': 'any_text'}, 'end': '</think>'},"
                + " {'type': 'const_string', 'value': 'A'}]}");
        assertTrue(accepts(think, "<think>whatever <think> </thi</think>A"));
        assertFalse(accepts(think, "<think>a</think>b</think>A"), "the end is excluded from the content, as xgrammar does");
        String ends = st("{'type': 'tag', 'begin': '[', 'content': {'type': 'any_text', 'excludes': ['!']}, 'end': [']', ')']}");
        assertTrue(accepts(ends, "[a(b]"));
        assertFalse(accepts(ends, "[a)b]"), "every end is excluded");
        assertFalse(accepts(ends, "[a!]"));
        // the nearest tag's end only: the inner any_text excludes '>', not ']'
        String nested = st("{'type': 'tag', 'begin': '[', 'content': {'type': 'sequence', 'elements': ["
                + "{'type': 'tag', 'begin': '<', 'content': {'type': 'any_text'}, 'end': '>'}, {'type': 'const_string', 'value': '.'}]}, 'end': ']'}");
        assertTrue(accepts(nested, "[<a]b>.]"));
        assertFalse(accepts(nested, "[<a>b>.]"));
    }

    /** Calls in free text, in the shape OpenAiChat builds for tool_choice "auto". */
    static final String CALLS = st("""
            {'type': 'triggered_tags', 'triggers': ['<tool_call>'], 'tags': [
              {'type': 'tag', 'begin': '<tool_call>\\n{\\"name\\": \\"f\\", \\"arguments\\": ', 'end': '}\\n</tool_call>',
               'content': {'type': 'json_schema', 'separators': [', ', ': '], 'json_schema': {'type': 'object',
                 'properties': {'n': {'type': 'integer', 'minimum': 0, 'maximum': 9}}, 'required': ['n'], 'additionalProperties': false}}},
              {'type': 'tag', 'begin': '<tool_call>\\n{\\"name\\": \\"g\\", \\"arguments\\": ', 'end': '}\\n</tool_call>',
               'content': {'type': 'json_schema', 'separators': [', ', ': '], 'json_schema': {'type': 'object', 'properties': {}}}}]}""");

    static String call(String name, String args) {
        return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + args + "}\n</tool_call>";
    }

    @Test
    void triggeredTagsCallsInFreeText() {
        assertTrue(accepts(CALLS, ""));
        assertTrue(accepts(CALLS, "No call, just text with <tool and tool_call> and </tool_call>."));
        assertTrue(accepts(CALLS, "ends on a trigger's start <tool_ca"), "nothing fired yet");
        assertTrue(accepts(CALLS, call("f", "{\"n\": 3}")));
        assertTrue(accepts(CALLS, "Let me look.\n" + call("f", "{\"n\": 3}") + "\n" + call("g", "{}") + " and text after ✓"));
        assertTrue(accepts(CALLS, "<<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>"), "a '<' before the trigger is text");
        assertFalse(accepts(CALLS, "text " + call("f", "{\"n\": 10}")), "the content is constrained");
        assertFalse(accepts(CALLS, "text " + call("h", "{}")), "only the offered names");
        assertFalse(accepts(CALLS, "text <tool_call>{\"name\": \"f\"}</tool_call>"), "a trigger starts a tag: no loose mention of it");
        assertFalse(accepts(CALLS, "text " + call("f", "{\"n\": 1}").replace("</tool_call>", "")), "a tag must end");
        assertFalse(accepts(CALLS, bytes('a', 0xFF)), "the text is valid UTF-8");
        assertFalse(accepts(CALLS, "<tool_call>"), "cut after the trigger: the call is owed");
        assertTrue(livePrefix(dfa(CALLS), "x <tool_call>\n{\"name\": \"".getBytes(StandardCharsets.UTF_8)));

        String first = CALLS.replace("\"triggered_tags\"", "\"triggered_tags\", \"at_least_one\": true");
        assertFalse(accepts(first, "text " + call("f", "{\"n\": 3}")), "at_least_one: a call first, no text before it");
        assertTrue(accepts(first, call("f", "{\"n\": 3}") + " then text " + call("g", "{}")));
        assertFalse(accepts(first, ""));
        String once = CALLS.replace("\"triggered_tags\"", "\"triggered_tags\", \"stop_after_first\": true");
        assertTrue(accepts(once, "text " + call("f", "{\"n\": 3}")));
        assertTrue(accepts(once, "only text"));
        assertFalse(accepts(once, "text " + call("f", "{\"n\": 3}") + " more"), "stop_after_first: nothing after the first tag");
        assertFalse(accepts(once, call("f", "{\"n\": 3}") + "\n" + call("g", "{}")));
        String exactlyOne = CALLS.replace("\"triggered_tags\"", "\"triggered_tags\", \"at_least_one\": true, \"stop_after_first\": true");
        assertTrue(accepts(exactlyOne, call("g", "{}")));
        assertFalse(accepts(exactlyOne, "x" + call("g", "{}")));
        assertFalse(accepts(exactlyOne, call("g", "{}") + "x"));
        String excluding = CALLS.replace("\"triggered_tags\"", "\"triggered_tags\", \"excludes\": [\"<|eot|>\"]");
        assertFalse(accepts(excluding, "a <|eot|> b"));
        assertTrue(accepts(excluding, "a " + call("f", "{\"n\": 1}") + " <|eot| b"));
    }

    @Test
    void sglangsOlderFormIsTheTriggeredTagsItMeans() {
        String legacy = """
                {"type": "structural_tag", "triggers": ["<tool_call>"], "structures": [
                  {"begin": "<tool_call>{\\"name\\": \\"f\\", \\"arguments\\": ", "end": "}</tool_call>",
                   "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]}""";
        assertTrue(accepts(legacy, "text <tool_call>{\"name\": \"f\", \"arguments\": {\"n\":12}}</tool_call> more"));
        assertFalse(accepts(legacy, "text <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>"));
        assertTrue(accepts(legacy, "free"));
    }

    /** The first trigger to be completed fires, even where another began earlier (xgrammar's tag dispatch, the parser). */
    @Test
    void theFirstTriggerCompletedFires() {
        String tag = st("{'type': 'triggered_tags', 'triggers': ['xa', 'ab'], 'tags': ["
                + "{'type': 'tag', 'begin': 'xa', 'content': {'type': 'const_string', 'value': '1'}, 'end': '.'},"
                + "{'type': 'tag', 'begin': 'ab', 'content': {'type': 'const_string', 'value': '2'}, 'end': '.'}]}");
        assertTrue(accepts(tag, "xa1."));
        assertTrue(accepts(tag, "ab2."));
        assertFalse(accepts(tag, "xab2."), "'xa' is complete first: its tag follows, not ab's");
        assertTrue(accepts(tag, "yab2."));
    }

    /**
     * The automaton against a reference of the streaming semantics on every text of up to 6
     * characters over an alphabet that writes the triggers, their overlaps, an exclude, a tag's
     * content and a two-byte character, under each combination of the flags.
     */
    @Test
    void matchesAReferenceOnEveryShortText() {
        String[][] tags = {{"<a=", "1{1,2}", ">"}, {"b<", "é?", "="}};
        List<String> triggers = List.of("<a", "b<"), excludes = List.of("==");
        int[] alphabet = "ab<=1>é".codePoints().toArray();
        for (boolean atLeastOne : new boolean[] {false, true}) {
            for (boolean onlyOne : new boolean[] {false, true}) {
                StringBuilder f = new StringBuilder("{'type': 'triggered_tags', 'triggers': ['<a', 'b<'], 'excludes': ['=='], 'at_least_one': ")
                        .append(atLeastOne).append(", 'stop_after_first': ").append(onlyOne).append(", 'tags': [");
                for (int i = 0; i < tags.length; i++)
                    f.append(i > 0 ? ", " : "").append("{'type': 'tag', 'begin': '").append(tags[i][0]).append("', 'content': {'type': 'regex', 'pattern': '")
                            .append(tags[i][1]).append("'}, 'end': '").append(tags[i][2]).append("'}");
                ByteDfa d = dfa(st(f + "]}"));
                Reference ref = new Reference(tags, triggers, excludes, atLeastOne, onlyOne);
                int[] counts = new int[2];
                List<int[]> level = new ArrayList<>();
                level.add(new int[0]);
                for (int len = 0; len <= 6; len++) {
                    List<int[]> nextLevel = new ArrayList<>();
                    for (int[] cps : level) {
                        String text = new String(cps, 0, cps.length);
                        boolean want = ref.accepts(text);
                        assertEquals(want, d.matches(text.getBytes(StandardCharsets.UTF_8)),
                                "at_least_one " + atLeastOne + ", stop_after_first " + onlyOne + ": '" + text + "'");
                        counts[want ? 1 : 0]++;
                        if (len < 6) for (int c : alphabet) {
                            int[] longer = java.util.Arrays.copyOf(cps, cps.length + 1);
                            longer[cps.length] = c;
                            nextLevel.add(longer);
                        }
                    }
                    level = nextLevel;
                }
                // (both flags: exactly one whole tag, <a=1>, <a=11>, b<=, b<é=)
                assertTrue(counts[0] > 1000 && (atLeastOne && onlyOne ? counts[1] == 4 : counts[1] > (atLeastOne ? 20 : 1000)),
                        "both answers are common: " + counts[0] + " / " + counts[1]);
            }
        }
    }

    /** The streaming reading, by brute force: a trigger fires where the free part first ends with one. */
    record Reference(String[][] tags, List<String> triggers, List<String> excludes, boolean atLeastOne, boolean onlyOne) {
        boolean accepts(String text) {
            if (atLeastOne) {
                for (String[] t : tags)
                    for (int j : ends(text, 0, Pattern.compile(Pattern.quote(t[0]) + t[1] + Pattern.quote(t[2]))))
                        if (onlyOne ? j == text.length() : free(text, j)) return true;
                return false;
            }
            return free(text, 0);
        }

        /** The text from {@code from} is free text, then (maybe) tags, as the flags allow. */
        boolean free(String text, int from) {
            for (int i = from; i <= text.length(); i++) {
                String seg = text.substring(from, i);
                for (String x : excludes) if (seg.endsWith(x)) return false;
                for (String trig : triggers) {
                    if (!seg.endsWith(trig)) continue;
                    for (String[] t : tags) {
                        if (!t[0].startsWith(trig)) continue;
                        Pattern rest = Pattern.compile(Pattern.quote(t[0].substring(trig.length())) + t[1] + Pattern.quote(t[2]));
                        for (int j : ends(text, i, rest))
                            if (onlyOne ? j == text.length() : free(text, j)) return true;
                    }
                    return false;   // the trigger fired: a tag, or nothing
                }
            }
            return true;
        }

        static List<Integer> ends(String text, int from, Pattern p) {
            List<Integer> out = new ArrayList<>();
            for (int j = from; j <= text.length(); j++) if (p.matcher(text.substring(from, j)).matches()) out.add(j);
            return out;
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "{'type':'triggered_tags','triggers':['<a','<a'],'tags':[{'type':'tag','begin':'<a','content':{'type':'any_text'},'end':'>'}]}|at format.triggers[1]: the trigger \"<a\" is listed twice",
            "{'type':'triggered_tags','triggers':['<a','a'],'tags':[{'type':'tag','begin':'<a','content':{'type':'any_text'},'end':'>'}]}|at format.triggers[1]: the trigger \"a\" is inside the trigger \"<a\"",
            "{'type':'triggered_tags','triggers':['<a'],'excludes':['b','a'],'tags':[{'type':'tag','begin':'<a','content':{'type':'any_text'},'end':'>'}]}|at format.excludes[1]: the excluded \"a\" is inside the trigger",
            "{'type':'triggered_tags','triggers':['<a'],'excludes':['x<a'],'tags':[{'type':'tag','begin':'<a','content':{'type':'any_text'},'end':'>'}]}|at format.triggers[0]: the trigger \"<a\" is inside the excluded \"x<a\"",
            "{'type':'triggered_tags','triggers':['<a'],'tags':[{'type':'tag','begin':'<b','content':{'type':'any_text'},'end':'>'}]}|at format.tags[0]: its begin \"<b\" starts with none of the triggers",
            "{'type':'triggered_tags','triggers':[],'tags':[{'type':'tag','begin':'<b','content':{'type':'any_text'},'end':'>'}]}|triggers must be a non-empty list",
            "{'type':'triggered_tags','triggers':[''],'tags':[{'type':'tag','begin':'<b','content':{'type':'any_text'},'end':'>'}]}|at format.triggers[0]: an empty trigger",
            "{'type':'any_text','excludes':['']}|at format.excludes[0]: an empty exclude",
            // dispatch names its own fields (rules[i][0] the pattern, rules[i][1] its format), not the triggered tags it is read as
            "{'type':'dispatch','rules':[['<a',{'type':'jsonschema'}]]}|at format.rules[0][1]: unknown format type 'jsonschema'",
            "{'type':'dispatch','rules':[['<a',{'type':'regex','pattern':'(x'}]]}|at format.rules[0][1].pattern:",
            "{'type':'dispatch','rules':[['<a',null]]}|at format.rules[0][1]: a format must be an object",
            "{'type':'dispatch','rules':[['<a',{'type':'any_text'}],['<a',{'type':'any_text'}]]}|at format.rules[1][0]: the trigger \"<a\" is listed twice",
            "{'type':'dispatch','rules':[['<ab',{'type':'any_text'}],['<a',{'type':'any_text'}]]}|at format.rules[1][0]: the trigger \"<a\" is inside the trigger \"<ab\"",
            "{'type':'dispatch','rules':[['x',{'type':'any_text'}],['',{'type':'any_text'}]]}|at format.rules[1][0]: an empty trigger",
            "{'type':'dispatch','rules':[['<a',{'type':'any_text'}]],'excludes':['a']}|at format.excludes[0]: the excluded \"a\" is inside the trigger \"<a\"",
            "{'type':'dispatch','rules':[['<a',{'type':'any_text'}]],'excludes':['']}|at format.excludes[0]: an empty exclude",
            "{'type':'dispatch','rules':[['<a']]}|at format.rules[0]: a rule must be [PATTERN, FORMAT]",
            "{'type':'dispatch','rules':[]}|at format: rules must be a non-empty list",
            "{'type':'dispatch','rules':[['<a',{'type':'any_text'}]],'loop':1}|at format: loop must be true or false",
            "{'type':'any_text','excludes':['\\ud800']}|a lone surrogate",
            "{'type':'any_text','max_tokens':5}|max_tokens is not supported",
            "{'type':'any_text','max_chars':-1}|max_chars must be 0 or more",
            "{'type':'any_text','max_chars':1.5}|max_chars must be an integer",
            "{'type':'token_triggered_tags','trigger_tokens':[1],'tags':[]}|token_triggered_tags is not supported: it works on token ids",
            "{'type':'repeat','min':3,'max':2,'content':{'type':'any_text'}}|repeat needs 0 <= min <= max"})
    void refusalsNameTheProblem(String format, String problem) {
        ConstraintException e = assertThrows(ConstraintException.class, () -> dfa(st(format)));
        assertTrue(e.getMessage().contains(problem), e.getMessage());
    }

    /** A hostile tag set stops at a limit, by the limit's name, in about the limit's time. */
    @Test
    void hostileTagSetsAreRefusedByTheLimits() {
        // 400 triggers of 40 bytes, a tag each: the free text alone, built 401 times, would be millions of states
        StringBuilder triggers = new StringBuilder(), tags = new StringBuilder();
        Random r = new Random(1);
        for (int i = 0; i < 400; i++) {
            StringBuilder t = new StringBuilder("<");
            for (int j = 0; j < 39; j++) t.append((char) ('a' + r.nextInt(26)));
            triggers.append(i > 0 ? "," : "").append('"').append(t).append('"');
            tags.append(i > 0 ? "," : "").append("{\"type\":\"tag\",\"begin\":\"").append(t).append("\",\"content\":{\"type\":\"const_string\",\"value\":\"x\"},\"end\":\">\"}");
        }
        long t0 = System.nanoTime();
        ConstraintException many = assertThrows(ConstraintException.class,
                () -> dfa("{\"type\":\"structural_tag\",\"format\":{\"type\":\"triggered_tags\",\"triggers\":[" + triggers + "],\"tags\":[" + tags + "]}}"));
        assertTrue(many.getMessage().contains("automaton states before determinizing, more than the limit of 500000"), many.getMessage());
        assertTrue(System.nanoTime() - t0 < 1_000_000_000L, "refused before building anything");

        String big = "x".repeat(FreeText.MAX_STRING_BYTES + 1);
        ConstraintException longStrings = assertThrows(ConstraintException.class, () -> dfa(st("{'type':'any_text','excludes':['" + big + "']}")));
        assertTrue(longStrings.getMessage().contains("more than the limit of " + FreeText.MAX_STRING_BYTES), longStrings.getMessage());

        // max_chars multiplies the states: past the state limit, by name
        String counted = st("{'type':'any_text','max_chars':10000,'excludes':['abcdefghijklmnopqrstuvwxyz']}");
        ConstraintException states = assertThrows(ConstraintException.class, () -> dfa(counted));
        assertTrue(states.getMessage().contains("needs more than 100000 automaton states"), states.getMessage());

        // a small state limit refuses an ordinary tag set by name too
        ConstraintLimits tight = new ConstraintLimits(100_000, 10_000, 500_000, 40, 2_000, 8);
        ConstraintException small = assertThrows(ConstraintException.class, () -> Constraint.structuralTag(CALLS, tight));
        assertTrue(small.getMessage().contains("more than 40 automaton states"), small.getMessage());
        // and the time limit, counted while the free text is built
        ConstraintLimits quick = new ConstraintLimits(100_000, 10_000, 500_000, 100_000, 1, 8);
        ConstraintException slow = assertThrows(ConstraintException.class, () -> Constraint.structuralTag(counted, quick));
        assertTrue(slow.getMessage().contains("took more than 1 ms to compile (free text"), slow.getMessage());
    }

    /** Our extension: an optional think block of free text first, the content outside it only. */
    @Test
    void aReasoningBlockIsFreeAndTheContentHoldsOutsideIt() {
        String calls = CALLS.substring(CALLS.indexOf("\"format\": ") + 10, CALLS.length() - 1);
        String tag = st("{'type': 'reasoning', 'begin': '<think>', 'end': '</think>', 'content': " + calls.replace('\'', '"') + "}");
        String one = call("f", "{\"n\": 3}");
        assertTrue(accepts(tag, "<think>\nmaybe <tool_call> f? </tool_call>\n</think>\n\nSo: " + one));
        assertTrue(accepts(tag, " \n<think>a</think>"), "after whitespace, as the reply's parser strips it");
        assertTrue(accepts(tag, "<think>\nunclosed, <tool_call> and all"), "the text may stop inside the block");
        assertTrue(accepts(tag, "no block: " + one));
        assertFalse(accepts(tag, "<think>a</think> <tool_call> loose"), "after the block the content holds");
        assertFalse(accepts(tag, "no block <think> <tool_call> loose"), "a block only where the text opens with it");
        assertFalse(accepts(tag, "<think>a</think>b</think> <tool_call> loose"), "the block ends at its first end");
        // the block and the content never run side by side: about the content's own size
        assertTrue(dfa(tag).states() < dfa(CALLS).states() + 30, dfa(tag).states() + " against " + dfa(CALLS).states());
        String started = tag.replace("\"content\"", "\"started\": true, \"content\"");
        assertTrue(accepts(started, "inside already </think>\n" + one));
        assertTrue(accepts(started, "inside, <tool_call> and stopping"));
        assertFalse(accepts(started, "inside </think> <tool_call> loose"));
        // content that itself opens with the block: only the block reads such texts
        String opening = st("{'type': 'reasoning', 'begin': '<think>', 'end': '</think>', 'content': {'type': 'const_string', 'value': '<think>x'}}");
        assertTrue(accepts(opening, "<think>x"), "as an unclosed block: every text of the content opens one");
        assertTrue(accepts(opening, "<think>y</think><think>x"));
    }

    @Test
    void xgrammarsRepetitionAndGrammarFormats() {
        assertTrue(accepts(st("{'type':'optional','content':{'type':'const_string','value':'a'}}"), ""));
        assertTrue(accepts(st("{'type':'plus','content':{'type':'const_string','value':'ab'}}"), "abab"));
        assertFalse(accepts(st("{'type':'plus','content':{'type':'const_string','value':'ab'}}"), ""));
        assertTrue(accepts(st("{'type':'star','content':{'type':'const_string','value':'ab'}}"), ""));
        String rep = st("{'type':'repeat','min':2,'max':3,'content':{'type':'const_string','value':'x'}}");
        assertFalse(accepts(rep, "x"));
        assertTrue(accepts(rep, "xxx"));
        assertFalse(accepts(rep, "xxxx"));
        assertTrue(accepts(st("{'type':'repeat','min':1,'max':-1,'content':{'type':'const_string','value':'x'}}"), "xxxxxxx"));
        // dispatch: triggered tags whose begin is the whole pattern, with no end
        String dispatch = st("{'type':'dispatch','rules':[['<f=',{'type':'regex','pattern':'[0-9]+>'}]],'excludes':['</r>']}");
        assertTrue(accepts(dispatch, "a <f=12> b <f=3> c"));
        assertFalse(accepts(dispatch, "a <f=x>"));
        assertFalse(accepts(dispatch, "a </r> b"));
        String once = dispatch.replace("\"excludes\"", "\"loop\":false,\"excludes\"");
        assertTrue(accepts(once, "a <f=1>"));
        assertFalse(accepts(once, "a <f=1> b"), "loop false: nothing after the first");
        String g = st("{'type':'grammar','grammar':'root ::= \\\"(\\\" root \\\")\\\" | \\\"x\\\"'}");
        assertTrue(accepts(g, "((x))"));
        assertFalse(accepts(g, "((x)"));
    }
}
