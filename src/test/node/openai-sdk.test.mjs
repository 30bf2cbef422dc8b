// The official OpenAI Node SDK against the server, unchanged (run by OpenAiSdkIT with node --test).
// ROLLOUT_URL: the server. The SDK is installed by the IT into target/openai-sdk.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ROLLOUT_URL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60_000 });
const model = (await client.models.list()).data[0].id;

test("a completion with logprobs and usage", async () => {
  assert.equal((await client.models.retrieve(model)).id, model);
  const r = await client.completions.create({ model, prompt: "Hello, world", max_tokens: 8, temperature: 0, logprobs: 2 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(typeof c.text, "string");
  assert.equal(c.finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.prompt_tokens, 3);
  assert.equal(r.usage.total_tokens, 11);
  assert.equal(c.logprobs.tokens.length, 8);
  assert.ok(c.logprobs.token_logprobs.every((lp) => lp <= 0));
  assert.ok(c.logprobs.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
});

test("several prompts and samples: one choice each, prompt-major", async () => {
  const r = await client.completions.create({ model, prompt: ["Hello", "Hello, world"], max_tokens: 4, n: 2, temperature: 1, seed: 3 });
  const ids = await client.completions.create({ model, prompt: [9707, 11, 1879], max_tokens: 2, temperature: 0 });
  assert.equal(ids.usage.prompt_tokens, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
  assert.equal(r.usage.completion_tokens, 16);
  assert.equal(r.usage.prompt_tokens, 1 + 3);
});

test("a stream adds up to the blocking answer, usage last", async () => {
  const whole = await client.completions.create({ model, prompt: "The capital of France is", max_tokens: 12, temperature: 0 });
  const stream = await client.completions.create({
    model, prompt: "The capital of France is", max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "", finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 12);
});

test("refusals are the SDK's typed errors, with the server's message", async () => {
  // SGLang's answer to a model it does not serve: a 400 naming it and the served name
  await assert.rejects(client.completions.create({ model: "no-such-model", prompt: "x" }),
    (e) => e instanceof OpenAI.BadRequestError && e.type === "invalid_request_error" && /The model `no-such-model` does not exist/.test(e.message));
  await assert.rejects(client.models.retrieve("no-such-model"), (e) => e instanceof OpenAI.NotFoundError);
  await assert.rejects(client.completions.create({ model, prompt: "x", max_tokens: "many" }),
    (e) => e instanceof OpenAI.BadRequestError && e.type === "invalid_request_error" && /max_tokens/.test(e.message));
  await assert.rejects(client.completions.create({ model, prompt: "x", echo: true }),
    (e) => e instanceof OpenAI.BadRequestError && /echo/.test(e.message));
});
