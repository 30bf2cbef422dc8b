package dev.rollout;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.EvaluationResult;
import dev.rollout.api.PlantedResource;
import java.io.File;
import java.io.IOException;
import java.io.StringWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The layering rules of docs/architecture.md, checked on the compiled classes with ArchUnit: every
 * dependency counts, fully qualified names and method signatures included, not only imports.
 * Each rule is also shown to fail on a planted violation, so that none of them passes vacuously.
 */
class ArchitectureTest {
    /** What the engine thread alone may touch; an HTTP thread holding one of these could race a step. */
    static final Set<String> ENGINE_INTERNALS = Set.of("LlmEngine", "WeightControl", "MemoryOccupation", "Scheduler",
            "BlockManager", "ModelRunner", "Sampler", "ScheduledSequence", "Sessions");

    static final DescribedPredicate<JavaClass> ENGINE_INTERNAL = DescribedPredicate.describe("engine internals " + ENGINE_INTERNALS,
            c -> c.getPackageName().equals("dev.rollout.engine") && ENGINE_INTERNALS.contains(c.getSimpleName()));

    /** The HTTP side: resources, health checks, metrics; they send typed commands and read published values. */
    static final String[] HTTP_SIDE = {"dev.rollout.api..", "dev.rollout.health..", "dev.rollout.metrics.."};

    /** Resources and probes: not even JavaCPP's pointers (the metrics read the process's resident bytes through it). */
    static final String[] HTTP_THREADS = {"dev.rollout.api..", "dev.rollout.health.."};

    static JavaClasses main;

    @BeforeAll
    static void importMain() {
        main = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS).importPackages("dev.rollout");
    }

    static List<ArchRule> rules() {
        return List.of(
                noClasses().that().resideInAnyPackage(HTTP_SIDE).should().dependOnClassesThat(ENGINE_INTERNAL)
                        .because("HTTP threads never touch engine state: they submit EngineCommands (ADR 0002)"),
                noClasses().that().resideInAnyPackage(HTTP_THREADS).should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.model..", "org.bytedeco..")
                        .because("tensors and the model belong to the engine thread and the weight path"),
                noClasses().that().resideInAPackage("dev.rollout.metrics..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.model..", "org.bytedeco.pytorch..")
                        .because("metrics read what the engine loop publishes"),
                noClasses().that().resideInAnyPackage("dev.rollout.engine..", "dev.rollout.model..", "dev.rollout.tokenizer..",
                        "dev.rollout.weights..", "dev.rollout.chat..").should().dependOnClassesThat().resideInAPackage("jakarta..")
                        .because("the engine, the model and the weight path run without a container"),
                noClasses().that().haveSimpleNameStartingWith("Scheduler").or().haveSimpleNameStartingWith("BlockManager")
                        .or().haveSimpleName("Sequence").or().haveFullyQualifiedName("dev.rollout.engine.Sessions").should().dependOnClassesThat().resideInAPackage("org.bytedeco..")
                        .because("scheduling is bookkeeping: no tensors"),
                noClasses().that().resideInAPackage("dev.rollout.model..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.engine..", "dev.rollout.weights..", "dev.rollout.runtime..", "dev.rollout.api..")
                        .because("the model knows nothing of who runs it"),
                noClasses().that().resideInAPackage("dev.rollout.chat..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.api..", "dev.rollout.engine..", "dev.rollout.model..", "dev.rollout.runtime..")
                        .because("chat templates and the answer parser are usable outside the server"),
                noClasses().that().resideInAnyPackage("dev.rollout.client..", "dev.rollout.safetensors..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.api..", "dev.rollout.engine..", "dev.rollout.model..", "dev.rollout.runtime..",
                                "dev.rollout.weights..", "dev.rollout.trainer..", "org.bytedeco..")
                        .because("the client jar ships to trainers and environments without the server"),
                noClasses().that().resideInAnyPackage("dev.rollout.client.agent..").should().dependOnClassesThat()
                        .resideInAPackage("jakarta.ws..").because("the agent loop ships in the client jar"),
                noClasses().that().resideInAPackage("dev.rollout.safetensors..").should().dependOnClassesThat()
                        .resideInAnyPackage("jakarta..", "com.google..").because("the safetensors writer needs the JDK only"),
                noClasses().that().resideInAPackage("dev.rollout.trainer..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.api..", "dev.rollout.engine..", "dev.rollout.model..", "dev.rollout.runtime..",
                                "dev.rollout.weights..", "jakarta..")
                        .because("the trainer side runs in trainer processes: libtorch and the client, none of the server"),
                noClasses().that().resideInAPackage("dev.rollout.dist..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.api..", "dev.rollout.engine..", "dev.rollout.model..", "dev.rollout.runtime..",
                                "dev.rollout.weights..", "dev.rollout.trainer..", "dev.rollout.client..", "jakarta..")
                        .because("a weight-update group is formed the same way by the server and by a trainer"),
                noClasses().that().resideInAPackage("dev.rollout.constrain..").should().dependOnClassesThat()
                        .resideInAnyPackage("jakarta..", "org.bytedeco..", "dev.rollout.api..", "dev.rollout.engine..", "dev.rollout.model..",
                                "dev.rollout.runtime..", "dev.rollout.weights..", "dev.rollout.tokenizer..")
                        .because("the constraint engine is pure Java over bytes and token ids (ADR 0029)"),
                noClasses().that().resideInAPackage("dev.rollout.env..").should().dependOnClassesThat()
                        .resideInAnyPackage("dev.rollout.api..", "dev.rollout.engine..", "dev.rollout.model..", "dev.rollout.runtime..",
                                "dev.rollout.weights..", "dev.rollout.client..", "org.bytedeco..")
                        .because("the example environment is separate from the server proper (ADR 0011)"));
    }

    @ParameterizedTest
    @MethodSource("rules")
    void holds(ArchRule rule) {
        rule.check(main);
    }

    @Test
    void aResourceThatReachesIntoTheEngineBreaksTheRule() {
        JavaClasses planted = new ClassFileImporter().importClasses(PlantedResource.class);
        EvaluationResult r = rules().get(0).evaluate(planted);
        assertTrue(r.hasViolation(), "the planted resource uses LlmEngine");
        assertTrue(r.getFailureReport().toString().contains("LlmEngine"), r.getFailureReport().toString());
        assertTrue(rules().get(1).evaluate(planted).hasViolation(), "the planted resource holds a Tensor");
    }

    /**
     * The compiler itself refuses a resource that tries to reach the live engine: the loop offers
     * commands, published values and nothing else, so there is no getter to call.
     */
    @Test
    void theCompilerRefusesAResourceThatReachesForTheEngine() throws IOException {
        String planted = """
                package dev.rollout.api;
                class ReachesIn {
                    Object engine(dev.rollout.engine.EngineLoop loop) { return loop.engine(); }
                    Object call(dev.rollout.engine.EngineLoop loop) { return loop.call(e -> e.model()); }
                }
                """;
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        Path out = Files.createTempDirectory("planted");
        try (StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, null, null)) {
            JavaFileObject source = new SimpleJavaFileObject(URI.create("string:///dev/rollout/api/ReachesIn.java"), JavaFileObject.Kind.SOURCE) {
                @Override
                public CharSequence getCharContent(boolean ignoreEncodingErrors) {
                    return planted;
                }
            };
            StringWriter log = new StringWriter();
            boolean compiled = javac.getTask(log, files, diagnostics, List.of("-classpath", System.getProperty("java.class.path"),
                    "-d", out.toString()), null, List.of(source)).call();
            assertFalse(compiled, "a resource must not be able to reach the engine");
            long missing = diagnostics.getDiagnostics().stream().filter(d -> d.getCode().equals("compiler.err.cant.resolve.location.args")).count();
            assertTrue(missing == 2, "both reaches fail for want of a way in: " + diagnostics.getDiagnostics());
        } finally {
            try (Stream<Path> s = Files.walk(out)) {
                s.map(Path::toFile).sorted((a, b) -> b.getPath().length() - a.getPath().length()).forEach(File::delete);
            }
        }
    }
}
