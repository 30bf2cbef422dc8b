// The official OpenAI Node SDK's chat completions against the server, unchanged (run by
// OpenAiSdkIT with node --test, while the server holds the tool-calling test model: it answers
// "What is A*B?" by calling the calculator, then "The answer is N." once it has the result).
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ROLLOUT_URL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60_000 });
const model = (await client.models.list()).data[0].id;
const tools = [{
  type: "function",
  function: {
    name: "calculator",
    description: "Evaluate an integer arithmetic expression with + - * / and parentheses.",
    parameters: { type: "object", properties: { expression: { type: "string", description: "digits, + - * / and parentheses" } },
      required: ["expression"] },
  },
}];
const question = { role: "user", content: "What is 37*91?" };

test("a tool call, then the answer from the tool's result", async () => {
  const first = await client.chat.completions.create({ model, messages: [question], tools, temperature: 0, max_tokens: 48 });
  assert.equal(first.object, "chat.completion");
  const c = first.choices[0];
  assert.equal(c.finish_reason, "tool_calls");
  assert.equal(c.message.role, "assistant");
  assert.equal(c.message.content, null);
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, "calculator");
  assert.deepEqual(JSON.parse(call.function.arguments), { expression: "37*91" });
  assert.ok(first.usage.prompt_tokens > 100 && first.usage.completion_tokens > 0);

  // the SDK's own assistant message goes back as it came, then the tool's answer
  const second = await client.chat.completions.create({
    model, tools, temperature: 0, max_tokens: 48,
    messages: [question, c.message, { role: "tool", tool_call_id: call.id, content: "3367" }],
  });
  assert.equal(second.choices[0].finish_reason, "stop");
  assert.equal(second.choices[0].message.content, "The answer is 3367.");
  assert.equal(second.choices[0].message.tool_calls, undefined);
});

test("a streamed tool call assembles, in the SDK's stream helper, into the blocking answer", async () => {
  const whole = await client.chat.completions.create({ model, messages: [question], tools, temperature: 0, max_tokens: 48 });
  const stream = client.chat.completions.stream({ model, messages: [question], tools, temperature: 0, max_tokens: 48,
    stream_options: { include_usage: true } });
  const streamed = await stream.finalChatCompletion();
  const a = whole.choices[0].message.tool_calls[0], b = streamed.choices[0].message.tool_calls[0];
  assert.equal(streamed.choices[0].finish_reason, "tool_calls");
  assert.equal(b.function.name, a.function.name);
  assert.equal(b.function.arguments, a.function.arguments);
  assert.equal(streamed.usage.completion_tokens, whole.usage.completion_tokens);

  // a plain-text answer streamed chunk by chunk adds up to the blocking one
  const messages = [question, whole.choices[0].message, { role: "tool", tool_call_id: a.id, content: "3367" }];
  const chunks = await client.chat.completions.create({ model, messages, tools, temperature: 0, max_tokens: 48, stream: true });
  let text = "", roles = 0, finish = null;
  for await (const chunk of chunks) {
    assert.equal(chunk.object, "chat.completion.chunk");
    for (const ch of chunk.choices) {
      if (ch.delta.role) roles++;
      text += ch.delta.content ?? "";
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(roles, 1);
  assert.equal(text, "The answer is 3367.");
  assert.equal(finish, "stop");
});

test("tool_choice required and a named function make a call", async () => {
  for (const tool_choice of ["required", { type: "function", function: { name: "calculator" } }]) {
    const r = await client.chat.completions.create({ model, messages: [question], tools, tool_choice, temperature: 0, max_tokens: 48 });
    assert.equal(r.choices[0].message.tool_calls[0].function.name, "calculator", JSON.stringify(tool_choice));
    assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), { expression: "37*91" });
  }
});

test("logprobs in the chat shape, and n choices", async () => {
  const r = await client.chat.completions.create({ model, messages: [question], tools, temperature: 0, max_tokens: 48,
    logprobs: true, top_logprobs: 2 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
  }
  assert.equal(lp.map((t) => t.token).join("").startsWith("<tool_call>"), true);
  const n = await client.chat.completions.create({ model, messages: [question], tools, n: 3, temperature: 1, seed: 5, max_tokens: 48 });
  assert.deepEqual(n.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(n.usage.prompt_tokens, r.usage.prompt_tokens);
});

test("bad chat requests are the SDK's typed errors, naming the field", async () => {
  const bad = async (body, pattern) => assert.rejects(client.chat.completions.create({ model, max_tokens: 4, ...body }),
    (e) => e instanceof OpenAI.BadRequestError && pattern.test(e.message), JSON.stringify(body));
  await bad({ messages: [] }, /messages/);
  await bad({ messages: [{ role: "robot", content: "hi" }] }, /messages\[0\]\.role/);
  await bad({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://x/y.png" } }] }] }, /image_url/);
  await bad({ messages: [question], tools, tool_choice: { type: "function", function: { name: "search" } } }, /search/);
  await bad({ messages: [question], tool_choice: "required" }, /needs tools/);
  await bad({ messages: [question], response_format: { type: "yaml" } }, /response_format\.type/);  // json_object is honoured since issue #22
  await bad({ messages: [question], top_logprobs: 3 }, /logprobs/);
  await assert.rejects(client.chat.completions.create({ model: "gpt-4o", messages: [question] }),
    (e) => e instanceof OpenAI.BadRequestError && /The served model name is/.test(e.message));
});
