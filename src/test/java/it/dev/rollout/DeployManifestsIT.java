package it.dev.rollout;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * deploy/k8s against the Kubernetes schemas (npm kubernetes-models and its Prometheus Operator
 * models) and against the running server, and deploy/grafana against the server's metric names:
 * src/test/node/deploy-manifests.test.mjs.
 */
class DeployManifestsIT {
    @Test
    void manifestsValidateAndMatchTheServer() throws Exception {
        NodeTests.assertPasses("deploy-manifests",
                List.of("kubernetes-models@5.1.0", "@kubernetes-models/prometheus-operator@6.0.0", "yaml@2.9.1"),
                "deploy-manifests.test.mjs", 4, Map.of("REPO", Path.of("").toAbsolutePath().toString()));
    }
}
