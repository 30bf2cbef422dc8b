#!/usr/bin/env python3
"""Where a CPU forward pass depends on the batch (issue #21, ADR 0026): one row of a linear layer
at several row counts M and at every position of a fixed chunk; a P·V product padded along the
keys; decode attention against the same row of a causal prefill through SDPA; and the row-wise ops
(RMSNorm, softmax with -inf padding, log_softmax). Prints what is bitwise equal. Needs torch (CPU).

    python3 tools/reference/batch_invariance.py
"""
import torch

torch.manual_seed(0)
F = torch.nn.functional
print("torch", torch.__version__, "| threads", torch.get_num_threads(), "|", torch.backends.cpu.get_cpu_capability())

# 1. linear: a row against M (Qwen2.5-0.5B's gate/up shape) and against its place in a fixed chunk
K, N = 896, 4864
W, rows = torch.randn(N, K), torch.randn(300, K)
by_m = {m: F.linear(rows[:m], W)[0] for m in (1, 2, 3, 8, 16, 17, 32, 64, 128, 300)}
classes = []
for m, y in by_m.items():
    for c in classes:
        if torch.equal(by_m[c[0]], y):
            c.append(m)
            break
    else:
        classes.append([m])
print("linear %dx%d, row 0 bitwise equal within each group of M:" % (N, K), classes)
for r in (8, 16, 32, 64):
    x = rows[:r]
    base = F.linear(x, W)
    same = all(torch.equal(F.linear(torch.roll(x, p, 0), W)[p], base[0]) for p in range(r))
    print("linear, a chunk of %d rows: row 0's result the same at every position: %s" % (r, same))

# 2. P·V with the keys padded by zeros to another length
s, v = torch.randn(1, 300), torch.randn(300, 64)
p = torch.softmax(s, 1)
for length in (320, 512, 1000):
    padded = torch.cat([p, torch.zeros(1, length - 300)], 1) @ torch.cat([v, torch.zeros(length - 300, 64)], 0)
    print("P.V padded from 300 to %d keys bitwise equal: %s" % (length, torch.equal(padded, p @ v)))

# 3. decode against prefill through SDPA: the query at position t alone over keys 0..t, and row t of a causal prefill
L, H, D = 200, 8, 64
q, k, vv = (torch.randn(1, H, L, D) for _ in range(3))
prefill = F.scaled_dot_product_attention(q, k, vv, is_causal=True)
equal = sum(torch.equal(F.scaled_dot_product_attention(q[:, :, t:t + 1], k[:, :, :t + 1], vv[:, :, :t + 1])[0, :, 0],
                        prefill[0, :, t]) for t in range(L))
print("SDPA: decode equal to its prefill row at %d of %d positions" % (equal, L))

# 4. row-wise ops against the number of rows and -inf padding
h = torch.randn(64, 896)
rms = lambda t: t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6)
print("RMSNorm row 0 the same for 1 to 64 rows:", all(torch.equal(rms(h[:m])[0], rms(h[:1])[0]) for m in (1, 2, 7, 16, 64)))
print("softmax with -inf padding to 301..1000:", all(torch.equal(torch.softmax(torch.cat([s, torch.full((1, n - 300), float("-inf"))], 1), 1)[:, :300],
                                                                  torch.softmax(s, 1)) for n in (301, 320, 512, 1000)))
lg = torch.randn(64, 151936)
print("log_softmax row 0 the same for 1 to 64 rows:", all(torch.equal(torch.log_softmax(lg[:m], 1)[0], torch.log_softmax(lg[:1], 1)[0])
                                                          for m in (1, 2, 7, 16, 64)))
