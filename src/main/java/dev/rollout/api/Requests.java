package dev.rollout.api;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.runtime.EngineService;

/** What every engine-facing resource checks first. */
final class Requests {
    private Requests() {}

    /** The engine loop, or a 503 while the model loads, warms up or has failed. */
    static EngineLoop readyLoop(EngineService service) {
        EngineLoop loop = service.loop();
        if (loop == null || !service.ready()) {
            String why = service.phase() == EngineService.Phase.FAILED ? "the engine failed to start: " + service.failure()
                    : "the engine is " + service.phase().name().toLowerCase().replace('_', ' ');
            throw new ApiException(503, why);
        }
        return loop;
    }

    static GenerateRequestParser parser(EngineService service) {
        LlmEngine engine = service.loop().engine();
        LlmEngine.EngineStats stats = service.loop().stats();
        return new GenerateRequestParser(new GenerateRequestParser.Limits(engine.modelConfig().vocabSize(), engine.maxModelLen(),
                (long) stats.totalBlocks() * stats.blockSize(), service.settings().maxN()), service.tokenizer());
    }
}
