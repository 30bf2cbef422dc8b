"""Rollout Server in the shape of veRL's rollout worker: the calls a veRL-style trainer makes each
step (generate a batch with logprobs, sleep to free the GPU for training, wake up with new
weights), over HTTP through rollout_client. No veRL or SGLang needed.

    rollout = RolloutAdapter("http://localhost:9080", admin_api_key=key)
    batch = rollout.generate_sequences(prompt_ids, n=8, max_new_tokens=1024)   # GRPO group of 8
    rollout.sleep()                                   # training step; the server holds no GPU memory
    rollout.wake_up(named_tensors=model.named_parameters(), weight_version="step-4")
"""
from rollout_client import RolloutClient


class RolloutAdapter:
    def __init__(self, url, api_key=None, admin_api_key=None, timeout=600.0):
        self.client = RolloutClient(url, api_key=api_key, admin_api_key=admin_api_key, timeout=timeout)

    def generate_sequences(self, prompt_ids, n=1, temperature=1.0, top_p=1.0, max_new_tokens=256, seed=None):
        """Every prompt sampled n times. Returns {"prompt_ids", "response_ids", "response_logprobs",
        "weight_versions"}, one entry per sample, prompt-major (prompt 0's n samples first); the
        logprobs are the sampling distribution's, token by token, as the trainer's ratio needs."""
        params = {"n": n, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
        if seed is not None:
            params["seed"] = seed
        outs = self.client.generate(prompt_ids, params, return_logprob=True)
        if isinstance(outs, dict):
            outs = [outs]
        return {"prompt_ids": [p for p in prompt_ids for _ in range(n)],
                "response_ids": [o["output_ids"] for o in outs],
                "response_logprobs": [[lp[0] for lp in o["meta_info"]["output_token_logprobs"]] for o in outs],
                "weight_versions": [o["meta_info"]["weight_version"] for o in outs]}

    def sleep(self):
        """Frees the server's GPU memory (KV cache and weights) for the training step, as veRL's
        sleep does: release_memory_occupation(["kv_cache", "weights"])."""
        self.client.release_memory_occupation(["kv_cache", "weights"])

    def wake_up(self, named_tensors=None, safetensors_buckets=None, weight_version=None, broadcaster=None):
        """veRL's order: weights back, the new weights in (torch tensors or ready safetensors
        bodies, as one atomic update; or, with a rollout_client.WeightBroadcaster, the tensors
        broadcast on its group, as veRL's fully-async mode sends them), the prefix cache dropped,
        then the KV cache back."""
        self.client.resume_memory_occupation(["weights"])
        if broadcaster is not None:
            broadcaster.push(named_tensors, weight_version=weight_version)
        elif named_tensors is not None:
            self.client.push_tensors(named_tensors, weight_version=weight_version)
        elif safetensors_buckets is not None:
            self.client.push_buckets(safetensors_buckets, weight_version=weight_version)
        self.client.flush_cache()
        self.client.resume_memory_occupation(["kv_cache"])
