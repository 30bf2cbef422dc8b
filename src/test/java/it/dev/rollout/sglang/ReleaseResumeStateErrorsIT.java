package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.RestoresServedWeights;
import jakarta.json.JsonString;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * SGLang's {@code test/registered/rl/test_release_resume_state_errors.py} at commit
 * a283f1c30d70d024c015f848bc0eb8652210a75a, over HTTP: resuming what was never released and
 * releasing twice are errors (SGLang's Engine raises a RuntimeError; its HTTP server answers 400
 * with the message), per tag, and they change nothing.
 */
@ExtendWith(RestoresServedWeights.class)
class ReleaseResumeStateErrorsIT {
    static String path, version;

    @BeforeAll
    static void served() {
        path = RlHttp.modelPath();
        version = RlHttp.get("/get_weight_version").ok().object().getString("weight_version");
    }

    @AfterEach
    void leaveServing() {
        RlHttp.leaveServing(path, version);
    }

    static List<String> released() {
        return RlHttp.get("/rl/state").ok().object().getJsonArray("released").getValuesAs(JsonString.class).stream()
                .map(JsonString::getString).toList();
    }

    @Test
    void resumeWithoutPriorReleaseErrors() {
        RlHttp.Reply r = RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("not currently released"), r.body());
        assertEquals(List.of(), released());
    }

    @Test
    void resumeOtherTagWhileOnlyOneReleasedErrors() {
        RlHttp.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}").ok();
        try {
            RlHttp.Reply r = RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"weights\"]}");
            assertEquals(400, r.status(), r.body());
            assertTrue(r.body().contains("not currently released"), r.body());
            assertEquals(List.of("kv_cache"), released(), "the refusal changed nothing");
        } finally {
            RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}").ok();
        }
    }

    @Test
    void doubleReleaseErrors() {
        RlHttp.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}").ok();
        try {
            RlHttp.Reply r = RlHttp.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\"]}");
            assertEquals(400, r.status(), r.body());
            assertTrue(r.body().contains("already released"), r.body());
            assertEquals(List.of("kv_cache"), released());
        } finally {
            RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\"]}").ok();
        }
    }

    /**
     * SGLang generates right after the resume. Without a host copy of the weights (off on this
     * server, as in SGLang by default) the resumed weights are blank here, and the server holds
     * generation until they are pushed rather than serve from them (docs/api.md): so the served
     * checkpoint is pushed back first. SGLang checks that a real model's text is not empty; the
     * default model's random weights may well pick tokens that decode to nothing (byte pieces of a
     * character), so the check is on the tokens, with ignore_eos so that all four come.
     */
    @Test
    void releaseThenResumeCycleStillServes() {
        RlHttp.post("/release_memory_occupation", "{\"tags\": [\"kv_cache\", \"weights\"]}").ok();
        boolean mustPush = RlHttp.post("/resume_memory_occupation", "{\"tags\": [\"kv_cache\", \"weights\"]}").ok().object()
                .getBoolean("weights_must_be_pushed");
        assertTrue(mustPush, "no host copy on this server: the weights must come back by a push");
        assertFalse(RlHttp.get("/rl/state").ok().object().getBoolean("ready"));
        RlHttp.post("/update_weights_from_disk", "{\"model_path\": \"" + path + "\"}").ok();
        jakarta.json.JsonObject out = RlHttp.generate("Hello", 4, true);
        assertEquals(4, RlHttp.ints(out.get("output_ids")).length);
        assertEquals("length", RlHttp.finishType(out));
        out.getString("text");  // a string, as SGLang's test asserts
    }
}
