package dev.rollout.client.agent;

import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.spi.JsonProvider;
import java.io.IOException;
import java.io.StringReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;

/**
 * The example environment's HTTP API ({@code dev.rollout.env} under {@code /env}): tools from
 * {@code GET /env}, calls to {@code POST /env/tools/{name}}, rewards from {@code POST /env/reward}.
 * A call that fails (503, a lost connection, a timeout) is tried again after a backoff, as agent
 * frameworks do with flaky sandboxes; when every try fails, the model is told so in the
 * observation, and the episode goes on.
 *
 */
public final class HttpEnvironment implements Environment {
    private static final JsonProvider JSON = JsonProvider.provider();

    private final URI base;
    private final String query;
    private final Duration timeout;
    private final int retries;
    private final String apiKey;
    private final HttpClient http;
    private final List<JsonObject> tools;

    /**
     * Connects and reads the tool list once.
     *
     * @param base     the environment's root, e.g. {@code http://localhost:9080/env}
     * @param query    appended to every tool call ({@code latency_ms=50-2000&failure_rate=0.1}), or ""
     * @param timeout  how long one try may take
     * @param retries  further tries after a failed one
     * @param apiKey   a bearer token, or null
     */
    public HttpEnvironment(URI base, String query, Duration timeout, int retries, String apiKey) {
        this.base = URI.create(base.toString().replaceAll("/+$", ""));
        this.query = query == null ? "" : query;
        this.timeout = timeout;
        this.retries = retries;
        this.apiKey = apiKey;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
        this.tools = List.copyOf(attempt(request("", null), 0).join().getJsonArray("tools").getValuesAs(JsonObject.class));
    }

    @Override
    public List<JsonObject> tools() {
        return tools;
    }

    @Override
    public CompletableFuture<ToolResult> call(ToolCall call) {
        if (call.isMalformed()) return CompletableFuture.completedFuture(ToolResult.answer("error: " + call.malformed()));
        if (tools.stream().noneMatch(t -> call.name().equals(t.getJsonObject("function").getString("name"))))
            return CompletableFuture.completedFuture(ToolResult.answer("error: there is no tool named " + call.name()));
        HttpRequest req = request("/tools/" + call.name() + (query.isEmpty() ? "" : "?" + query), call.arguments());
        return attempt(req, 0).thenApply(o -> ToolResult.answer(o.getString("content")))
                .exceptionally(e -> new ToolResult("error: the tool did not answer (" + cause(e).getMessage() + ")", true));
    }

    @Override
    public CompletableFuture<Double> reward(String question, String finalText) {
        JsonObject body = JSON.createObjectBuilder().add("question", question).add("response", finalText).build();
        return attempt(request("/reward", body), 0).thenApply(o -> o.getJsonNumber("reward").doubleValue());
    }

    private CompletableFuture<JsonObject> attempt(HttpRequest req, int tried) {
        return send(req).handle((o, e) -> {
            if (e == null) return CompletableFuture.completedFuture(o);
            Throwable c = cause(e);
            boolean transient_ = c instanceof IOException || (c instanceof Failure f && f.status >= 500);
            if (!transient_ || tried >= retries) return CompletableFuture.<JsonObject>failedFuture(c);
            long backoffMs = 50L << Math.min(tried, 6);
            return CompletableFuture.supplyAsync(() -> null, CompletableFuture.delayedExecutor(backoffMs, TimeUnit.MILLISECONDS))
                    .thenCompose(x -> attempt(req, tried + 1));
        }).thenCompose(f -> f);
    }

    private CompletableFuture<JsonObject> send(HttpRequest req) {
        return http.sendAsync(req, HttpResponse.BodyHandlers.ofString()).thenApply(r -> {
            JsonObject o;
            try (var reader = JSON.createReader(new StringReader(r.body()))) {
                o = reader.readObject();
            } catch (RuntimeException e) {
                throw new Failure(r.statusCode(), req.uri() + " answered " + r.statusCode() + " without JSON");
            }
            if (r.statusCode() >= 400) {
                String why = o.get("message") instanceof JsonString m ? m.getString() : o.toString();
                throw new Failure(r.statusCode(), req.method() + " " + req.uri() + " failed (" + r.statusCode() + "): " + why);
            }
            return o;
        });
    }

    private HttpRequest request(String path, JsonObject body) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(timeout).header("Accept", "application/json");
        if (apiKey != null) b.header("Authorization", "Bearer " + apiKey);
        if (body == null) return b.GET().build();
        return b.header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build();
    }

    private static Throwable cause(Throwable e) {
        while (e instanceof CompletionException && e.getCause() != null) e = e.getCause();
        return e;
    }

    /** An answer of 4xx or 5xx from the environment. */
    static final class Failure extends RuntimeException {
        final int status;

        Failure(int status, String message) {
            super(message, null, false, false);
            this.status = status;
        }
    }
}
