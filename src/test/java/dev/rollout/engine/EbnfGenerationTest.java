package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.constrain.ConstraintLimits;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.model.CausalLm;
import dev.rollout.model.Kernels;
import dev.rollout.model.ModelConfig;
import dev.rollout.runtime.Constraints;
import dev.rollout.runtime.DefaultModel;
import dev.rollout.tokenizer.HfTokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * EBNF grammars through the engine (issue #22) with the default model (random weights, the real
 * Qwen3 tokenizer): what comes out is derived by the grammar, nested no deeper than the bound, and
 * ended by it with EOS, greedy and sampled. The grammar recurses (nested lists) and loops by
 * left recursion (a list of words), so both halves of the compiler are on the path.
 */
class EbnfGenerationTest {
    static final Set<Integer> EOS = Set.of(151645, 151643);
    /** Lists of digits nested up to the bound, then a word list written with left recursion. */
    static final String GRAMMAR = """
            root  ::= list " -- " words "."
            list  ::= "[" item ("," item)? "]"
            item  ::= [0-9] | list
            words ::= words " " word | word    # left recursion: a loop, not a bound
            word  ::= "red" | "green" | "blue"
            """;
    /** The same texts, nesting aside: what the output must match (depth is checked separately). */
    static final Pattern SHAPE = Pattern.compile("[\\[\\],0-9]+ -- (red|green|blue)( (red|green|blue))*\\.");
    static Path dir;
    static HfTokenizer tok;
    static Constraints constraints;
    static int[] prompt;

    @BeforeAll
    static void load() throws Exception {
        dir = DefaultModel.materialize(Path.of(System.getProperty("java.io.tmpdir")));
        tok = HfTokenizer.load(dir.resolve("tokenizer.json"));
        ModelConfig c = ModelConfig.read(dir);
        constraints = new Constraints(tok, c.vocabSize(), c.eosTokenIds(), ConstraintLimits.DEFAULT);
        prompt = tok.encode("Write a nested list, then some colours:");
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static EngineHarness harness() throws Exception {
        ModelConfig c = ModelConfig.read(dir);
        Device cpu = new Device(EngineHarness.DEVICE);
        return new EngineHarness(CausalLm.load(dir, ScalarType.Float, cpu, Kernels.LIBTORCH),
                new EngineConfig(EngineHarness.DEVICE, "float32", 4, 1024, 16, 256, 0, 0.8), tok);
    }

    /** Brackets balanced and nested at most the top list plus the bound. */
    static void nestedWithinTheBound(String text) {
        int depth = 0, max = 0;
        for (char ch : text.toCharArray()) {
            depth += ch == '[' ? 1 : ch == ']' ? -1 : 0;
            assertTrue(depth >= 0, text);
            max = Math.max(max, depth);
        }
        assertEquals(0, depth, text);
        assertTrue(max <= 1 + ConstraintLimits.DEFAULT.maxGrammarDepth(), max + " deep: " + text);
    }

    @Test
    void outputsAreDerivedByTheGrammarAndEndByIt() throws Exception {
        TokenIndex grammar = constraints.ebnf(GRAMMAR);
        EngineHarness h = harness();
        h.add("greedy", prompt, SamplingParams.builder().temperature(0).maxNewTokens(200).constraint(grammar).build(), LogprobOptions.NONE);
        for (int i = 0; i < 3; i++)
            h.add("sampled-" + i, prompt, SamplingParams.builder().temperature(1.0).seed(40L + i).maxNewTokens(200).constraint(grammar).build(),
                    LogprobOptions.NONE);
        h.runToCompletion();
        for (String rid : List.of("greedy", "sampled-0", "sampled-1", "sampled-2")) {
            SequenceOutput out = h.finished.get(rid);
            String text = out.text();
            assertTrue(SHAPE.matcher(text).matches(), rid + ": " + text);
            assertTrue(grammar.dfa().matches(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)), rid + ": " + text);
            nestedWithinTheBound(text.substring(0, text.indexOf(" -- ")));
            int[] ids = out.outputIds();
            assertTrue(EOS.contains(ids[ids.length - 1]), rid + " ends with EOS: " + text);
            assertEquals(FinishReason.Type.STOP, out.finishReason().type(), rid + ": " + out.finishReason());
        }
    }
}
