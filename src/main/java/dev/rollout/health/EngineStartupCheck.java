package dev.rollout.health;

import dev.rollout.runtime.EngineService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Startup;

/** Started once the weights are loaded and the warm-up generation has come back. */
@Startup
@ApplicationScoped
public class EngineStartupCheck implements HealthCheck {
    @Inject
    EngineService service;

    @Override
    public HealthCheckResponse call() {
        var b = HealthCheckResponse.named("engine-started").status(service.phase() == EngineService.Phase.READY)
                .withData("phase", service.phase().name());
        if (service.failure() != null) b.withData("failure", service.failure());
        return b.build();
    }
}
