#!/usr/bin/env python3
"""Weight-push payloads exactly as SGLang and veRL trainers make them, with real torch on a GPU:
ForkingPickler blobs whose CUDA tensors travel as IPC handles, in the shapes SGLang receives.

Run on the GPU machine:
    python3 tools/reference/make_pickles.py OUT.json            # write the payloads and stop
    python3 tools/reference/make_pickles.py OUT.json -- CMD...  # also run CMD while the tensors
                                                                # are alive, so it can open the handles

OUT.json: {"payloads": {kind: base64}, "expected": {kind: {name: {"dtype", "shape", "values"}}},
"exploits": {name: base64}}. The sglang classes and the patched reducer are re-created here under
their real module paths (SGLang is not installed on the machine), so the pickles name the same
globals that real SGLang and veRL pickles name.
"""
import base64
import dataclasses
import io
import json
import os
import pickle
import subprocess
import sys
import types
from multiprocessing.reduction import ForkingPickler
from typing import List

import torch
import torch.multiprocessing.reductions as reductions


def _module(path):
    parts = path.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
    return sys.modules[path]


# sglang.srt.model_executor.model_runner.LocalSerializedTensor (veRL's path)
runner = _module("sglang.srt.model_executor.model_runner")


@dataclasses.dataclass
class LocalSerializedTensor:
    values: List[bytes]


LocalSerializedTensor.__module__ = runner.__name__
runner.LocalSerializedTensor = LocalSerializedTensor

# sglang.srt.weight_sync.tensor_bucket.FlattenedTensorMetadata
bucket = _module("sglang.srt.weight_sync.tensor_bucket")


@dataclasses.dataclass
class FlattenedTensorMetadata:
    name: str
    shape: torch.Size
    dtype: torch.dtype
    start_idx: int
    end_idx: int
    numel: int


FlattenedTensorMetadata.__module__ = bucket.__name__
bucket.FlattenedTensorMetadata = FlattenedTensorMetadata

# sglang.srt.utils.patch_torch: device index -> GPU UUID on send (monkey_patch_torch_reductions)
patch = _module("sglang.srt.utils.patch_torch")


def _rebuild_cuda_tensor_modified(*args):
    raise RuntimeError("only the receiver rebuilds")


_rebuild_cuda_tensor_modified.__module__ = patch.__name__
patch._rebuild_cuda_tensor_modified = _rebuild_cuda_tensor_modified
_original_reduce = reductions.reduce_tensor


def _reduce_tensor_modified(*args, **kwargs):
    fn, a = _original_reduce(*args, **kwargs)
    a = list(a)
    a[6] = str(torch.cuda.get_device_properties(a[6]).uuid)
    return _rebuild_cuda_tensor_modified, tuple(a)


def serialize(obj, patched):
    buf = io.BytesIO()
    if patched:
        ForkingPickler.register(torch.Tensor, _reduce_tensor_modified)
        ForkingPickler.register(torch.nn.parameter.Parameter, _reduce_tensor_modified)
    else:
        ForkingPickler.register(torch.Tensor, _original_reduce)
        ForkingPickler.register(torch.nn.parameter.Parameter, _original_reduce)
    ForkingPickler(buf).dump(obj)
    return buf.getvalue()


def ipc_descriptor(name, t):
    """Our JSON CUDA-IPC transport for one tensor: what _share_cuda_ returns, plus the tensor's own layout."""
    (device, handle, _size, offset_bytes, _ref, _ref_off, event, event_sync) = t.untyped_storage()._share_cuda_()
    return {"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
            "stride": list(t.stride()), "storage_offset": t.storage_offset(),
            "ipc_handle": base64.b64encode(handle).decode(), "storage_offset_bytes": offset_bytes,
            "device_uuid": str(torch.cuda.get_device_properties(device).uuid),
            "event_handle": base64.b64encode(event).decode() if event else None,
            "event_sync_required": bool(event_sync)}


def describe(t):
    return {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": t.float().flatten().tolist()}


def main(out, cmd):
    torch.manual_seed(0)
    keep = []  # tensors must outlive whoever opens their handles
    w1 = torch.arange(12, dtype=torch.bfloat16, device="cuda").reshape(3, 4) / 4
    big = torch.randn(20, device="cuda")
    w2 = big[7:12]                                    # a view: non-zero storage offset
    w3 = torch.randn(4, 3, device="cuda").t()         # non-contiguous
    keep += [w1, big, w2, w3]
    named = [("w1", w1), ("w2", w2), ("w3", w3)]
    payloads, expected = {}, {}
    payloads["plain"] = serialize(named, patched=False)
    payloads["sglang"] = serialize(named, patched=True)
    inner = [serialize(t, patched=True) for _, t in named]
    payloads["verl"] = serialize([(n, LocalSerializedTensor(values=[b])) for (n, _), b in zip(named, inner)], patched=True)
    flat_parts = [t.contiguous().view(-1).view(torch.uint8) for _, t in named]
    flat = torch.cat(flat_parts)
    keep.append(flat)
    meta, start = [], 0
    for (n, t), part in zip(named, flat_parts):
        meta.append(FlattenedTensorMetadata(n, t.shape, t.dtype, start, start + part.numel(), t.numel()))
        start += part.numel()
    payloads["flattened_bucket"] = serialize({"flattened_tensor": flat, "metadata": meta}, patched=True)
    for k in payloads:
        expected[k] = {n: describe(t) for n, t in named}

    descriptors = [ipc_descriptor(n, t) for n, t in named]
    expected["cuda_ipc"] = {n: describe(t) for n, t in named}

    class Exploit:
        def __init__(self, fn, arg):
            self.fn, self.arg = fn, arg

        def __reduce__(self):
            return self.fn, (self.arg,)

    exploits = {
        "os_system": pickle.dumps(Exploit(os.system, "echo pwned"), protocol=4),
        "builtins_eval": pickle.dumps(Exploit(eval, "1+1"), protocol=4),
        "subprocess": pickle.dumps(Exploit(subprocess.getoutput, "id"), protocol=4),
        "torch_load": pickle.dumps(Exploit(torch.load, "/etc/passwd"), protocol=4),
        "nested_in_tensor_list": pickle.dumps([("w1", Exploit(os.system, "echo pwned"))], protocol=4),
    }
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "python": sys.version.split()[0],
                   "device_uuid": str(torch.cuda.get_device_properties(0).uuid),
                   "payloads": {k: base64.b64encode(v).decode() for k, v in payloads.items()},
                   "cuda_ipc_tensors": descriptors,
                   "expected": expected,
                   "exploits": {k: base64.b64encode(v).decode() for k, v in exploits.items()}}, f, indent=1)
    print("wrote", out, {k: len(v) for k, v in payloads.items()})
    if cmd:
        torch.cuda.synchronize()
        rc = subprocess.call(cmd, env=dict(os.environ, ROLLOUT_PICKLE_FIXTURE=os.path.abspath(out)))
        sys.exit(rc)


if __name__ == "__main__":
    args = sys.argv[1:]
    cmd = args[args.index("--") + 1:] if "--" in args else []
    main(args[0], cmd)
