package dev.rollout.engine;

import dev.rollout.model.CausalLm;
import dev.rollout.model.DecodeAttention;
import dev.rollout.model.Kernels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Drives an {@link LlmEngine} synchronously on the test thread. */
final class EngineHarness {
    final LlmEngine engine;
    /** The weight and memory controls the loop would run beside the engine; the backup off, as by default. */
    final WeightControl weights;
    final MemoryOccupation memory;
    final Map<String, SequenceOutput> finished = new HashMap<>();
    final Map<String, List<SequenceOutput>> streamed = new HashMap<>();
    int maxBatch;

    /** The device the engine tests run on: cpu in CI; tools/gpu/run-tests.sh sets cuda. */
    static final String DEVICE = System.getProperty("rollout.test.device", "cpu");

    EngineHarness(Path checkpoint, EngineConfig config, TokenDecoder decoder) throws Exception {
        this(checkpoint, config, decoder, DecodeAttention.GATHER);
    }

    EngineHarness(Path checkpoint, EngineConfig config, TokenDecoder decoder, DecodeAttention decode) throws Exception {
        this(CausalLm.load(checkpoint, ScalarType.Float, new Device(DEVICE), Kernels.libtorch(decode)), config, decoder);
    }

    EngineHarness(CausalLm lm, EngineConfig config, TokenDecoder decoder) {
        engine = new LlmEngine(lm, config, decoder, null);
        weights = new WeightControl(engine, false);
        memory = new MemoryOccupation(engine, weights);
    }

    /** The combined SHA-256 of every parameter, as /weights_checker reports it. */
    String checksum() {
        return weights.checksums().combined();
    }

    /** What the loop does after every command: hold the engine while memory is released or weights are missing. */
    void settle() {
        engine.hold(memory.holdsEngine());
    }

    static EngineHarness fixture(String arch, EngineConfig config) throws Exception {
        return fixture(arch, config, DecodeAttention.GATHER);
    }

    static EngineHarness fixture(String arch, EngineConfig config, DecodeAttention decode) throws Exception {
        return new EngineHarness(Path.of("src/test/resources/fixtures", arch), config, null, decode);
    }

    static EngineConfig smallConfig() {
        return new EngineConfig(DEVICE, "float32", 4, 64, 8, 16, 0, 0.8);
    }

    Sequence add(String rid, int[] prompt, SamplingParams params, LogprobOptions lp) {
        return add(rid, 0, prompt, params, lp, false, null);
    }

    Sequence add(String rid, int index, int[] prompt, SamplingParams params, LogprobOptions lp, boolean stream, Sequence leader) {
        Sequence s = new Sequence(rid, index, prompt, params, lp, engine.decoder(), out -> {
            if (out.finished()) finished.put(out.rid(), out);
            else streamed.computeIfAbsent(out.rid(), k -> new ArrayList<>()).add(out);
        }, stream, params.seed() == null ? 42 : params.seed());
        s.prefixLeader = leader;
        engine.add(s);
        return s;
    }

    void runToCompletion() {
        int steps = 0;
        while (engine.hasWork()) {
            maxBatch = Math.max(maxBatch, engine.step());
            if (++steps > 100_000) throw new AssertionError("engine did not finish");
        }
    }
}
