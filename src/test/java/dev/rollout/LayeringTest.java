package dev.rollout;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The layering rules of docs/architecture.md, checked on the sources. */
class LayeringTest {
    @ParameterizedTest(name = "{0} must not import {1}")
    @CsvSource({
        "engine, jakarta.",
        "model, jakarta.",
        "tokenizer, jakarta.",
        // chat templates and the answer parser: usable outside the server, no HTTP types
        "chat, jakarta.",
        "chat, dev.rollout.",
        "engine/Scheduler.java, org.bytedeco.",
        "engine/BlockManager.java, org.bytedeco.",
        "engine/Sequence.java, org.bytedeco.",
        "model, dev.rollout.engine.",
        // the client ships to trainers and environments without the server
        "client, dev.rollout.api.",
        "client, dev.rollout.engine.",
        "client, dev.rollout.model.",
        "client, dev.rollout.runtime.",
        "client, org.bytedeco.",
        // the trainer side runs in trainer processes: libtorch and the client, none of the server
        "trainer, dev.rollout.api.",
        "trainer, dev.rollout.engine.",
        "trainer, dev.rollout.model.",
        "trainer, dev.rollout.runtime.",
        "trainer, jakarta.",
        // the example environment is separate from the server proper (ADR 0011): none of its packages
        "env, dev.rollout.",
        "env, org.bytedeco.",
        // the agent loop ships in the client jar
        "client/agent, jakarta.ws.",
        // the safetensors writer ships in the client jar too: the JDK only
        "safetensors, dev.rollout.",
        "safetensors, jakarta.",
        "safetensors, org.bytedeco.",
        "safetensors, com.google.",
    })
    void doesNotImport(String where, String forbidden) throws IOException {
        Path root = Path.of("src/main/java/dev/rollout", where);
        List<Path> files;
        try (Stream<Path> s = Files.isDirectory(root) ? Files.walk(root) : Stream.of(root)) {
            files = s.filter(p -> p.toString().endsWith(".java")).toList();
        }
        assertTrue(!files.isEmpty(), "no sources under " + root);
        for (Path f : files)
            for (String line : Files.readAllLines(f))
                assertTrue(!line.startsWith("import " + forbidden) && !line.startsWith("import static " + forbidden),
                        f + " imports " + line);
    }
}
