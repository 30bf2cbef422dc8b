package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;

import jakarta.json.JsonObject;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The three error shapes, by route: SGLang's {@code /generate} one, SGLang's general one and OpenAI's. */
class ErrorsTest {
    static JsonObject body(String path) {
        return Errors.body(400, "bad", path);
    }

    @ParameterizedTest
    @CsvSource({"/generate, error", "generate, error", "/update_weights_from_disk, object|message|type|param|code",
            "/v1/completions, error", "/flush_cache, object|message|type|param|code"})
    void eachRouteAnswersInItsShape(String path, String keys) {
        assertEquals(Set.of(keys.split("\\|")), body(path).keySet());
    }

    @ParameterizedTest
    @CsvSource({"/generate, message", "/v1/chat/completions, message|type|param|code"})
    void theNestedErrorHoldsWhatItsClientsRead(String path, String keys) {
        assertEquals(Set.of(keys.split("\\|")), body(path).getJsonObject("error").keySet());
        assertEquals("bad", body(path).getJsonObject("error").getString("message"));
    }
}
