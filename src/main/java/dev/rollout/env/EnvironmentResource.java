package dev.rollout.env;

import jakarta.annotation.Resource;
import jakarta.enterprise.concurrent.ManagedScheduledExecutorService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.Json;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.container.AsyncResponse;
import jakarta.ws.rs.container.Suspended;
import jakarta.ws.rs.core.MediaType;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * The example environment of issue #5, a tool sandbox that agent loops call over HTTP: arithmetic
 * tasks, a calculator tool and a reward. It is not part of the rollout server proper: it shares
 * the war only so that one process serves both in tests and demonstrations, it is off unless
 * {@code rollout.example-env.enabled}, and it uses nothing of the server's packages.
 *
 * <p>Real environments are slow and sometimes fail, and that is what agent loops must be tested
 * against: every tool call waits a latency drawn from {@code rollout.example-env.latency-ms}
 * ("200" or a uniform range "50-2000") and fails with 503 at {@code rollout.example-env.failure-rate};
 * the query parameters {@code latency_ms} and {@code failure_rate} override both per call. The
 * wait holds no thread: the answer is scheduled.
 */
@Path("env")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
@Consumes(MediaType.APPLICATION_JSON)
public class EnvironmentResource {
    static final int MAX_TASKS = 100_000;

    /** The calculator in the OpenAI function format, as chat templates list tools. */
    static final JsonObject CALCULATOR = Json.createObjectBuilder().add("type", "function").add("function", Json.createObjectBuilder()
            .add("name", "calculator")
            .add("description", "Evaluate an integer arithmetic expression with + - * / and parentheses.")
            .add("parameters", Json.createObjectBuilder().add("type", "object")
                    .add("properties", Json.createObjectBuilder().add("expression", Json.createObjectBuilder()
                            .add("type", "string").add("description", "digits, + - * / and parentheses")))
                    .add("required", Json.createArrayBuilder().add("expression")))).build();

    @Inject
    @ConfigProperty(name = "rollout.example-env.enabled", defaultValue = "false")
    boolean enabled;

    @Inject
    @ConfigProperty(name = "rollout.example-env.latency-ms", defaultValue = "0")
    String latencyMs;

    @Inject
    @ConfigProperty(name = "rollout.example-env.failure-rate", defaultValue = "0")
    double failureRate;

    @Resource(lookup = "java:comp/DefaultManagedScheduledExecutorService")
    ManagedScheduledExecutorService timer;

    /** The tools in the OpenAI function format, for the system prompt, and the fault settings. */
    @GET
    public JsonObject describe() {
        requireEnabled();
        return Json.createObjectBuilder()
                .add("tools", Json.createArrayBuilder().add(CALCULATOR))
                .add("latency_ms", latencyMs).add("failure_rate", failureRate).build();
    }

    /** {"count": n, "seed": s} → {"tasks": [{"question": ...}]}: the same seed gives the same tasks. */
    @POST
    @Path("tasks")
    public JsonObject tasks(JsonObject body) {
        requireEnabled();
        int count = intField(body, "count", 1, MAX_TASKS);
        long seed = body.get("seed") instanceof JsonNumber n ? n.longValue() : 0;
        JsonArrayBuilder tasks = Json.createArrayBuilder();
        for (int i = 0; i < count; i++)
            tasks.add(Json.createObjectBuilder().add("question", ArithmeticTasks.question(ArithmeticTasks.expression(seed, i))));
        return Json.createObjectBuilder().add("tasks", tasks).build();
    }

    /**
     * {"expression": "37*91"} → {"content": "3367"} after the configured latency. An expression
     * the calculator cannot evaluate is the model's mistake, not the caller's: it answers 200 with
     * {"content": "error: ...", "error": true}, which the agent shows the model.
     */
    @POST
    @Path("tools/calculator")
    public void calculator(JsonObject body, @QueryParam("latency_ms") String latency, @QueryParam("failure_rate") Double rate,
                           @Suspended AsyncResponse response) {
        requireEnabled();
        if (!(body != null && body.get("expression") instanceof JsonString expr))
            throw badRequest("expression is required: a string such as \"37*91\"");
        double failAt = rate != null ? rate : failureRate;
        if (!(failAt >= 0 && failAt <= 1)) throw badRequest("failure_rate must be in [0, 1], not " + failAt);
        long delay;
        try {
            delay = drawLatency(latency != null ? latency : latencyMs);
        } catch (IllegalArgumentException e) {
            throw badRequest((latency != null ? "latency_ms " : "rollout.example-env.latency-ms ") + e.getMessage());
        }
        response.setTimeout(delay + 30_000, TimeUnit.MILLISECONDS);
        Runnable answer = () -> {
            if (ThreadLocalRandom.current().nextDouble() < failAt) {
                response.resume(new WebApplicationException("injected failure (failure_rate " + failAt + ")", 503));
                return;
            }
            JsonObject out;
            try {
                out = Json.createObjectBuilder().add("content", Long.toString(Arithmetic.eval(expr.getString()))).build();
            } catch (Arithmetic.EvalException e) {
                out = Json.createObjectBuilder().add("content", "error: " + e.getMessage()).add("error", true).build();
            }
            response.resume(out);
        };
        if (delay == 0) answer.run();
        else timer.schedule(answer, delay, TimeUnit.MILLISECONDS);
    }

    /**
     * {"question": "What is 37*91?", "response": "... 3367"} → {"reward": 1.0, "expected": "3367",
     * "answer": "3367"}: 1 when the last integer of the response is the right result, else 0.
     */
    @POST
    @Path("reward")
    public JsonObject reward(JsonObject body) {
        requireEnabled();
        if (!(body != null && body.get("question") instanceof JsonString q)) throw badRequest("question is required: a task's question");
        if (!(body.get("response") instanceof JsonString r)) throw badRequest("response is required: the agent's final answer");
        String expression = ArithmeticTasks.expressionOf(q.getString());
        if (expression == null) throw badRequest("question is not one of this environment's tasks: " + abbreviate(q.getString()));
        long expected;
        try {
            expected = Arithmetic.eval(expression);
        } catch (Arithmetic.EvalException e) {
            throw badRequest("question's expression cannot be evaluated: " + e.getMessage());
        }
        Long answer = ArithmeticTasks.answerOf(r.getString());
        return Json.createObjectBuilder()
                .add("reward", answer != null && answer == expected ? 1.0 : 0.0)
                .add("expected", Long.toString(expected))
                .add("answer", answer == null ? JsonValue.NULL : Json.createValue(Long.toString(answer))).build();
    }

    /** A latency in ms from "200" or a uniform range "50-2000"; IllegalArgumentException names what is wrong. */
    static long drawLatency(String spec) {
        String[] parts = spec.strip().split("-", -1);
        try {
            long lo = Long.parseLong(parts[0].strip()), hi = parts.length == 2 ? Long.parseLong(parts[1].strip()) : lo;
            if (parts.length <= 2 && lo >= 0 && lo <= hi && hi <= 600_000)
                return lo == hi ? lo : ThreadLocalRandom.current().nextLong(lo, hi + 1);
        } catch (NumberFormatException e) {
            // the message below says what the value should be
        }
        throw new IllegalArgumentException("must be milliseconds (\"200\") or a range (\"50-2000\") within 0-600000, not \""
                + abbreviate(spec) + "\"");
    }

    private void requireEnabled() {
        if (!enabled)
            throw new WebApplicationException("the example environment is off; start the server with rollout.example-env.enabled=true", 404);
    }

    private static int intField(JsonObject body, String name, int min, int max) {
        if (body == null || !(body.get(name) instanceof JsonNumber n) || !n.isIntegral() || n.longValue() < min || n.longValue() > max)
            throw badRequest(name + " is required: a whole number from " + min + " to " + max);
        return n.intValue();
    }

    /** The server's error mapper writes these in SGLang's error shape, as for every other route. */
    private static WebApplicationException badRequest(String message) {
        return new WebApplicationException(message, 400);
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 80) + "...";
    }
}
