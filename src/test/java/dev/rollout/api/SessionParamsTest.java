package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.SessionLimitExceeded;
import dev.rollout.engine.SessionTurn;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** session_params as SGLang sends them, the refusals that name the field, and the engine's verdicts as HTTP statuses. */
class SessionParamsTest {
    static HfTokenizer tok;
    static GenerateRequestParser parser;

    @BeforeAll
    static void load() throws Exception {
        tok = HfTokenizer.load(Path.of(SessionParamsTest.class.getResource("/dev/rollout/tokenizer/qwen3/tokenizer.json").toURI()));
        parser = new GenerateRequestParser(new GenerateRequestParser.Limits(151936, 4096, 100_000, 4, 8), tok);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static JsonObject json(String s) {
        return Json.createReader(new StringReader(s)).readObject();
    }

    static SessionTurn turn(String body) {
        JsonObject o = json(body);
        return SessionParams.parse(o, parser.parse(o), tok);
    }

    @Test
    void sglangsSessionParamsBecomeATurn() {
        SessionTurn t = turn("{\"input_ids\": [1, 2], \"session_params\": {\"id\": \"s\", \"rid\": \"r1\", \"offset\": -1, "
                + "\"replace\": true, \"drop_previous_output\": true}}");
        assertEquals(new SessionTurn("s", "r1", -1, true, true, -1), t, "Qwen3's tokenizer adds no BOS");
        assertEquals(new SessionTurn("s", null, 0, false, false, -1),
                turn("{\"text\": \"hi\", \"session_params\": {\"id\": \"s\", \"rid\": null, \"offset\": null, \"replace\": null}}"));
        assertNull(turn("{\"input_ids\": [1], \"session_params\": {\"id\": null, \"rid\": \"x\"}}"), "no id: a plain request");
        assertNull(turn("{\"input_ids\": [1]}"));
    }

    @Test
    void logprobStartLenIsCheckedByTheEngineInASession() {
        String start = "\"return_logprob\": true, \"logprob_start_len\": 40";
        ApiException plain = assertThrows(ApiException.class, () -> parser.parse(json("{\"input_ids\": [1, 2], " + start + "}")));
        assertTrue(plain.getMessage().contains("logprob_start_len"));
        // in a session the prompt has the history before it, which only the engine knows
        assertEquals(40, parser.parse(json("{\"input_ids\": [1, 2], " + start + ", \"session_params\": {\"id\": \"s\"}}"))
                .items().get(0).logprobs().startLen());
    }

    @Test
    void badSessionParamsAreRefusedByName() {
        for (String[] c : new String[][] {
                {"\"session_params\": [1]", "session_params"},
                {"\"session_params\": {\"id\": \"s\", \"offst\": 1}", "offst"},
                {"\"session_params\": {\"id\": 5}", "session_params.id"},
                {"\"session_params\": {\"id\": \"s\", \"offset\": 1.5}", "session_params.offset"},
                {"\"session_params\": {\"id\": \"s\", \"replace\": \"yes\"}", "session_params.replace"},
                {"\"session_params\": {\"id\": \"s\"}, \"sampling_params\": {\"n\": 2}", "n = 1"}}) {
            ApiException e = assertThrows(ApiException.class, () -> turn("{\"input_ids\": [1, 2], " + c[0] + "}"), c[0]);
            assertEquals(400, e.status());
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
        ApiException batch = assertThrows(ApiException.class, () -> turn("{\"input_ids\": [[1], [2]], \"session_params\": {\"id\": \"s\"}}"));
        assertTrue(batch.getMessage().contains("one prompt"), batch.getMessage());
    }

    @Test
    void theEnginesVerdictsBecomeStatuses() {
        assertEquals(400, SessionParams.refusal(new IllegalArgumentException("x")).status());
        assertEquals(429, SessionParams.refusal(new SessionLimitExceeded("x")).status());
        assertEquals(503, SessionParams.refusal(new IllegalStateException("the engine has stopped")).status());
        boolean[] withdrawn = {false};
        ApiException e = assertThrows(ApiException.class, () -> SessionParams.awaitAdmission(
                CompletableFuture.failedFuture(new IllegalArgumentException("Invalid request: session id s does not exist")),
                () -> withdrawn[0] = true));
        assertEquals(400, e.status());
        assertEquals("Invalid request: session id s does not exist", e.getMessage());
        assertFalse(withdrawn[0], "a refused turn was never queued: nothing to withdraw");
        SessionParams.awaitAdmission(CompletableFuture.completedFuture(1), () -> withdrawn[0] = true);
    }
}
