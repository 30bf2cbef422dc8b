package dev.rollout.health;

import dev.rollout.runtime.EngineService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;

/**
 * Alive while the engine loop goes round: its heartbeat is younger than
 * {@code rollout.liveness-seconds}. Loading counts as alive; a failed start does not, and nor does
 * a lost tensor-parallel rank, so that Kubernetes restarts the pod.
 */
@Liveness
@ApplicationScoped
public class EngineLivenessCheck implements HealthCheck {
    @Inject
    EngineService service;

    @Override
    public HealthCheckResponse call() {
        var loop = service.loop();
        if (loop == null)
            return HealthCheckResponse.named("engine-loop").status(service.phase() != EngineService.Phase.FAILED)
                    .withData("phase", service.phase().name()).build();
        double age = loop.heartbeatAgeSeconds();
        var b = HealthCheckResponse.named("engine-loop")
                .status(loop.isAlive() && age < service.settings().livenessSeconds() && loop.lostRank() == null)
                .withData("heartbeat_age_seconds", String.format("%.3f", age));
        // a lost rank cannot come back into the group: only a restart of every rank serves again
        if (loop.lostRank() != null) b.withData("lost_rank", loop.lostRank());
        return b.build();
    }
}
