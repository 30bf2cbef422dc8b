"""The Python client and the veRL-shaped adapter against a running server (standard library only;
PythonClientIT runs it against the ITs' server on the CPU). Environment:
  ROLLOUT_URL, ROLLOUT_ADMIN_KEY   the server and its admin key
  CHECKPOINT                       a checkpoint of the served model's shape, other weights
  PROMPT, EXPECTED                 comma-separated ids: a prompt, and the 12 greedy tokens CHECKPOINT's weights give it
  TOOL_MODEL                       the tool-calling test model (for the agent loop against /env)
"""
import json
import os
import re
import struct
import threading
import unittest

import agent_loop
from rollout_client import RolloutClient, RolloutError, safetensors_bytes
from verl_adapter import RolloutAdapter

URL, KEY = os.environ["ROLLOUT_URL"], os.environ["ROLLOUT_ADMIN_KEY"]
PROMPT = [int(x) for x in os.environ["PROMPT"].split(",")]
EXPECTED = [int(x) for x in os.environ["EXPECTED"].split(",")]


def read_checkpoint(path):
    """{name: (dtype, shape, raw bytes)} of a safetensors file, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    ordered = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]]) for k, v in ordered}


def buckets(tensors, limit):
    cur, size = {}, 0
    for name, t in tensors.items():
        if cur and size + len(t[2]) > limit:
            yield safetensors_bytes(cur)
            cur, size = {}, 0
        cur[name] = t
        size += len(t[2])
    if cur:
        yield safetensors_bytes(cur)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = RolloutClient(URL, admin_api_key=KEY, timeout=120)
        cls.client.wait_ready(timeout=120)
        cls.tensors = read_checkpoint(os.path.join(os.environ["CHECKPOINT"], "model.safetensors"))

    def test_1_generates_with_logprobs_and_streams(self):
        one = self.client.generate(PROMPT, {"max_new_tokens": 6, "temperature": 0})
        self.assertEqual(6, len(one["output_ids"]))
        lps = one["meta_info"]["output_token_logprobs"]
        self.assertEqual(one["output_ids"], [lp[1] for lp in lps])
        self.assertTrue(all(lp[0] <= 0 for lp in lps))
        batch = self.client.generate([PROMPT, PROMPT[:3]], {"max_new_tokens": 4, "temperature": 1.0, "n": 2})
        self.assertEqual(4, len(batch), "two prompts, two samples each")
        chunks = list(self.client.stream(PROMPT, {"max_new_tokens": 6, "temperature": 0}))
        self.assertEqual(one["output_ids"], chunks[-1]["output_ids"], "the stream ends in the blocking answer")
        ids = self.client.tokenize("Hello, world")
        self.assertEqual([9707, 11, 1879], ids)
        self.assertEqual("Hello, world", self.client.detokenize(ids))

    def test_2_pushes_a_checkpoint_in_buckets_atomically(self):
        bodies = list(buckets(self.tensors, 64 << 10))
        self.assertGreater(len(bodies), 2)
        self.client.push_buckets(iter(bodies), weight_version="py-1")
        self.assertEqual("py-1", self.client.weight_version())
        out = self.client.generate(PROMPT, {"max_new_tokens": 12, "temperature": 0})
        self.assertEqual("py-1", out["meta_info"]["weight_version"])
        self.assertEqual(EXPECTED, out["output_ids"], "the pushed weights generate")

    def test_3_a_refused_push_names_the_problem_and_changes_nothing(self):
        name, (dtype, shape, raw) = next(iter(self.tensors.items()))
        with self.assertRaises(RolloutError) as e:
            self.client.push_buckets(iter([safetensors_bytes({name: (dtype, shape, raw)}),
                                           safetensors_bytes({"model.no_such.weight": (dtype, shape, raw)})]), weight_version="py-bad")
        self.assertIn("no_such", str(e.exception))
        self.assertNotEqual("py-bad", self.client.weight_version())

    def test_4_the_verl_adapter_sleeps_and_wakes_up_with_new_weights(self):
        rollout = RolloutAdapter(URL, admin_api_key=KEY)
        batch = rollout.generate_sequences([PROMPT, PROMPT[:4]], n=3, max_new_tokens=5, seed=7)
        self.assertEqual(6, len(batch["response_ids"]))
        self.assertEqual([PROMPT] * 3 + [PROMPT[:4]] * 3, batch["prompt_ids"])
        self.assertTrue(all(len(r) == 5 and len(lp) == 5 for r, lp in zip(batch["response_ids"], batch["response_logprobs"])))
        rollout.sleep()
        rollout.wake_up(safetensors_buckets=buckets(self.tensors, 1 << 20), weight_version="py-2")
        again = rollout.generate_sequences([PROMPT], n=1, temperature=0, max_new_tokens=12)
        self.assertEqual(["py-2"], again["weight_versions"])
        self.assertEqual([EXPECTED], again["response_ids"])

    def test_5_the_agent_loop_calls_the_tool_over_flaky_http_and_keeps_token_ids(self):
        self.client.update_weights_from_disk(os.environ["TOOL_MODEL"], weight_version="py-tool")
        env = agent_loop.Environment(URL + "/env", query="latency_ms=10-100&failure_rate=0.2", retries=6)
        questions = ["What is 12*34?", "What is 55+17?", "What is 90-13?", "What is 41*29?"]
        episodes = agent_loop.AgentLoop(self.client, env, temperature=0.0, concurrency=4).run(questions)
        for q, e in zip(questions, episodes):
            self.assertEqual("answered", e["finish"], e)
            self.assertEqual(1, e["tool_calls"], e)
            self.assertEqual(["py-tool", "py-tool"], e["weight_versions"])
            n = len(e["response_ids"])
            self.assertEqual(n, len(e["response_mask"]))
            self.assertEqual(n, len(e["response_logprobs"]))
            a, op, b = int(q[8:10]), q[10], int(q[11:13])
            result = {"*": a * b, "+": a + b, "-": a - b}[op]
            # the environment's tokens are the calculator's answer as the server tokenizes it
            first_env = e["response_mask"].index(0)
            last_env = n - e["response_mask"][::-1].index(0)
            self.assertEqual(self.client.tokenize(agent_loop.tool_responses([str(result)])), e["response_ids"][first_env:last_env])
            self.assertTrue(all(lp == 0.0 for lp in e["response_logprobs"][first_env:last_env]))
            self.assertTrue(all(lp <= 0.0 for lp in e["response_logprobs"][:first_env]))
            stated = [int(x) for x in re.findall(r"-?\d+", e["final_text"])]
            self.assertEqual(1.0 if stated and stated[-1] == result else 0.0, e["reward"], e["final_text"])

    def test_6_drains_as_sglang_does_without_pausing(self):
        idle = self.client.drain(timeout=5.0)
        self.assertEqual((True, 0, "wait", False), (idle["success"], idle["remaining_requests"], idle["mode"], idle["paused"]))
        out = {}
        long_one = threading.Thread(target=lambda: out.update(self.client.generate(
            PROMPT, {"max_new_tokens": 3000, "ignore_eos": True}, rid="py-drain-long")))
        long_one.start()
        try:
            for _ in range(500):  # until the engine runs it (every wait has a deadline)
                if self.client._call("GET", "/rl/state")["in_flight"] > 0:
                    break
                threading.Event().wait(0.01)
            busy = self.client.drain(timeout=0.1)
            self.assertFalse(busy["success"])
            self.assertGreaterEqual(busy["remaining_requests"], 1)
            self.assertEqual("serving", self.client._call("GET", "/rl/state")["state"], "a drain leaves the server as it was")
        finally:
            self.client._call("POST", "/abort_request", {"rid": "py-drain-long"})
            long_one.join(120)
        self.assertEqual("abort", out["meta_info"]["finish_reason"]["type"])
        self.assertTrue(self.client.drain(timeout=5.0)["success"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
