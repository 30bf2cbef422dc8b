package dev.rollout.bench;

import dev.rollout.constrain.Constraint;
import dev.rollout.constrain.ConstraintCursor;
import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.constrain.Vocabulary;
import dev.rollout.tokenizer.TokenBytes;
import java.nio.file.Path;
import java.util.Random;

/**
 * What constrained decoding costs on the CPU, with the real Qwen3 vocabulary: compiling a tool-call
 * style schema and a regex, and computing token masks for the states a random walk visits, each on
 * a fresh index (cold: every mask is a trie walk) and again (warm: cached).
 *
 *   ConstraintBench [TOKENIZER_JSON] [ROUNDS]   (default target/classes/dev/rollout/tokenizer/qwen3/tokenizer.json, 5)
 */
public final class ConstraintBench {
    static final String SCHEMA = """
            {"type":"object","properties":{
              "name":{"type":"string","enum":["search","calculator","weather"]},
              "arguments":{"type":"object","properties":{
                "query":{"type":"string","maxLength":64},"limit":{"type":"integer"},
                "units":{"anyOf":[{"const":"metric"},{"const":"imperial"}]},"tags":{"type":"array","items":{"type":"string","maxLength":16},"maxItems":4}},
               "required":["query"],"additionalProperties":false}},
             "required":["name","arguments"],"additionalProperties":false}""";

    public static void main(String[] args) throws Exception {
        Path json = Path.of(args.length > 0 ? args[0] : "target/classes/dev/rollout/tokenizer/qwen3/tokenizer.json");
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        Vocabulary vocab = Vocabulary.of(TokenBytes.of(json), 151936, 151645, 151643);
        for (int r = 0; r < rounds; r++) {
            for (String[] c : new String[][] {{"json_schema", SCHEMA}, {"regex", "(\\d{1,3}\\.){3}\\d{1,3}|[a-z][a-z0-9_]{0,31}@example\\.(com|org)"}}) {
                long t0 = System.nanoTime();
                Constraint constraint = c[0].equals("regex") ? Constraint.regex(c[1], ConstraintLimits.DEFAULT) : Constraint.jsonSchema(c[1], ConstraintLimits.DEFAULT);
                double compileMs = (System.nanoTime() - t0) / 1e6;
                TokenIndex index = constraint.index(vocab);
                Random random = new Random(r);
                long cold = 0, warm = 0;
                int masks = 0;
                ConstraintCursor cursor = index.cursor();
                while (!cursor.ended() && masks < 200) {
                    long a = System.nanoTime();
                    int[] ids = cursor.allowed().ids();
                    long b = System.nanoTime();
                    index.mask(cursor.state());
                    long d = System.nanoTime();
                    cold += b - a;  // includes ids(), an upper bound on the walk
                    warm += d - b;
                    masks++;
                    cursor.advance(cursor.canEnd() && random.nextInt(4) == 0 ? 151645 : ids[random.nextInt(ids.length)]);
                }
                System.out.printf("RESULT {\"what\": \"constraint\", \"kind\": \"%s\", \"round\": %d, \"states\": %d, \"compile_ms\": %.1f, "
                        + "\"masks\": %d, \"ms_per_cold_mask\": %.3f, \"us_per_warm_mask\": %.3f}%n",
                        c[0], r, constraint.dfa().states(), compileMs, masks, cold / 1e6 / masks, warm / 1e3 / masks);
            }
        }
    }
}
