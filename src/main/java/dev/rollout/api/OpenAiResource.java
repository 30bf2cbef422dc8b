package dev.rollout.api;

import dev.rollout.engine.EngineLoop;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;

/**
 * The OpenAI API's generation routes, for agent frameworks and environments that speak it:
 * {@code POST /v1/completions} (chat completions come with the chat templates, issue #6).
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
        if (!(o.get("model") instanceof JsonString m)) throw ApiException.badRequest("model is required: \"" + model + "\" (GET /v1/models)");
        if (!m.getString().equals(model))
            throw new ApiException(404, "The model `" + m.getString() + "` does not exist; this server serves \"" + model + "\"");
        GenerateRequest req = Requests.parser(service).parse(OpenAiCompletions.toGenerate(o));
        PendingGeneration pending = new PendingGeneration(req, loop, service.tokenizer());
        GenerationRelay.Format format = new OpenAiCompletions.Format(pending, service.tokenizer(), model,
                OpenAiCompletions.includeUsage(o), OpenAiCompletions.returnTokenIds(o));
        return GenerationRelay.respond(pending, req.stream(), format, settings);
    }
}
