package it.dev.rollout;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * For IT classes that push other weights into the server the ITs share: waits until it is ready,
 * and afterwards loads its own checkpoint back under the version it served before. The checkpoint's
 * path is read before the class runs: get_model_info's model_path follows update_weights_from_disk.
 */
public final class RestoresServedWeights implements BeforeAllCallback, AfterAllCallback {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(RestoresServedWeights.class);

    @Override
    public void beforeAll(ExtensionContext context) {
        Http.awaitReady();
        context.getStore(NS).put("version", Http.get("/get_weight_version").object().getString("weight_version"));
        context.getStore(NS).put("path", Http.get("/get_model_info").object().getString("model_path"));
    }

    @Override
    public void afterAll(ExtensionContext context) {
        String version = context.getStore(NS).get("version", String.class);
        Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + context.getStore(NS).get("path", String.class)
                + "\", \"weight_version\": \"" + version + "\"}");
    }
}
