"""A small Python client for Rollout Server, standard library only (torch is imported only by the
methods that push torch tensors). It speaks the server's SGLang-compatible API: generation with
token ids and logprobs, and weight pushes through the safe transports by default (safetensors
bytes; CUDA-IPC descriptors for a trainer on the same GPU node), SGLang's pickles only if asked.

    client = RolloutClient("http://localhost:9080", admin_api_key=key)
    client.wait_ready(timeout=300)
    out = client.generate([[9707, 11, 1879]], {"max_new_tokens": 64, "temperature": 1.0})
    client.push_tensors(model.named_parameters(), weight_version="step-3")     # torch tensors

Every call has a timeout; a failed call raises RolloutError naming the server, the call and the
server's message. Calls that change the weights are retried only where the server makes them
idempotent (buckets of a session carry their sequence number).
"""
import base64
import json
import struct
import time
import urllib.error
import urllib.request
import uuid

__all__ = ["RolloutClient", "RolloutError", "WeightBroadcaster", "safetensors_bytes"]


class RolloutError(RuntimeError):
    """A call the server refused or did not answer."""


def safetensors_bytes(tensors):
    """The safetensors encoding of {name: (dtype, shape, raw little-endian bytes)} in order, dtype
    as safetensors names it ("BF16", "F32", ...): what `safetensors.torch.save` writes."""
    header, offset = {}, 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(h)) + h + b"".join(raw for _, _, raw in tensors.values())


class RolloutClient:
    def __init__(self, url, api_key=None, admin_api_key=None, timeout=600.0, retries=2):
        self.url = url.rstrip("/")
        self.api_key, self.admin_api_key = api_key, admin_api_key
        self.timeout, self.retries = timeout, retries

    # ---- plumbing ---------------------------------------------------------------------------
    def _call(self, method, path, body=None, raw=None, admin=False, query="", timeout=None, retry=False):
        data, ctype = (raw, "application/octet-stream") if raw is not None else \
            ((json.dumps(body).encode(), "application/json") if body is not None else (None, None))
        key = self.admin_api_key if admin and self.admin_api_key else self.api_key
        for attempt in range(self.retries + 1 if retry else 1):
            req = urllib.request.Request(self.url + path + query, data=data, method=method)
            if ctype:
                req.add_header("Content-Type", ctype)
            if key:
                req.add_header("Authorization", "Bearer " + key)
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                    text = r.read().decode()
                    return json.loads(text) if text.strip().startswith(("{", "[")) else text
            except urllib.error.HTTPError as e:  # the server answered: its message, never retried
                raise RolloutError("%s %s%s: HTTP %d: %s" % (method, self.url, path, e.code, e.read().decode(errors="replace")[:500]))
            except OSError as e:  # no answer: retried where that is safe
                if attempt == (self.retries if retry else 0):
                    raise RolloutError("%s %s%s: no answer: %s" % (method, self.url, path, e))
                time.sleep(2.0 * 2 ** attempt)

    def _update(self, answer, what):
        if isinstance(answer, dict) and answer.get("success") is False:
            raise RolloutError("%s %s: %s" % (what, self.url, answer.get("message")))
        return answer

    # ---- readiness and generation -------------------------------------------------------------
    def wait_ready(self, timeout=300.0):
        """Polls /health/ready (Kubernetes' readiness: the model is loaded and warmed up) until it answers 200."""
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise RolloutError("%s: not ready after %.0f s" % (self.url, timeout))
            time.sleep(1.0)

    def generate(self, input_ids, sampling_params, return_logprob=True, rid=None):
        """SGLang's /generate with token ids: one list of ids, or a batch (a list of lists). Returns
        the server's answer: for a batch, one {"output_ids", "meta_info": {"output_token_logprobs",
        "weight_version", ...}} per prompt and per sample of n."""
        body = {"input_ids": input_ids, "sampling_params": sampling_params, "return_logprob": return_logprob}
        if rid is not None:
            body["rid"] = rid
        return self._call("POST", "/generate", body)

    def stream(self, input_ids, sampling_params, return_logprob=False):
        """Yields the server-sent chunks of one streamed generation (each the output so far)."""
        body = {"input_ids": input_ids, "sampling_params": sampling_params, "return_logprob": return_logprob, "stream": True}
        req = urllib.request.Request(self.url + "/generate", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        if self.api_key:
            req.add_header("Authorization", "Bearer " + self.api_key)
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            for line in r:
                line = line.decode().strip()
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    yield json.loads(line[5:])

    def tokenize(self, text, add_special_tokens=True):
        """`text` as the served model's tokenizer encodes it (SGLang's /tokenize)."""
        return self._call("POST", "/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens})["tokens"]

    def tokenize_chat(self, messages, tools=None, add_generation_prompt=True, **chat_template_kwargs):
        """A conversation rendered by the served model's chat template and tokenized (/tokenize with messages)."""
        body = {"messages": messages, "add_generation_prompt": add_generation_prompt}
        if tools:
            body["tools"] = tools
        if chat_template_kwargs:
            body["chat_template_kwargs"] = chat_template_kwargs
        return self._call("POST", "/tokenize", body)["tokens"]

    def detokenize(self, ids, skip_special_tokens=False):
        return self._call("POST", "/detokenize", {"tokens": ids, "skip_special_tokens": skip_special_tokens})["text"]

    # ---- weights -----------------------------------------------------------------------------
    def model_info(self):
        """SGLang's /get_model_info: model_path, the served weight_version, ..."""
        return self._call("GET", "/get_model_info")

    def server_info(self):
        """SGLang's /server_info: tp_size, the KV cache's size, the limits the server runs with."""
        return self._call("GET", "/server_info")

    def weight_version(self):
        return self._call("GET", "/get_weight_version")["weight_version"]

    def push_safetensors(self, body, weight_version=None):
        """One safetensors file's tensors, as one update (the raw body: no base64, no pickle)."""
        q = "?weight_version=" + urllib.request.quote(weight_version) if weight_version else ""
        return self._update(self._call("POST", "/update_weights_from_tensor", raw=body, admin=True, query=q), "push")

    def push_buckets(self, buckets, weight_version=None):
        """Safetensors bodies as one atomic update: nothing serves until the last has arrived, then
        all of it does; a failure rolls the update back. `buckets` may be a generator, so that each
        is made only when it is sent."""
        uid = "py-" + uuid.uuid4().hex
        self._update(self._call("POST", "/begin_weight_update", {"update_id": uid}, admin=True), "begin_weight_update")
        try:
            for seq, body in enumerate(buckets):
                self._update(self._call("POST", "/update_weights_from_tensor", raw=body, admin=True, retry=True,
                                        query="?update_id=%s&bucket_seq=%d" % (uid, seq)), "bucket %d" % seq)
            end = {"update_id": uid}
            if weight_version:
                end["weight_version"] = weight_version
            return self._update(self._call("POST", "/end_weight_update", end, admin=True), "end_weight_update")
        except BaseException:
            try:
                self._call("POST", "/abort_weight_update", {"update_id": uid}, admin=True)
            except RolloutError:
                pass
            raise

    def push_tensors(self, named_tensors, weight_version=None, bucket_bytes=512 << 20, transport="safetensors"):
        """Pushes (name, torch.Tensor) pairs with their Hugging Face names.
        transport "safetensors": host copies in buckets of `bucket_bytes`, one atomic update;
        "cuda_ipc": our JSON descriptors of the GPU tensors themselves (same node: the server copies
        them from this process's memory; keep the tensors alive until this returns);
        "pickle": SGLang's ForkingPickler payload (needs a server started with rollout.allow-pickle)."""
        named = [(n, t.detach()) for n, t in named_tensors]
        if transport == "cuda_ipc":
            body = {"load_format": "cuda_ipc", "cuda_ipc_tensors": [_ipc_descriptor(n, t) for n, t in named]}
        elif transport == "pickle":
            import io
            from multiprocessing.reduction import ForkingPickler
            import torch.multiprocessing  # noqa: F401  (its import registers torch's CUDA IPC reductions with ForkingPickler)
            buf = io.BytesIO()
            ForkingPickler(buf).dump(named)  # the default protocol, as SGLang's MultiprocessingSerializer
            body = {"serialized_named_tensors": [base64.b64encode(buf.getvalue()).decode()]}
        elif transport == "safetensors":
            from safetensors.torch import save  # the writer transformers itself saves checkpoints with
            return self.push_buckets((save(b) for b in _buckets(named, bucket_bytes)), weight_version)
        else:
            raise ValueError("transport is safetensors, cuda_ipc or pickle, not %r" % transport)
        if weight_version:
            body["weight_version"] = weight_version
        return self._update(self._call("POST", "/update_weights_from_tensor", body, admin=True), "push")

    def update_weights_from_disk(self, model_path, weight_version=None):
        body = {"model_path": model_path}
        if weight_version:
            body["weight_version"] = weight_version
        return self._update(self._call("POST", "/update_weights_from_disk", body, admin=True), "update_weights_from_disk")

    # ---- weight-update groups (SGLang's NCCL path) --------------------------------------------
    def init_weights_update_group(self, master_address, master_port, rank_offset, world_size,
                                  group_name="weight_update_group", backend="nccl", timeout_s=None):
        """Asks the server to join the trainer's group as rank `rank_offset`; answers once every rank has
        met, so call it from a thread while rank 0 forms its side (WeightBroadcaster does both)."""
        body = {"master_address": master_address, "master_port": master_port, "rank_offset": rank_offset,
                "world_size": world_size, "group_name": group_name, "backend": backend}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        return self._update(self._call("POST", "/init_weights_update_group", body, admin=True), "init_weights_update_group")

    def update_weights_from_distributed(self, names, dtypes, shapes, group_name="weight_update_group", weight_version=None):
        """Announces tensors that rank 0 broadcasts on the group, in this order; answers once they are applied."""
        body = {"names": names, "dtypes": dtypes, "shapes": shapes, "group_name": group_name}
        if weight_version:
            body["weight_version"] = weight_version
        return self._update(self._call("POST", "/update_weights_from_distributed", body, admin=True), "update_weights_from_distributed")

    def destroy_weights_update_group(self, group_name="weight_update_group"):
        return self._update(self._call("POST", "/destroy_weights_update_group", {"group_name": group_name}, admin=True),
                            "destroy_weights_update_group")

    # ---- the RL control plane -----------------------------------------------------------------
    def pause_generation(self, mode="abort"):
        return self._call("POST", "/pause_generation", {"mode": mode}, admin=True)

    def continue_generation(self):
        return self._call("POST", "/continue_generation", {}, admin=True)

    def drain(self, timeout=None, mode=None):
        """SGLang's /drain: waits up to `timeout` seconds (None: up to the server's cap, an hour) until no
        request runs or waits; answers {"success", "remaining_requests", ...}. It holds nothing back and
        leaves the server as it was. Ours: mode "retract" or "abort" holds new requests back, cuts what
        still runs at the deadline ("cut": their partial outputs) and leaves the server paused."""
        body = {"timeout": timeout}
        if mode:
            body["mode"] = mode
        return self._call("POST", "/drain", body, admin=True)

    def release_memory_occupation(self, tags=None):
        return self._call("POST", "/release_memory_occupation", {"tags": tags}, admin=True)

    def resume_memory_occupation(self, tags=None):
        return self._call("POST", "/resume_memory_occupation", {"tags": tags}, admin=True)

    def flush_cache(self):
        return self._call("POST", "/flush_cache", raw=b"", admin=True)


class WeightBroadcaster:
    """A trainer's rank 0 pushing weights by broadcast (slime's and AReaL's path): forms a group of
    two with the server, as SGLang's init_custom_process_group does on both sides (a TCPStore that
    this process hosts, keys under the group's name), then, per push, announces the tensors over
    HTTP and broadcasts them while the call is in flight. Needs torch.

        with WeightBroadcaster(client, "10.0.0.5", 29600, backend="nccl") as b:
            b.push(model.named_parameters(), weight_version="step-3")
    """

    def __init__(self, client, master_address, master_port, group_name="weight_update_group", backend="nccl", timeout_s=600.0):
        import datetime
        self.client, self.group_name = client, group_name
        world_size = 1 + client.server_info()["tp_size"]  # this process, then every tensor-parallel rank of the server
        answer = _in_thread(client.init_weights_update_group, master_address, master_port, 1, world_size, group_name, backend,
                            timeout_s)
        try:
            self.group = _custom_process_group(backend, "tcp://%s:%d" % (master_address, master_port), world_size, 0, group_name,
                                               datetime.timedelta(seconds=timeout_s))
        except Exception as e:
            # the server's own answer (a refusal, say) says more than the store's timeout does, when it came
            server = answer.done_with()
            raise RuntimeError("the weight update group %r did not form: %s%s" % (
                group_name, e, "" if server is None else "; the server said: %s" % server)) from e
        answer()

    def push(self, named_tensors, weight_version=None):
        import torch.distributed as dist
        named = [(n, t.detach().contiguous()) for n, t in named_tensors]
        answer = _in_thread(self.client.update_weights_from_distributed, [n for n, _ in named],
                            [str(t.dtype).replace("torch.", "") for _, t in named], [list(t.shape) for _, t in named],
                            self.group_name, weight_version)
        works = [dist.broadcast(t, src=0, group=self.group, async_op=True) for _, t in named]
        for w in works:
            w.wait()
        return answer()

    def close(self):
        import torch.distributed as dist
        try:
            self.client.destroy_weights_update_group(self.group_name)
        finally:
            dist.destroy_process_group(self.group)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _in_thread(fn, *args):
    """Runs fn(*args) on a thread; returns a function that waits for it and returns (or raises) its result."""
    import threading
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def result():
        t.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def done_with():
        """What the call ended with, if it has: its value or its error; None while it runs."""
        return None if t.is_alive() else box.get("error", box.get("value"))
    result.done_with = done_with
    return result


def _custom_process_group(backend, init_method, world_size, rank, group_name, timeout):
    """A process group outside the default one, under the keys SGLang's receiver uses (its
    init_custom_process_group: the rendezvous store prefixed by the group's name)."""
    import inspect
    import torch.distributed as dist
    from torch.distributed.distributed_c10d import _new_process_group_helper, _world, rendezvous
    store, rank, world_size = next(rendezvous(init_method, rank, world_size, timeout=timeout))
    store.set_timeout(timeout)
    store = dist.PrefixStore(group_name, store)
    options = "backend_options" if "backend_options" in inspect.signature(_new_process_group_helper).parameters else "pg_options"
    pg, _ = _new_process_group_helper(world_size, rank, [], backend, store, group_name=group_name, timeout=timeout,
                                      **{options: None})
    _world.pg_group_ranks[pg] = {i: i for i in range(world_size)}
    return pg


def _buckets(named, limit):
    """Consecutive {name: host tensor} groups of at most `limit` tensor bytes (a larger tensor alone)."""
    cur, size = {}, 0
    for name, t in named:
        n = t.numel() * t.element_size()
        if cur and size + n > limit:
            yield cur
            cur, size = {}, 0
        cur[name] = t.cpu().contiguous()
        size += n
    if cur:
        yield cur


def _ipc_descriptor(name, t):
    import torch
    (device, handle, _size, offset_bytes, _ref, _ref_off, event, event_sync) = t.untyped_storage()._share_cuda_()
    return {"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "stride": list(t.stride()),
            "storage_offset": t.storage_offset(), "ipc_handle": base64.b64encode(handle).decode(),
            "storage_offset_bytes": offset_bytes, "device_uuid": str(torch.cuda.get_device_properties(device).uuid),
            "event_handle": base64.b64encode(event).decode() if event else None, "event_sync_required": bool(event_sync)}
