package dev.rollout.api;

import dev.rollout.engine.EngineLoop;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonObject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;

/**
 * The OpenAI API's generation routes, for agent frameworks and environments that speak it:
 * {@code POST /v1/completions} and {@code POST /v1/chat/completions}.
 */
@Path("/")  // not "v1": a class path claims its prefix, and /v1/models, /v1/tokenize live in other resources
@ApplicationScoped
public class OpenAiResource {
    @Inject
    EngineService service;

    @POST
    @Path("v1/completions")
    public Response completions(InputStream body) {
        EngineLoop loop = Requests.generationLoop(service);
        ServerSettings settings = service.settings();
        JsonObject o = JsonBodies.object(body, settings.maxBodyBytes());
        String model = ServerResource.servedModelName(service);
        OpenAi.checkModel(o, model);
        GenerateRequest req = Requests.parser(service).parse(OpenAiCompletions.toGenerate(o));
        PendingGeneration pending = new PendingGeneration(req, loop, service.tokenizer());
        GenerationRelay.Format format = new OpenAiCompletions.Format(pending, service.tokenizer(), model,
                OpenAi.includeUsage(o), OpenAi.flag(o, "return_token_ids"));
        return GenerationRelay.respond(pending, req.stream(), format, settings);
    }

    @POST
    @Path("v1/chat/completions")
    public Response chatCompletions(InputStream body) {
        EngineLoop loop = Requests.generationLoop(service);
        ServerSettings settings = service.settings();
        JsonObject o = JsonBodies.object(body, settings.maxBodyBytes());
        String model = ServerResource.servedModelName(service);
        OpenAi.checkModel(o, model);
        OpenAiChat.Plan plan = OpenAiChat.plan(o, service.chatTemplates(), service.tokenizer(), loop.engine().maxModelLen());
        GenerateRequest req = Requests.parser(service).parse(plan.generate());
        PendingGeneration pending = new PendingGeneration(req, loop, service.tokenizer());
        return GenerationRelay.respond(pending, req.stream(), new OpenAiChat.Format(pending, service.tokenizer(), plan, model), settings);
    }
}
