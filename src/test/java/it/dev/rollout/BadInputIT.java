package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.JsonObject;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Every invalid request is a 4xx in SGLang's error shape naming the problem, and disturbs nobody. */
class BadInputIT {
    @BeforeAll
    static void ready() {
        Http.awaitReady();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        wrong type of input_ids        | {"input_ids": "hello"}                                                   | input_ids
        wrong type inside input_ids    | {"input_ids": [1, "x"]}                                                  | input_ids[1]
        wrong type of text             | {"text": 42}                                                             | text
        no input                       | {"sampling_params": {"max_new_tokens": 1}}                               | text or input_ids
        both inputs                    | {"text": "a", "input_ids": [1]}                                          | text or input_ids
        empty input_ids                | {"input_ids": []}                                                        | input_ids cannot be empty
        empty text                     | {"text": ""}                                                             | text cannot be empty
        token id over the vocabulary   | {"input_ids": [1, 999999]}                                               | outside the vocabulary
        negative token id              | {"input_ids": [-1]}                                                      | outside the vocabulary
        negative temperature           | {"input_ids": [1], "sampling_params": {"temperature": -0.5}}             | temperature
        NaN temperature                | {"input_ids": [1], "sampling_params": {"temperature": NaN}}              | temperature
        string temperature             | {"input_ids": [1], "sampling_params": {"temperature": "hot"}}            | temperature
        unknown sampling key           | {"input_ids": [1], "sampling_params": {"temprature": 0.5}}               | temprature
        top_p out of range             | {"input_ids": [1], "sampling_params": {"top_p": 1.5}}                    | top_p
        top_k zero                     | {"input_ids": [1], "sampling_params": {"top_k": 0}}                      | top_k
        stream_interval zero           | {"input_ids": [1], "sampling_params": {"stream_interval": 0}}            | stream_interval
        negative max_new_tokens        | {"input_ids": [1], "sampling_params": {"max_new_tokens": -1}}            | max_new_tokens
        fractional max_new_tokens      | {"input_ids": [1], "sampling_params": {"max_new_tokens": 1.5}}           | max_new_tokens
        min over max                   | {"input_ids": [1], "sampling_params": {"max_new_tokens": 2, "min_new_tokens": 3}} | min_new_tokens
        constrained decoding           | {"input_ids": [1], "sampling_params": {"regex": "a+"}}                   | regex
        stop token outside vocabulary  | {"input_ids": [1], "sampling_params": {"stop_token_ids": [999999]}}      | stop_token_ids
        n of zero                      | {"input_ids": [1], "sampling_params": {"n": 0}}                          | n must be
        logprob_start_len past prompt  | {"input_ids": [1, 2], "return_logprob": true, "logprob_start_len": 5}    | logprob_start_len
        top_logprobs_num negative      | {"input_ids": [1], "return_logprob": true, "top_logprobs_num": -2}       | top_logprobs_num
        sampling_params list too short | {"input_ids": [[1], [2]], "sampling_params": [{}]}                        | sampling_params
        duplicate rids                 | {"input_ids": [[1], [2]], "rid": ["a", "a"]}                              | duplicates
        images                         | {"text": "a", "image_data": "x.png"}                                     | image_data
        body is not an object          | [1, 2, 3]                                                                | JSON object
        body is not JSON               | {"input_ids": [1,                                                        | not valid JSON
        """)
    void refused(String name, String body, String mentions) {
        Http.Reply r = Http.post("/generate", body);
        assertEquals(400, r.status(), name + ": " + r.body());
        JsonObject e = r.object();
        assertEquals("error", e.getString("object"));
        assertEquals(400, e.getInt("code"));
        assertTrue(e.getString("message").contains(mentions), name + ": message should mention '" + mentions + "': " + e.getString("message"));
    }

    @Test
    void promptLongerThanTheContext() {
        StringBuilder ids = new StringBuilder("[");
        for (int i = 0; i < 5000; i++) ids.append(i == 0 ? "" : ",").append(100 + i % 1000);
        Http.Reply r = Http.post("/generate", "{\"input_ids\": " + ids + "]}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getString("message").contains("context length"), r.body());
    }

    @Test
    void bodyOverTheLimit() {
        String big = "{\"text\": \"" + "a".repeat(17 * 1024 * 1024) + "\"}";
        Http.Reply r = Http.post("/generate", big);
        assertEquals(413, r.status());
        assertTrue(r.object().getString("message").contains("rollout.max-body-bytes"));
    }

    @Test
    void unknownTopLevelFieldsAreIgnored() {
        Http.Reply r = Http.post("/generate", "{\"input_ids\": [1, 2], \"lora_path\": null, \"some_future_field\": {\"x\": 1}, "
                + "\"sampling_params\": {\"max_new_tokens\": 2, \"spaces_between_special_tokens\": true}}");
        assertEquals(200, r.status(), r.body());
    }

    @Test
    void badRequestsDoNotDisturbARunningOne() throws Exception {
        String good = "{\"input_ids\": [21, 22, 23, 24], \"sampling_params\": {\"max_new_tokens\": 64, \"temperature\": 0, \"ignore_eos\": true}}";
        JsonObject alone = Http.post("/generate", good).object();
        CompletableFuture<Http.Reply> running = CompletableFuture.supplyAsync(() -> Http.post("/generate", good));
        for (int i = 0; i < 20; i++) {
            assertEquals(400, Http.post("/generate", "{\"input_ids\": [1, 999999]}").status());
            assertEquals(400, Http.post("/generate", "{\"input_ids\": [1], \"sampling_params\": {\"temperature\": -1}}").status());
            assertEquals(400, Http.post("/generate", "{\"input_ids\": [").status());
        }
        Http.Reply r = running.get(60, TimeUnit.SECONDS);
        assertEquals(200, r.status());
        assertEquals(alone.getJsonArray("output_ids"), r.object().getJsonArray("output_ids"));
    }
}
