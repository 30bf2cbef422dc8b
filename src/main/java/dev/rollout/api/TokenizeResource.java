package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineLoop;
import dev.rollout.runtime.EngineService;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.io.InputStream;
import java.util.List;

/**
 * SGLang's {@code /tokenize} and {@code /detokenize} (also under {@code /v1/}): the served model's
 * own tokenizer, for clients that build prompts as token ids (agent loops appending an
 * environment's answer to a conversation without re-tokenizing what the model wrote).
 */
@Path("/")
@ApplicationScoped
@Produces(MediaType.APPLICATION_JSON)
public class TokenizeResource {
    @Inject
    EngineService service;

    /**
     * {"prompt": "text" | ["text", ...], "add_special_tokens": true} → {"tokens", "count", "max_model_len"};
     * or, as vLLM, a conversation: {"messages", "tools", "add_generation_prompt", "chat_template_kwargs", ...}
     * rendered by the model's chat template, as {@code /v1/chat/completions} would render it.
     */
    @POST
    @Path("tokenize")
    public JsonObject tokenize(InputStream body) {
        HfTokenizer tok = tokenizer();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (Fields.present(o, "messages")) {
            if (Fields.present(o, "prompt")) throw ApiException.badRequest("send prompt or messages, not both");
            // the template writes the special tokens itself
            boolean special = Fields.present(o, "add_special_tokens") && Fields.bool(o.get("add_special_tokens"), "add_special_tokens");
            int context = loop().info().maxModelLen();
            int[] ids = GenerateRequestParser.encode(tok, OpenAiChat.render(o, service.chatTemplates()).prompt(), special, context, "messages");
            return JSON.createObjectBuilder().add("tokens", ids(ids)).add("count", ids.length).add("max_model_len", context).build();
        }
        if (!Fields.present(o, "prompt")) throw ApiException.badRequest("prompt is required: a string or a list of strings (or messages)");
        boolean special = !Fields.present(o, "add_special_tokens") || Fields.bool(o.get("add_special_tokens"), "add_special_tokens");
        // a text that cannot fit the context is refused by its length, as generation refuses it, not tokenized
        int context = loop().info().maxModelLen();
        JsonObject out;
        if (o.get("prompt") instanceof JsonString s) {
            int[] ids = GenerateRequestParser.encode(tok, s.getString(), special, context, "prompt");
            out = JSON.createObjectBuilder().add("tokens", ids(ids)).add("count", ids.length).build();
        } else {
            JsonArrayBuilder tokens = JSON.createArrayBuilder(), counts = JSON.createArrayBuilder();
            List<String> texts = Fields.stringOrList(o.get("prompt"), "prompt");
            for (int i = 0; i < texts.size(); i++) {
                int[] ids = GenerateRequestParser.encode(tok, texts.get(i), special, context, "prompt[" + i + "]");
                tokens.add(ids(ids));
                counts.add(ids.length);
            }
            out = JSON.createObjectBuilder().add("tokens", tokens).add("count", counts).build();
        }
        return JSON.createObjectBuilder(out).add("max_model_len", context).build();
    }

    @POST
    @Path("v1/tokenize")
    public JsonObject tokenizeV1(InputStream body) {
        return tokenize(body);
    }

    /** {"tokens": [ids] | [[ids], ...], "skip_special_tokens": false} → {"text": "..." | ["...", ...]}. */
    @POST
    @Path("detokenize")
    public JsonObject detokenize(InputStream body) {
        HfTokenizer tok = tokenizer();
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!(o.get("tokens") instanceof JsonArray tokens)) throw ApiException.badRequest("tokens is required: a list of token ids or a list of such lists");
        boolean skip = Fields.present(o, "skip_special_tokens") && Fields.bool(o.get("skip_special_tokens"), "skip_special_tokens");
        int vocab = loop().info().vocabSize();
        if (!tokens.isEmpty() && tokens.get(0).getValueType() == JsonValue.ValueType.ARRAY) {
            JsonArrayBuilder texts = JSON.createArrayBuilder();
            for (int i = 0; i < tokens.size(); i++) texts.add(tok.decode(checked(tokens.get(i), "tokens[" + i + "]", vocab), skip));
            return JSON.createObjectBuilder().add("text", texts).build();
        }
        return JSON.createObjectBuilder().add("text", tok.decode(checked(tokens, "tokens", vocab), skip)).build();
    }

    @POST
    @Path("v1/detokenize")
    public JsonObject detokenizeV1(InputStream body) {
        return detokenize(body);
    }

    private static int[] checked(JsonValue v, String name, int vocab) {
        int[] ids = Fields.intArray(v, name);
        for (int j = 0; j < ids.length; j++)
            if (ids[j] < 0 || ids[j] >= vocab)
                throw ApiException.badRequest(name + "[" + j + "] = " + ids[j] + " is outside the vocabulary [0, " + vocab + ")");
        return ids;
    }

    private HfTokenizer tokenizer() {
        loop();
        HfTokenizer tok = service.tokenizer();
        if (tok == null) throw ApiException.badRequest("this model has no tokenizer.json: the server takes and returns token ids only");
        return tok;
    }

    /** The engine, once started: tokenizing needs no weights, so released memory does not matter. */
    private EngineLoop loop() {
        return Requests.readyLoop(service);
    }

    private static JsonArrayBuilder ids(int[] ids) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (int id : ids) a.add(id);
        return a;
    }
}
