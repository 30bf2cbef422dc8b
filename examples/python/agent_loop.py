"""Multi-turn episodes against the rollout server and the example environment (/env), in Python:
the same loop as the Java client's dev.rollout.client.agent.AgentLoop, for trainers written in
Python. Generate, parse the Hermes-style <tool_call> in the Qwen chat format, call the tool over
HTTP, append its answer as a user turn, generate again, until the model answers without a call.

The model's own tokens are kept as the server returned them (ids and logprobs); only the text the
loop adds (the first prompt, the tool answers) is tokenized, by the server's tokenizer. An episode
comes back in the shape a trainer needs: prompt ids, response ids, a mask (1 on model tokens, 0 on
the environment's), the logprobs of the model's tokens, the reward, and the weight version of
every turn. Standard library only.
"""
import json
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def tool_responses(observations):
    """What follows an assistant turn that ended in tool calls (its <|im_end|> is the model's own)."""
    return "\n<|im_start|>user" + "".join("\n<tool_response>\n%s\n</tool_response>" % o for o in observations) \
        + "<|im_end|>\n<|im_start|>assistant\n"


def tool_calls(text):
    """[(name, arguments) or (None, why)] for each <tool_call> in an assistant turn."""
    calls = []
    for body in _CALL.findall(text):
        try:
            o = json.loads(body.strip())
        except ValueError:
            calls.append((None, "the tool call is not valid JSON"))
            continue
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            calls.append((None, "a tool call needs a \"name\""))
        elif not isinstance(o.get("arguments", {}), dict):
            calls.append((None, "a tool call's \"arguments\" must be an object"))
        else:
            calls.append((o["name"], o.get("arguments", {})))
    opened = text.rfind("<tool_call>")
    if opened >= 0 and text.find("</tool_call>", opened) < 0:
        calls.append((None, "a <tool_call> without </tool_call>"))
    return calls


class Environment:
    """The example environment's HTTP API: tools, tool calls (retried on 503 and lost connections), reward."""

    def __init__(self, url, query="", timeout=30.0, retries=3):
        self.url, self.query, self.timeout, self.retries = url.rstrip("/"), query, timeout, retries
        self.tools = self._call("GET", "")["tools"]
        self.names = {t["function"]["name"] for t in self.tools}

    def _call(self, method, path, body=None, retry=False):
        for attempt in range(self.retries + 1 if retry else 1):
            req = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                if e.code < 500 or attempt == (self.retries if retry else 0):
                    raise
            except OSError:
                if attempt == (self.retries if retry else 0):
                    raise
            time.sleep(0.05 * 2 ** attempt)

    def call(self, name, arguments):
        if name is None:
            return "error: " + arguments
        if name not in self.names:
            return "error: there is no tool named " + name
        try:
            return self._call("POST", "/tools/" + name + ("?" + self.query if self.query else ""), arguments, retry=True)["content"]
        except OSError as e:
            return "error: the tool did not answer (%s)" % e

    def reward(self, question, final_text):
        return self._call("POST", "/reward", {"question": question, "response": final_text}, retry=True)["reward"]


class AgentLoop:
    def __init__(self, client, env, max_turns=4, max_new_tokens=48, temperature=1.0, max_context=2048, concurrency=256):
        self.client, self.env = client, env
        self.max_turns, self.max_new_tokens, self.temperature = max_turns, max_new_tokens, temperature
        self.max_context, self.concurrency = max_context, concurrency

    def episode(self, question):
        # the first prompt is the served model's chat template's, as /v1/chat/completions renders it
        prompt_ids = self.client.tokenize_chat([{"role": "user", "content": question}], self.env.tools)
        ids, mask, logprobs, versions = [], [], [], []
        finish, text, calls = "turn_limit", "", 0
        for turn in range(self.max_turns):
            room = min(self.max_new_tokens, self.max_context - len(prompt_ids) - len(ids))
            if room < 1:
                finish = "length"
                break
            out = self.client.generate(prompt_ids + ids, {"max_new_tokens": room, "temperature": self.temperature})
            meta = out["meta_info"]
            ids += out["output_ids"]
            mask += [1] * len(out["output_ids"])
            logprobs += [lp[0] for lp in meta["output_token_logprobs"]]
            versions.append(meta["weight_version"])
            text = out.get("text", "")
            pending = tool_calls(text)
            if meta["finish_reason"]["type"] != "stop":
                finish = "length"
                break
            if not pending:
                finish = "answered"
                break
            if turn + 1 == self.max_turns:
                break
            calls += len(pending)
            observed = self.client.tokenize(tool_responses([self.env.call(n, a) for n, a in pending]))
            ids += observed
            mask += [0] * len(observed)
            logprobs += [0.0] * len(observed)
        reward = self.env.reward(question, text) if finish == "answered" else 0.0
        return {"question": question, "prompt_ids": prompt_ids, "response_ids": ids, "response_mask": mask,
                "response_logprobs": logprobs, "reward": reward, "weight_versions": versions, "tool_calls": calls,
                "finish": finish, "final_text": text}

    def run(self, questions):
        """The episodes of `questions`, in order, `concurrency` at a time, each moving on as soon as its own calls return."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self.episode, questions))
