package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * OpenAI's Responses API ({@code POST /v1/responses}, issue #22) over HTTP: string and item
 * input, instructions, earlier function calls and their outputs, {@code text.format} giving
 * schema-valid JSON from the random default model (the schema bounds its strings, so the
 * constraint ends the answer), function tools strict by default and {@code parallel_tool_calls},
 * the stream's event order, and the stateless refusal.
 */
class ResponsesIT {
    static String model;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        model = Http.get("/v1/models").object().getJsonArray("data").getJsonObject(0).getString("id");
    }

    static JsonObject respond(String fields) {
        Http.Reply r = Http.post("/v1/responses", "{\"model\": \"" + model + "\", " + fields + "}");
        assertEquals(200, r.status(), r.body());
        return r.object();
    }

    static String text(JsonObject response) {
        StringBuilder b = new StringBuilder();
        for (JsonObject item : response.getJsonArray("output").getValuesAs(JsonObject.class))
            if (item.getString("type").equals("message"))
                for (JsonObject part : item.getJsonArray("content").getValuesAs(JsonObject.class)) b.append(part.getString("text"));
        return b.toString();
    }

    @Test
    void aStringInputIsAnsweredAsAResponse() {
        JsonObject r = respond("\"input\": \"Say hello\", \"max_output_tokens\": 8, \"store\": true, \"metadata\": {\"run\": \"it\"}");
        assertTrue(r.getString("id").startsWith("resp_"), r.toString());
        assertEquals("response", r.getString("object"));
        assertEquals(model, r.getString("model"));
        assertTrue(List.of("completed", "incomplete").contains(r.getString("status")), r.toString());
        if (r.getString("status").equals("incomplete"))
            assertEquals("max_output_tokens", r.getJsonObject("incomplete_details").getString("reason"), r.toString());
        JsonObject usage = r.getJsonObject("usage");
        assertTrue(usage.getInt("input_tokens") > 0 && usage.getInt("output_tokens") <= 8, usage.toString());
        assertEquals(usage.getInt("input_tokens") + usage.getInt("output_tokens"), usage.getInt("total_tokens"));
        assertEquals(false, r.getBoolean("store"), "nothing is stored");
        assertEquals("it", r.getJsonObject("metadata").getString("run"));
        assertTrue(r.getJsonArray("output").size() >= 1, r.toString());
    }

    @Test
    void messagesInstructionsAndEarlierFunctionCallsRenderAsAChat() {
        String tools = "\"tools\": [{\"type\": \"function\", \"name\": \"weather\", \"description\": \"The weather in a city\", "
                + "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}]";
        JsonObject r = respond("\"instructions\": \"Answer briefly.\", \"max_output_tokens\": 6, " + tools + ", \"input\": ["
                + "{\"role\": \"user\", \"content\": [{\"type\": \"input_text\", \"text\": \"Weather in Paris?\"}]},"
                + "{\"type\": \"function_call\", \"call_id\": \"call_1\", \"name\": \"weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"},"
                + "{\"type\": \"function_call_output\", \"call_id\": \"call_1\", \"output\": \"sunny, 21C\"}]");
        assertTrue(r.getJsonObject("usage").getInt("input_tokens") > 20, "the instructions, tools and items are in the prompt: " + r);
        assertEquals("weather", r.getJsonArray("tools").getJsonObject(0).getString("name"), "the request's tools are echoed");
        // the same conversation as chat completions renders to the same prompt
        JsonObject chat = Http.post("/v1/chat/completions", "{\"model\": \"" + model + "\", \"max_tokens\": 1, "
                + "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"weather\", \"description\": \"The weather in a city\", "
                + "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}], "
                + "\"messages\": [{\"role\": \"system\", \"content\": \"Answer briefly.\"}, {\"role\": \"user\", \"content\": \"Weather in Paris?\"}, "
                + "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", "
                + "\"function\": {\"name\": \"weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]}, "
                + "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"name\": \"weather\", \"content\": \"sunny, 21C\"}]}").object();
        assertEquals(chat.getJsonObject("usage").getInt("prompt_tokens"), r.getJsonObject("usage").getInt("input_tokens"), chat.toString());
    }

    @Test
    void textFormatJsonSchemaGivesSchemaValidJson() {
        String schema = "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"maxLength\": 10}, "
                + "\"population\": {\"type\": \"integer\"}, \"capital\": {\"type\": \"boolean\"}}, "
                + "\"required\": [\"city\", \"population\", \"capital\"], \"additionalProperties\": false}";
        JsonObject r = respond("\"input\": \"A city, as JSON\", \"max_output_tokens\": 120, \"temperature\": 0.7, "
                + "\"text\": {\"format\": {\"type\": \"json_schema\", \"name\": \"city\", \"strict\": true, \"schema\": " + schema + "}}");
        assertEquals("completed", r.getString("status"), "the constraint ends the answer: " + r);
        ConstrainedDecodingIT.validates(text(r));
        Http.Reply bad = Http.post("/v1/responses", "{\"input\": \"x\", \"text\": {\"format\": {\"type\": \"json_schema\", \"name\": \"n\", "
                + "\"schema\": {\"type\": \"string\", \"format\": \"email\"}}}}");
        assertEquals(400, bad.status(), bad.body());
        assertTrue(bad.body().contains("text.format.schema"), "the 400 names the Responses field: " + bad.body());
    }

    /**
     * Function tools are strict unless they say otherwise (OpenAI's default on this route), loose
     * where the compiler cannot hold their schema; the answer echoes what was settled.
     * {@code parallel_tool_calls: false} holds the enforced answer to one call, as on chat.
     */
    @Test
    void toolsAreStrictByDefaultAndParallelToolCallsFalseGivesOneCall() {
        String weather = "{\"type\": \"function\", \"name\": \"weather\", \"parameters\": {\"type\": \"object\", \"properties\": "
                + "{\"city\": {\"type\": \"string\", \"maxLength\": 10}}, \"required\": [\"city\"], \"additionalProperties\": false}}";
        String mail = "{\"type\": \"function\", \"name\": \"mail\", \"parameters\": {\"type\": \"object\", \"properties\": "
                + "{\"to\": {\"type\": \"string\", \"format\": \"email\"}}}}";
        JsonObject auto = respond("\"input\": \"Weather in Paris?\", \"max_output_tokens\": 4, \"tools\": [" + weather + ", " + mail + "]");
        assertEquals(List.of(true, false), auto.getJsonArray("tools").getValuesAs(JsonObject.class).stream().map(t -> t.getBoolean("strict")).toList(),
                "weather strict by default; mail's format is past the compiler, so loose rather than a 400: " + auto);
        for (int seed = 1; seed <= 3; seed++) {
            JsonObject r = respond("\"input\": \"Weather in Paris?\", \"max_output_tokens\": 200, \"temperature\": 1.0, \"seed\": " + seed
                    + ", \"tool_choice\": \"required\", \"parallel_tool_calls\": false, \"tools\": [" + weather + "]");
            assertEquals(false, r.getBoolean("parallel_tool_calls"));
            List<JsonObject> calls = r.getJsonArray("output").getValuesAs(JsonObject.class).stream()
                    .filter(i -> i.getString("type").equals("function_call")).toList();
            assertEquals(1, calls.size(), "one call: " + r);
            JsonObject args = Json.createReader(new java.io.StringReader(calls.get(0).getString("arguments"))).readObject();
            assertTrue(args.getString("city").length() <= 10, args.toString());
        }
    }

    @Test
    void aStreamSendsTheEventsInOrder() throws Exception {
        HttpResponse<java.util.stream.Stream<String>> resp = Http.CLIENT.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/v1/responses"))
                .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\": \"" + model + "\", \"input\": \"Count to three\", "
                        + "\"max_output_tokens\": 12, \"stream\": true}")).build(), HttpResponse.BodyHandlers.ofLines());
        assertEquals(200, resp.statusCode());
        assertEquals("text/event-stream", resp.headers().firstValue("Content-Type").orElse("").split(";")[0]);
        List<String> lines = resp.body().filter(l -> l.startsWith("event: ") || l.startsWith("data: ")).toList();
        List<JsonObject> events = new ArrayList<>();
        for (int i = 0; i < lines.size(); i += 2) {
            JsonObject data = Json.createReader(new java.io.StringReader(lines.get(i + 1).substring(6))).readObject();
            assertEquals(lines.get(i).substring(7), data.getString("type"), "the event line names the payload's type");
            assertEquals(events.size(), data.getInt("sequence_number"));
            events.add(data);
        }
        List<String> types = events.stream().map(e -> e.getString("type")).toList();
        assertEquals(List.of("response.created", "response.in_progress"), types.subList(0, 2), types.toString());
        String last = types.get(types.size() - 1);
        assertTrue(List.of("response.completed", "response.incomplete").contains(last), types.toString());
        JsonObject done = events.get(events.size() - 1).getJsonObject("response");
        StringBuilder deltas = new StringBuilder();
        for (JsonObject e : events) if (e.getString("type").equals("response.output_text.delta")) deltas.append(e.getString("delta"));
        assertEquals(text(done), deltas.toString(), "the deltas add up to the final text: " + types);
        // each message item: added, part added, deltas, text done, part done, item done
        int added = types.indexOf("response.output_item.added");
        assertEquals("response.content_part.added", types.get(added + 1), types.toString());
        assertTrue(types.indexOf("response.output_text.done") < types.indexOf("response.content_part.done"), types.toString());
        assertTrue(types.indexOf("response.content_part.done") < types.lastIndexOf("response.output_item.done"), types.toString());
        assertTrue(done.getJsonObject("usage").getInt("output_tokens") > 0, done.toString());
    }

    @Test
    void aPreviousResponseIdIsA400SayingTheServerIsStateless() {
        Http.Reply r = Http.post("/v1/responses", "{\"model\": \"" + model + "\", \"input\": \"more\", \"previous_response_id\": \"resp_abc\"}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("stateless: this server does not store responses; send the whole conversation in `input`"), r.body());
        Http.Reply hosted = Http.post("/v1/responses", "{\"input\": \"x\", \"tools\": [{\"type\": \"web_search\"}]}");
        assertEquals(400, hosted.status(), hosted.body());
        assertTrue(hosted.body().contains("tools[0].type"), hosted.body());
        JsonArray data = Http.get("/v1/models").object().getJsonArray("data");
        assertTrue(!data.isEmpty(), "the server still answers after the refusals");
    }
}
