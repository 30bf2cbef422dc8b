"""Benchmark prompts as token ids from SplitMix64: the same ids as dev.rollout.bench.Prompts.make
(EngineBenchTest checks one case), so every engine and driver is fed identical prompts."""
MASK = (1 << 64) - 1


def prompts(count, length, seed, vocab):
    """count prompts of length ids: in [1000, 151000) for a real vocabulary, [0, vocab) for a tiny one."""
    lo, hi = (1000 if vocab > 2000 else 0), min(vocab, 151000)
    state, out = seed, []
    for _ in range(count):
        row = []
        for _ in range(length):
            state = (state + 0x9E3779B97F4A7C15) & MASK
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            z ^= z >> 31
            row.append(lo + z % (hi - lo))
        out.append(row)
    return out
