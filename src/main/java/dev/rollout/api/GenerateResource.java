package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.util.Arrays;

/**
 * {@code POST /generate}: SGLang's native generation call, token ids or text in, token ids,
 * text and logprobs out, whole or as server-sent events ({@link GenerationRelay} waits and writes).
 */
@Path("/generate")
@ApplicationScoped
public class GenerateResource {
    @Inject
    EngineService service;

    @Inject
    RidsInFlight rids;

    @POST
    public Response generate(InputStream body) {
        return handle(body);
    }

    @PUT
    public Response generatePut(InputStream body) {
        return handle(body);
    }

    private Response handle(InputStream body) {
        EngineLoop loop = Requests.generationLoop(service);
        ServerSettings settings = service.settings();
        JsonObject json = JsonBodies.object(body, settings.maxBodyBytes());
        GenerateRequest req = Requests.parser(service).parse(json);
        PendingGeneration pending = new PendingGeneration(req, loop, service.tokenizer(), rids,
                SessionParams.parse(json, req, service.tokenizer()));
        GenerationRelay.Format format = new SglangFormat(pending, req, new GenerateResponses(service.tokenizer(),
                req.returnTextInLogprobs()), settings.incrementalStreamingOutput());
        return GenerationRelay.respond(pending, req.stream(), format, settings);
    }

    /** SGLang's answers: each streamed snapshot whole (or only what is new, incrementally), then [DONE]. */
    private static final class SglangFormat implements GenerationRelay.Format {
        private final PendingGeneration pending;
        private final GenerateRequest req;
        private final GenerateResponses responses;
        private final boolean incremental;
        /** Asked once: it sums the items' n, which every streamed chunk would otherwise do again. */
        private final boolean list;
        private final GenerateResponses.Sent[] sent;

        SglangFormat(PendingGeneration pending, GenerateRequest req, GenerateResponses responses, boolean incremental) {
            this.pending = pending;
            this.req = req;
            this.responses = responses;
            this.incremental = incremental;
            this.list = req.answersWithList();
            this.sent = new GenerateResponses.Sent[pending.size()];
            Arrays.fill(sent, GenerateResponses.Sent.NOTHING);
        }

        @Override
        public String event(SequenceOutput ev) {
            int i = ev.index();
            JsonObject chunk = responses.toJson(ev, pending.item(i), i, list,
                    incremental ? sent[i] : GenerateResponses.Sent.NOTHING);
            if (incremental) sent[i] = GenerateResponses.Sent.after(ev);
            return "data: " + chunk + "\n\n";
        }

        @Override
        public String end(SequenceOutput[] finals) {
            return "data: [DONE]\n\n";
        }

        @Override
        public String whole(SequenceOutput[] finals) {
            if (!list) return responses.toJson(finals[0], pending.item(0), 0, false).toString();
            JsonArrayBuilder all = JSON.createArrayBuilder();
            for (int i = 0; i < finals.length; i++) {
                if (finals[i] == null) all.add(Errors.generateBody("no answer from the engine"));
                else all.add(responses.toJson(finals[i], pending.item(i), i, false));
            }
            return all.build().toString();
        }
    }
}
