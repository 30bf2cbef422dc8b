package dev.rollout.api;

import dev.rollout.engine.EngineLoop;
import dev.rollout.runtime.EngineService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonObject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.util.HashSet;
import java.util.Set;

/**
 * The OpenAI API's generation routes, for agent frameworks and environments that speak it:
 * {@code POST /v1/completions}, {@code POST /v1/chat/completions} and {@code POST /v1/responses}.
 */
@Path("/")  // not "v1": a class path claims its prefix, and /v1/models, /v1/tokenize live in other resources
@ApplicationScoped
public class OpenAiResource {
    @Inject
    EngineService service;

    @Inject
    RidsInFlight rids;

    /** A request body for the served model, with the loop that will run it and the model name its answers echo. */
    private record Call(EngineLoop loop, JsonObject body, String model) {}

    private Call call(InputStream body) {
        EngineLoop loop = Requests.generationLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        String served = ServerResource.servedModelName(service);
        // the path forms SGLang clients send: as configured, and as /get_model_info reports it
        Set<String> paths = new HashSet<>();
        paths.add(service.modelDir().toString());
        if (!service.settings().modelPath().isBlank()) paths.add(service.settings().modelPath());
        String loaded = service.weights().lastDiskPath();  // /get_model_info's path after update_weights_from_disk
        if (loaded != null) paths.add(loaded);
        return new Call(loop, o, OpenAi.checkModel(o, served, paths));
    }

    @POST
    @Path("v1/completions")
    public Response completions(InputStream body) {
        Call c = call(body);
        JsonObject generate = OpenAiCompletions.toGenerate(c.body());
        GenerateRequest req = Requests.parser(service).constraintField(OpenAi.constraintField(c.body())).parse(generate);
        PendingGeneration pending = new PendingGeneration(req, c.loop(), service.tokenizer(), rids);
        GenerationRelay.Format format = new OpenAiCompletions.Format(pending, service.tokenizer(), c.model(),
                OpenAi.includeUsage(c.body()), OpenAi.flag(c.body(), "return_token_ids"));
        return GenerationRelay.respond(pending, req.stream(), format, service.settings());
    }

    @POST
    @Path("v1/chat/completions")
    public Response chatCompletions(InputStream body) {
        Call c = call(body);
        OpenAiChat.Plan plan = OpenAiChat.plan(c.body(), service.chatTemplates(), service.tokenizer(), c.loop().info().maxModelLen(),
                service.settings().toolStrictLevel());
        GenerateRequest req = Requests.parser(service).constraintField(plan.constraintField()).parse(plan.generate());
        PendingGeneration pending = new PendingGeneration(req, c.loop(), service.tokenizer(), rids);
        return GenerationRelay.respond(pending, req.stream(), new OpenAiChat.Format(pending, service.tokenizer(), plan, c.model()),
                service.settings());
    }

    /** OpenAI's Responses API, stateless: run as the chat request it translates to ({@link OpenAiResponses}). */
    @POST
    @Path("v1/responses")
    public Response responses(InputStream body) {
        Call c = call(body);
        OpenAiResponses.Translation t = OpenAiResponses.toChat(c.body());
        OpenAiChat.Plan plan = OpenAiChat.plan(t.chat(), service.chatTemplates(), service.tokenizer(), c.loop().info().maxModelLen(),
                service.settings().toolStrictLevel(), t.tools());
        GenerateRequest req = Requests.parser(service).constraintField(t.constraintField(plan.constraintField())).parse(plan.generate());
        PendingGeneration pending = new PendingGeneration(req, c.loop(), service.tokenizer(), rids);
        return GenerationRelay.respond(pending, req.stream(), new OpenAiResponses.Relay(plan, c.model(), t.echo()), service.settings());
    }
}
