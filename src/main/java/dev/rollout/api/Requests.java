package dev.rollout.api;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.EngineInfo;
import dev.rollout.engine.RlStatus;
import dev.rollout.engine.RlState;
import dev.rollout.runtime.EngineService;

/** What every engine-facing resource checks first. */
final class Requests {
    private Requests() {}

    /** The engine loop, or a 503 while the model loads, warms up or has failed. */
    static EngineLoop readyLoop(EngineService service) {
        EngineLoop loop = service.loop();
        if (loop == null || !service.started()) {
            String why = service.phase() == EngineService.Phase.FAILED ? "the engine failed to start: " + service.failure()
                    : "the engine is " + service.phase().name().toLowerCase().replace('_', ' ');
            throw new ApiException(503, why);
        }
        String lost = loop.lostRank();
        if (lost != null) throw new ApiException(503, "the engine lost a tensor-parallel rank and cannot run: " + lost);
        return loop;
    }

    /**
     * The loop, for generation: also a 503 while memory is released or released weights have not
     * all been pushed again, since such requests could only wait. A paused engine queues them.
     */
    static EngineLoop generationLoop(EngineService service) {
        EngineLoop loop = readyLoop(service);
        RlStatus s = loop.status();
        if (s.state() == RlState.RELEASED)
            throw new ApiException(503, "memory is released (" + s.released() + "); call resume_memory_occupation first");
        if (s.unpushedParameters() > 0)
            throw new ApiException(503, s.unpushedParameters() + " parameters have not been pushed since the weights were resumed "
                    + "without a host copy or filled with noise by weights_checker reset_tensors; push or load the weights");
        return loop;
    }

    static GenerateRequestParser parser(EngineService service) {
        EngineInfo info = service.loop().info();
        return new GenerateRequestParser(new GenerateRequestParser.Limits(info.vocabSize(), info.maxModelLen(), info.kvTokens(),
                service.settings().maxN(), info.hiddenSize(), info.routedExperts()), service.tokenizer(), service.settings().logprobsMode(),
                service.constraints());
    }
}
