import dev.rollout.model.RandomCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * The default model's shape with a vocabulary of 2,048 (ids the Qwen3 tokenizer still decodes),
 * for bench/cpu-online.sh: on two cores the full vocabulary's LM head and sampler take hundreds of
 * milliseconds a step at 256 sequences, and the step's host work is lost in their noise.
 *   java -cp CLASSPATH bench/SmallModel.java DIR TOKENIZER_DIR
 */
public class SmallModel {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        RandomCheckpoint.write(dir, new RandomCheckpoint.Spec(2048, 128, 384, 4, 4, 2, 32, 4096, List.of(2047), 0.15), 7L);
        for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
            Files.copy(Path.of(args[1], f), dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
    }
}
