package dev.rollout.health;

import dev.rollout.engine.RlStatus;
import dev.rollout.runtime.EngineService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready while the engine accepts requests; a change is logged once, not at every probe. */
@Readiness
@ApplicationScoped
public class EngineReadinessCheck implements HealthCheck {
    private final Transitions transitions = new Transitions("readiness");

    @Inject
    EngineService service;

    @Override
    public HealthCheckResponse call() {
        var loop = service.loop();
        boolean up = service.ready() && loop != null && loop.isAlive() && loop.lostRank() == null;
        var b = HealthCheckResponse.named("engine-ready").status(up);
        String why = "";
        if (loop == null) {
            why = "the engine is " + service.phase().name().toLowerCase();
        } else {
            RlStatus s = loop.status();
            var st = loop.stats();
            b.withData("running", st.numRunning()).withData("waiting", st.numWaiting())
                    .withData("weight_version", s.weightVersion()).withData("rl_state", s.state().name().toLowerCase());
            if (loop.lostRank() != null) b.withData("lost_rank", loop.lostRank());
            if (!up) why = !loop.isAlive() ? "the engine loop has stopped"
                    : loop.lostRank() != null ? "the engine lost a tensor-parallel rank: " + loop.lostRank()
                    : !service.started() ? "the engine is " + service.phase().name().toLowerCase()
                    : !s.released().isEmpty() ? "memory is released " + s.released() + " until resume_memory_occupation"
                    : s.unpushedParameters() + " parameters wait to be pushed since the weights were resumed";
        }
        transitions.report(up, why);
        return b.build();
    }
}
