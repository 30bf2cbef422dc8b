package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpRequest;
import java.util.ArrayList;
import java.util.List;

/**
 * Every GET route of the server that reads state, called in whatever RL state the server is in.
 * Each must answer 2xx in every state: an operator watches the server most closely exactly when
 * it is released, draining or waiting to update. Left out, with the reason: the GET aliases of
 * actions (release, resume, flush), and the probes whose very job is to answer DOWN
 * ({@code /health/ready}, {@code /health}, {@code /health_generate}), which must answer 200 or 503.
 */
final class GetRoutes {
    private GetRoutes() {}

    /** The routes that read weight values: 2xx whenever the weights exist (resident, or kept in host memory). */
    static final List<String> WEIGHT_READS = List.of("/get_weights_by_name?name=model.norm.weight&truncate_size=4", "/weights_checker");

    static List<String> stateReads(String base) {
        String model = Http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).GET()).object()
                .getJsonArray("data").getJsonObject(0).getString("id");
        return List.of("/get_model_info", "/get_server_info", "/server_info", "/v1/loads?include=core", "/v1/models", "/v1/models/" + model, "/get_weight_version", "/rl/state",
                "/status", "/metrics", "/health/live", "/health/started", "/", "/status.js", "/status.css");
    }

    /**
     * Calls every state-reading GET on {@code base} and checks it answers 2xx; the weight reads must
     * answer 2xx when {@code weightsReadable}, else 409; the probes 200 or 503. Returns a line per
     * route for the failure message.
     */
    static void checkAll(String base, String state, boolean weightsReadable, boolean probeGenerate) {
        List<String> failures = new ArrayList<>();
        List<String> routes = new ArrayList<>(stateReads(base));
        routes.add("/env");  // the example environment, which the IT servers' configuration turns on
        for (String path : routes) {
            Http.Reply r = Http.send(HttpRequest.newBuilder(URI.create(base + path)).GET());
            if (r.status() / 100 != 2) failures.add(path + " -> " + r.status() + " " + abbreviate(r.body()));
        }
        for (String path : WEIGHT_READS) {
            Http.Reply r = Http.send(HttpRequest.newBuilder(URI.create(base + path)).GET());
            int want = weightsReadable ? 200 : 409;
            if (r.status() != want) failures.add(path + " -> " + r.status() + " (want " + want + ") " + abbreviate(r.body()));
        }
        List<String> probes = new ArrayList<>(List.of("/health/ready", "/health"));
        if (probeGenerate) probes.add("/health_generate");  // runs a generation where the engine can (up to 20 s)
        for (String path : probes) {
            Http.Reply r = Http.send(HttpRequest.newBuilder(URI.create(base + path)).GET());
            if (r.status() != 200 && r.status() != 503) failures.add(path + " -> " + r.status() + " " + abbreviate(r.body()));
        }
        assertTrue(failures.isEmpty(), "in state " + state + ":\n" + String.join("\n", failures));
        assertEquals(state, Http.send(HttpRequest.newBuilder(URI.create(base + "/rl/state")).GET()).object().getString("state"),
                "the routes were read in the state named");
    }

    private static String abbreviate(String s) {
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }
}
