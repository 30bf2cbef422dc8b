package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.rollout.tokenizer.HfTokenizer;
import dev.rollout.tokenizer.TokenBytes;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The real Qwen3 vocabulary (151,936 ids): token bytes as the tokenizer decodes them, and random constrained walks. */
class QwenVocabularyTest {
    static final int IM_END = 151645, ENDOFTEXT = 151643;
    static HfTokenizer tok;
    static byte[][] bytes;
    static Vocabulary vocab;

    @BeforeAll
    static void load() throws Exception {
        Path json = Path.of(QwenVocabularyTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI());
        tok = HfTokenizer.load(json);
        bytes = tok.tokenBytes();
        vocab = Vocabulary.of(bytes, 151936, IM_END, ENDOFTEXT);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    /** Where a token's bytes are whole UTF-8, the tokenizer decodes it to exactly that text; special tokens have none. */
    @Test
    void tokenBytesAreWhatTheTokenizerDecodes() {
        Random r = new Random(5);
        int whole = 0, partial = 0;
        for (int k = 0; k < 3000; k++) {
            int id = k < 26 ? 151643 + k : r.nextInt(bytes.length);
            String decoded = tok.decode(new int[] {id}, true);
            if (bytes[id] == null) {
                assertEquals("", decoded, "special token " + id);
                continue;
            }
            try {
                String text = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes[id])).toString();
                assertEquals(decoded, text, "token " + id);
                whole++;
            } catch (CharacterCodingException e) {
                assertTrue(decoded.contains("\uFFFD"), "token " + id + " is part of a character");
                partial++;
            }
        }
        assertTrue(whole > 1000 && partial > 0, whole + " whole, " + partial + " partial");
        assertEquals("<think>", new String(bytes[151667], StandardCharsets.UTF_8), "an added token that is not special");
    }

    static final String SCHEMA = """
            {"type":"object","properties":{
              "name":{"type":"string","minLength":1,"maxLength":12},
              "age":{"type":"integer"},
              "tags":{"type":"array","items":{"enum":["a","b c","é"]},"minItems":0,"maxItems":3},
              "score":{"anyOf":[{"type":"number"},{"type":"null"}]},
              "ok":{"type":"boolean"}},
             "required":["name","age","ok"],"additionalProperties":false}""";

    @Test
    void randomWalksEndInValidJson() {
        TokenIndex index = Constraint.jsonSchema(SCHEMA, ConstraintLimits.DEFAULT).index(vocab);
        Map<String, Object> schema = JsonSchemaFuzzTest.asMap(toValue(JsonParser.parseString(SCHEMA)));
        Random r = new Random(9);
        for (int run = 0; run < 20; run++) {
            ConstraintCursor c = index.cursor();
            List<Integer> ids = new ArrayList<>();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            for (int step = 0; !c.ended(); step++) {
                assertTrue(step < 400, "the schema bounds every part but integers and numbers: " + out);
                int[] allowed = c.allowed().ids();
                // digits could go on for 19 places at a uniform pick: prefer ending where it may
                int id = c.canEnd() && r.nextInt(3) == 0 ? IM_END : allowed[r.nextInt(allowed.length)];
                assertTrue(c.advance(id));
                if (id != IM_END && id != ENDOFTEXT) {
                    ids.add(id);
                    out.writeBytes(vocab.bytes(id));
                }
            }
            String text = tok.decode(ids.stream().mapToInt(Integer::intValue).toArray(), false);
            assertEquals(out.toString(StandardCharsets.UTF_8), text, "the tokenizer decodes the walk to its bytes");
            Object value = toValue(JsonParser.parseString(text));
            assertTrue(JsonSchemaFuzzTest.valid(schema, schema, value), text);
        }
    }

    @Test
    void realMasksEqualTheDefinition() {
        TokenIndex index = Constraint.jsonSchema(SCHEMA, ConstraintLimits.DEFAULT).index(vocab);
        Random r = new Random(1);
        for (int k = 0; k < 8; k++) {
            int s = r.nextInt(index.dfa().states());
            BitSet expected = new BitSet();
            for (int id = 0; id < vocab.size(); id++) {
                byte[] b = vocab.bytes(id);
                if (b != null && index.dfa().walk(s, b) != ByteDfa.DEAD) expected.set(id);
            }
            if (index.canEnd(s)) { expected.set(IM_END); expected.set(ENDOFTEXT); }
            assertEquals(expected, index.mask(s).toBitSet(), "state " + s);
        }
    }

    /** Gson's tree as the fuzz test's values: numbers written without '.', 'e' are Longs. */
    static Object toValue(JsonElement e) {
        if (e.isJsonNull()) return null;
        if (e.isJsonObject()) {
            Map<String, Object> m = new LinkedHashMap<>();
            e.getAsJsonObject().entrySet().forEach(x -> m.put(x.getKey(), toValue(x.getValue())));
            return m;
        }
        if (e.isJsonArray()) {
            List<Object> l = new ArrayList<>();
            e.getAsJsonArray().forEach(x -> l.add(toValue(x)));
            return l;
        }
        var p = e.getAsJsonPrimitive();
        if (p.isBoolean()) return p.getAsBoolean();
        if (p.isString()) return p.getAsString();
        String n = p.getAsNumber().toString();
        if (!n.matches("-?\\d+")) return Double.parseDouble(n);
        // the schema allows 19 digits, past a long's range: still an integer
        return new java.math.BigInteger(n).bitLength() < 64 ? Long.parseLong(n) : Long.MAX_VALUE;
    }
}
