package dev.rollout.health;

import dev.rollout.runtime.EngineService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready while the engine accepts requests. */
@Readiness
@ApplicationScoped
public class EngineReadinessCheck implements HealthCheck {
    @Inject
    EngineService service;

    @Override
    public HealthCheckResponse call() {
        var loop = service.loop();
        var b = HealthCheckResponse.named("engine-ready").status(service.ready() && loop != null && loop.isAlive());
        if (loop != null) {
            var s = loop.stats();
            b.withData("running", s.numRunning()).withData("waiting", s.numWaiting())
                    .withData("weight_version", loop.engine().weightVersion());
        }
        return b.build();
    }
}
