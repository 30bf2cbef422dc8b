"""The torch transports of rollout_client on the GPU machine (run by `bench/gpu-session.sh pyclient`
through tools/dist/gpu-run.sh, which starts the server with pickles allowed): the served model's
weights are perturbed in this process and pushed three ways, each checked by the served version
and by the fixed prompt's logprob moving.
"""
import os
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from rollout_client import RolloutClient

PROMPT = [9707, 11, 1879]


def main():
    client = RolloutClient(os.environ.get("ROLLOUT_URL", "http://localhost:9080"))
    client.wait_ready(300)
    path = client.model_info()["model_path"]
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=torch.bfloat16)
    named = [(n, p.detach()) for n, p in model.named_parameters()]
    failed = 0
    before = None
    for transport in ("safetensors", "cuda_ipc", "pickle"):
        with torch.no_grad():
            named[0][1].mul_(1.01)  # new weights each time: the logprob must move
        version = "py-" + transport
        client.push_tensors(named, weight_version=version, bucket_bytes=64 << 20, transport=transport)
        out = client.generate(PROMPT, {"max_new_tokens": 1, "temperature": 0})
        lp = out["meta_info"]["output_token_logprobs"][0][0]
        ok = out["meta_info"]["weight_version"] == version and (before is None or abs(lp - before) > 1e-6)
        print("push_tensors %-11s version %s, logprob %.5f: %s" % (transport, out["meta_info"]["weight_version"], lp,
                                                                  "ok" if ok else "FAILED"), flush=True)
        failed += not ok
        before = lp
    print("PYTHON CLIENT ON GPU", "PASSED" if failed == 0 else "FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
