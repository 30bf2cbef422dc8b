// Structured outputs through three agent frameworks, unchanged, against the server (run by
// StructuredOutputsSdkIT with node --test; ROLLOUT_URL is the server; the packages are installed by
// the IT into target/structured-sdks). The default model's weights are random: only the constraint
// makes these answers schema-valid, and since the schema bounds every string and list, the
// constraint, not max_tokens, ends them. Every answer is checked with zod's own parse.
// Greedy decoding (temperature 0) keeps most answers the same from run to run; one test samples.
// zod counts a string's length in UTF-16 units where JSON Schema counts characters: the server
// holds a maxLength in both (an emoji counts 2), so sampled answers pass zod too (docs/api.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { zodResponseFormat, zodFunction, zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import { ChatOpenAI } from "@langchain/openai";
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, tool } from "ai";

const baseURL = process.env.ROLLOUT_URL + "/v1";
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
const model = (await client.models.list()).data[0].id;

// what agent frameworks emit: bounded strings and lists, zod's int (the safe-integer bounds),
// a bounded number, an enum, a nullable field
const City = z.object({
  name: z.string().max(12),
  population: z.number().int(),
  share: z.number().min(0).max(1),
  kind: z.enum(["capital", "town"]),
  tags: z.array(z.string().max(6)).max(3),
  motto: z.string().max(8).nullable(),
});
const Weather = z.object({ city: z.string().max(10), days: z.number().int().min(1).max(7) });
const messages = [{ role: "user", content: "Describe a city." }];

test("openai: chat.completions.parse with zodResponseFormat", async () => {
  const r = await client.chat.completions.parse({ model, messages, temperature: 0, max_tokens: 400,
    response_format: zodResponseFormat(City, "city") });
  const c = r.choices[0];
  assert.equal(c.finish_reason, "stop", JSON.stringify(c));
  City.parse(c.message.parsed);
  assert.deepEqual(c.message.parsed, JSON.parse(c.message.content));
});

test("openai: sampled answers pass zod's parse (maxLength held in UTF-16 units too)", async () => {
  const r = await client.chat.completions.create({ model, messages, temperature: 1, seed: 5, n: 8, max_tokens: 400,
    response_format: zodResponseFormat(City, "city") });
  assert.equal(r.choices.length, 8);
  for (const c of r.choices) {
    assert.equal(c.finish_reason, "stop", JSON.stringify(c));
    City.parse(JSON.parse(c.message.content));
  }
});

test("openai: tool_choice required and a named function return schema-valid calls", async () => {
  const tools = [zodFunction({ name: "get_weather", parameters: Weather }), zodFunction({ name: "get_city", parameters: City })];
  for (const [tool_choice, names] of [["required", ["get_weather", "get_city"]],
    [{ type: "function", function: { name: "get_city" } }, ["get_city"]]]) {
    const r = await client.chat.completions.create({ model, messages, tools, tool_choice, parallel_tool_calls: false,
      temperature: 0, max_tokens: 400 });
    const c = r.choices[0];
    assert.equal(c.finish_reason, "tool_calls", JSON.stringify(c));
    assert.equal(c.message.tool_calls.length, 1, JSON.stringify(c));
    const call = c.message.tool_calls[0].function;
    assert.ok(names.includes(call.name), call.name);
    (call.name === "get_city" ? City : Weather).parse(JSON.parse(call.arguments));
  }
  // the SDK's runTools-style parse of strict zod functions reads the same answer
  const parsed = await client.chat.completions.parse({ model, messages, tools: [zodFunction({ name: "get_weather", parameters: Weather })],
    tool_choice: "required", temperature: 0, max_tokens: 400 });
  for (const call of parsed.choices[0].message.tool_calls) Weather.parse(call.function.parsed_arguments);
});

test("LangChain: withStructuredOutput, jsonSchema and functionCalling", async () => {
  const chat = new ChatOpenAI({ model, apiKey: "unused", temperature: 0, maxTokens: 400, maxRetries: 0,
    configuration: { baseURL } });
  for (const method of ["jsonSchema", "functionCalling"]) {
    const city = await chat.withStructuredOutput(City, { method, name: "city" }).invoke("Describe a city.");
    City.parse(city);
  }
});

test("Vercel AI SDK: generateObject and generateText with toolChoice required", async () => {
  const provider = createOpenAI({ baseURL, apiKey: "unused" });
  const chatModel = provider.chat(model);   // chat completions; the provider's default is the Responses API
  const { object } = await generateObject({ model: chatModel, schema: City, prompt: "Describe a city.", temperature: 0,
    maxOutputTokens: 400, maxRetries: 0 });
  City.parse(object);
  const r = await generateText({ model: chatModel, prompt: "What is the weather?", temperature: 0, maxOutputTokens: 400, maxRetries: 0,
    toolChoice: "required", tools: { get_weather: tool({ description: "The forecast", inputSchema: Weather }) },
    providerOptions: { openai: { parallelToolCalls: false } } });
  assert.equal(r.finishReason, "tool-calls");
  assert.equal(r.toolCalls.length, 1);
  assert.equal(r.toolCalls[0].toolName, "get_weather");
  Weather.parse(r.toolCalls[0].input);
});

test("openai: responses.create with text.format from zodTextFormat", async () => {
  const r = await client.responses.create({ model, input: "Describe a city.", instructions: "Answer in JSON.",
    temperature: 0, max_output_tokens: 400, text: { format: zodTextFormat(City, "city") } });
  assert.equal(r.status, "completed", JSON.stringify(r));
  City.parse(JSON.parse(r.output_text));   // output_text: the SDK's join of the message's output_text parts
  assert.ok(r.usage.output_tokens > 0 && r.usage.input_tokens > 0, JSON.stringify(r.usage));
});

test("Vercel AI SDK: generateObject through the provider's default, the Responses API", async () => {
  const provider = createOpenAI({ baseURL, apiKey: "unused" });
  const { object } = await generateObject({ model: provider(model), schema: City, prompt: "Describe a city.", temperature: 0,
    maxOutputTokens: 400, maxRetries: 0 });
  City.parse(object);
});
