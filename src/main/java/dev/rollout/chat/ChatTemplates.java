package dev.rollout.chat;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A model's chat templates as transformers finds them: {@code chat_template.jinja} beside the
 * tokenizer, else {@code chat_template} in {@code tokenizer_config.json}, a string or a list of
 * named templates. With the special tokens ({@code bos_token}, {@code eos_token}, ...) that
 * templates read.
 */
public final class ChatTemplates {
    private static final String DEFAULT = "default";
    private static final String TOOL_USE = "tool_use";

    private final Map<String, ChatTemplate> named;
    private final Map<String, Object> specialTokens;

    private ChatTemplates(Map<String, ChatTemplate> named, Map<String, Object> specialTokens) {
        this.named = named;
        this.specialTokens = specialTokens;
    }

    /** The model directory's templates, or null when it has none. */
    public static ChatTemplates load(Path modelDir) throws IOException {
        Map<String, ChatTemplate> named = new LinkedHashMap<>();
        Map<String, Object> special = new LinkedHashMap<>();
        Path config = modelDir.resolve("tokenizer_config.json");
        if (Files.exists(config)) {
            JsonObject c = JsonParser.parseString(Files.readString(config, StandardCharsets.UTF_8)).getAsJsonObject();
            for (String token : new String[] {"bos_token", "eos_token", "pad_token", "unk_token"}) {
                String value = tokenText(c.get(token));
                if (value != null) special.put(token, value);
            }
            JsonElement t = c.get("chat_template");
            if (t != null && t.isJsonPrimitive()) {
                named.put(DEFAULT, new ChatTemplate(t.getAsString()));
            } else if (t != null && t.isJsonArray()) {
                for (JsonElement e : (JsonArray) t) {
                    JsonObject o = e.getAsJsonObject();
                    named.put(o.get("name").getAsString(), new ChatTemplate(o.get("template").getAsString()));
                }
            }
        }
        // newer transformers save the template as its own file, which wins over the config's
        Path jinja = modelDir.resolve("chat_template.jinja");
        if (Files.exists(jinja)) named.put(DEFAULT, new ChatTemplate(Files.readString(jinja, StandardCharsets.UTF_8)));
        return named.isEmpty() ? null : new ChatTemplates(named, special);
    }

    /** A special token as the config writes it: a string, or an AddedToken object's content. */
    private static String tokenText(JsonElement e) {
        if (e == null || e.isJsonNull()) return null;
        if (e.isJsonPrimitive()) return e.getAsString();
        JsonElement content = e.getAsJsonObject().get("content");
        return content == null ? null : content.getAsString();
    }

    /** transformers' choice: the {@code tool_use} template when tools are passed and the model has one, else the default. */
    public ChatTemplate select(boolean withTools) {
        if (withTools && named.containsKey(TOOL_USE)) return named.get(TOOL_USE);
        ChatTemplate t = named.get(DEFAULT);
        return t != null ? t : named.values().iterator().next();
    }

    /** {@code bos_token}, {@code eos_token} and the like, for the template's variables. */
    public Map<String, Object> specialTokens() {
        return specialTokens;
    }
}
