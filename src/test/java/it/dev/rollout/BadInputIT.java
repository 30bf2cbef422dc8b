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

/**
 * Every invalid request is a 4xx in SGLang's error shape naming the problem, and disturbs nobody.
 * {@code /generate} answers with SGLang's {@code {"error": {"message"}}}, the control routes with
 * {@code {"object": "error", "message", ...}}, {@code /v1/} with OpenAI's {@code {"error": {...}}}.
 */
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
        no input                       | {"sampling_params": {"max_new_tokens": 1}}                               | text, input_ids or input_embeds
        both inputs                    | {"text": "a", "input_ids": [1]}                                          | text, input_ids or input_embeds
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
        bad constraint regex           | {"input_ids": [1], "sampling_params": {"regex": "a(b"}}                  | regex
        stop token outside vocabulary  | {"input_ids": [1], "sampling_params": {"stop_token_ids": [999999]}}      | stop_token_ids
        n of zero                      | {"input_ids": [1], "sampling_params": {"n": 0}}                          | n must be
        logprob_start_len past prompt  | {"input_ids": [1, 2], "return_logprob": true, "logprob_start_len": 5}    | logprob_start_len
        top_logprobs_num negative      | {"input_ids": [1], "return_logprob": true, "top_logprobs_num": -2}       | top_logprobs_num
        sampling_params list too short | {"input_ids": [[1], [2]], "sampling_params": [{}]}                        | sampling_params
        duplicate rids                 | {"input_ids": [[1], [2]], "rid": ["a", "a"]}                              | Duplicate request IDs detected within the request: ['a']
        images                         | {"text": "a", "image_data": "x.png"}                                     | image_data
        body is not an object          | [1, 2, 3]                                                                | JSON object
        body is not JSON               | {"input_ids": [1,                                                        | not valid JSON
        """)
    void refused(String name, String body, String mentions) {
        Http.Reply r = Http.post("/generate", body);
        assertEquals(400, r.status(), name + ": " + r.body());
        String message = generateError(r);
        assertTrue(message.contains(mentions), name + ": message should mention '" + mentions + "': " + message);
    }

    /** The message of SGLang's /generate error, {"error": {"message": ...}} and nothing else. */
    static String generateError(Http.Reply r) {
        JsonObject o = r.object();
        assertEquals(java.util.Set.of("error"), o.keySet(), r.body());
        assertEquals(java.util.Set.of("message"), o.getJsonObject("error").keySet(), r.body());
        return o.getJsonObject("error").getString("message");
    }

    /** Every way a JSON body is read (JSON-P, Jackson's stream, JAX-RS entities) holds it to one nesting limit: a 400, never a 500. */
    @ParameterizedTest(name = "{0} nested {1} levels")
    @CsvSource({"/generate, 1001", "/generate, 999", "/generate, 65", "/v1/chat/completions, 5000", "/tokenize, 1001",
            "/update_weights_from_tensor, 1001", "/update_weights_from_tensor, 100000", "/pause_generation, 1001",
            "/env/tasks, 1001", "/env/tools/calculator, 100000", "/begin_weight_update, 2000"})
    void nestingPastTheLimitIsA400OnEveryJsonRoute(String route, int levels) {
        String body = "{\"count\": " + "[".repeat(levels) + "]".repeat(levels) + "}";
        Http.Reply r = Http.admin(route, body);
        assertEquals(400, r.status(), route + ": " + r.body());
        JsonObject e = r.object().containsKey("error") ? r.object().getJsonObject("error") : r.object();  // /generate's and OpenAI's shape
        assertTrue(e.getString("message").contains("more than 64 levels deep"), r.body());
    }

    /** A JSON array where the example environment takes an object was a 500 from RESTEasy ("Bad arguments"). */
    @Test
    void aBodyOfTheWrongJsonTypeIsA400ForEntityParameters() {
        Http.Reply r = Http.post("/env/tasks", "[1, 2]");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getString("message").contains("must be a JSON object, not a JSON array"), r.body());
    }

    @Test
    void secondsFieldsAreBounded() {
        Http.Reply r = Http.admin("/begin_weight_update", "{\"timeout_s\": 1e12}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getString("message").contains("timeout_s must be between"), r.body());
        r = Http.admin("/drain", "{\"timeout_s\": 1e12}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getString("message").contains("timeout_s must be between 0 and 3600 seconds"), r.body());
    }

    @Test
    void aNulByteInAPathIsA400() {
        Http.Reply r = Http.admin("/update_weights_from_disk", "{\"model_path\": \"/tmp/a\\u0000b\"}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getString("message").startsWith("model_path is not a valid path"), r.body());
    }

    /** A '%' that starts no escape: our routes refuse the URI by name, Liberty's /metrics drops the pair (server.xml). */
    @Test
    void malformedQueryStringsAreNot500s() throws Exception {
        assertEquals(400, raw("POST /generate?%%% HTTP/1.1", "{\"input_ids\": [1], \"sampling_params\": {\"max_new_tokens\": 1}}"));
        assertEquals(400, raw("POST /update_weights_from_tensor?bucket_seq=%%% HTTP/1.1", "abc"));
        assertEquals(400, raw("GET /get_weights_by_name?name=%zz HTTP/1.1", null));
        assertEquals(200, raw("GET /metrics?%%% HTTP/1.1", null));
    }

    /** Sends a request line as is (HttpClient refuses such URIs), returns the status. */
    static int raw(String requestLine, String body) throws Exception {
        java.net.URI base = java.net.URI.create(Http.BASE);
        try (java.net.Socket s = new java.net.Socket(base.getHost(), base.getPort())) {
            s.setSoTimeout(60_000);
            byte[] b = body == null ? new byte[0] : body.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            s.getOutputStream().write((requestLine + "\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer " + Http.ADMIN_KEY
                    + "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + b.length + "\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            s.getOutputStream().write(b);
            String answer = new String(s.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.ISO_8859_1);
            return Integer.parseInt(answer.substring(9, 12));
        }
    }

    /** SGLang's rule: prompt + max_new_tokens past the context is a 400 (it was accepted, and generated to the context's end). */
    @Test
    void maxNewTokensPastTheContextIsRefusedAsSglangRefusesIt() {
        Http.Reply r = Http.post("/generate", "{\"input_ids\": [1, 2, 3], \"sampling_params\": {\"max_new_tokens\": 1e9}}");
        assertEquals(400, r.status(), r.body());
        assertTrue(generateError(r).startsWith("Requested token count exceeds the model's maximum context length"), r.body());
        String model = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
        r = Http.post("/v1/completions", "{\"model\": \"" + model + "\", \"prompt\": [1, 2, 3], \"max_tokens\": 1000000000}");
        assertEquals(400, r.status(), r.body());
        r = Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                + "\"max_completion_tokens\": 1000000000}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.object().getJsonObject("error").getString("message").contains("Requested token count exceeds"), r.body());
    }

    /** A text that cannot fit is refused by its length, before it is tokenized (that took 16 s for 12 MB). */
    @Test
    void aTwelveMegabyteTextIsRefusedWithoutTokenizingIt() {
        String body = "{\"text\": \"" + "The quick brown fox jumps over the lazy dog. ".repeat(12_000_000 / 45) + "\"}";
        long t0 = System.nanoTime();
        Http.Reply r = Http.post("/generate", body);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(400, r.status(), r.body());
        assertTrue(generateError(r).startsWith("The input (at least "), r.body());
        assertTrue(ms < 5000, "took " + ms + " ms");
        assertEquals(400, Http.post("/tokenize", body.replace("\"text\"", "\"prompt\"")).status());
    }

    /** Pushes the format forbids change nothing: refused with a message, before any tensor is copied. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
        overlapping offsets | {"model.norm.weight": {"dtype": "F32", "shape": [128], "data_offsets": [0, 512]}, "model.layers.0.input_layernorm.weight": {"dtype": "F32", "shape": [128], "data_offsets": [0, 512]}} | 512 | overlap
        element overflow    | {"model.norm.weight": {"dtype": "F32", "shape": [4294967296, 4294967296, 2], "data_offsets": [0, 512]}} | 512 | 2^63
        2^62 x 4            | {"model.norm.weight": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 512]}} | 512 | 2^63
        negative dimension  | {"model.norm.weight": {"dtype": "F32", "shape": [-2, -64], "data_offsets": [0, 512]}} | 512 | negative
        duplicate name      | {"model.norm.weight": {"dtype": "F32", "shape": [128], "data_offsets": [0, 512]}, "model.norm.weight": {"dtype": "F32", "shape": [128], "data_offsets": [512, 1024]}} | 1024 | twice
        metadata not string | {"__metadata__": {"format": 1}, "model.norm.weight": {"dtype": "F32", "shape": [128], "data_offsets": [0, 512]}} | 512 | strings to strings
        """)
    void malformedSafetensorsPushesAreRefused(String name, String header, int data, String says) {
        String before = Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getString("per_gpu_checksum");
        byte[] h = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + h.length + data).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Http.Reply r = Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                + java.util.Base64.getEncoder().encodeToString(b.array()) + "\"]}");
        assertEquals(400, r.status(), name + ": " + r.body());
        assertTrue(r.body().contains(says), name + ": " + r.body());
        assertEquals(before, Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getString("per_gpu_checksum"));
    }

    @Test
    void promptLongerThanTheContext() {
        StringBuilder ids = new StringBuilder("[");
        for (int i = 0; i < 5000; i++) ids.append(i == 0 ? "" : ",").append(100 + i % 1000);
        Http.Reply r = Http.post("/generate", "{\"input_ids\": " + ids + "]}");
        assertEquals(400, r.status(), r.body());
        assertTrue(generateError(r).contains("context length"), r.body());
    }

    @Test
    void bodyOverTheLimit() {
        String big = "{\"text\": \"" + "a".repeat(17 * 1024 * 1024) + "\"}";
        Http.Reply r = Http.post("/generate", big);
        assertEquals(413, r.status());
        assertTrue(generateError(r).contains("rollout.max-body-bytes"));
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
