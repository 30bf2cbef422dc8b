# dense_gemv.cu's tensor-core form (dense_gemv_mma_kernel) has no GPU here to run on: this replays
# its index arithmetic lane by lane, with each MMA's fragments laid out as the PTX ISA gives them for
# m16n8k16 .row.col bf16 (the same layout paged_attention.cu's kernel uses), in float64, and checks
# the result against x W^T (store) and silu(g) * u (silu_mul) over shapes that exercise partial
# tiles, splits of K and short last steps. It checks which weight row, x row and K each lane feeds
# each MMA and where each output lands, not the hardware's rounding.
#   python3 tools/reference/dense_gemv_mma_layout.py   (numpy; prints the largest error per shape)
import numpy as np
KMMA_WARPS, KCHUNK, KUNROLL = 8, 32, 8

def mma(c, a, b):
    # a: dict lane -> 4 regs, each reg a pair of values; b: lane -> 2 regs (pairs); c: lane -> 4 floats
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane // 4, lane % 4
        r = a[lane]
        A[g, 2*t:2*t+2] = r[0]; A[g+8, 2*t:2*t+2] = r[1]; A[g, 8+2*t:8+2*t+2] = r[2]; A[g+8, 8+2*t:8+2*t+2] = r[3]
        bb = b[lane]
        B[2*t:2*t+2, g] = bb[0]; B[8+2*t:8+2*t+2, g] = bb[1]
    C = A @ B
    for lane in range(32):
        g, t = lane // 4, lane % 4
        c[lane][0] += C[g, 2*t]; c[lane][1] += C[g, 2*t+1]; c[lane][2] += C[g+8, 2*t]; c[lane][3] += C[g+8, 2*t+1]

def run(M, epi, n, k, splits, x, W):
    inter = n // 2
    tiles = inter // 4 if epi == 'silu' else (n + 7) // 8
    per_block = KMMA_WARPS // splits
    blocks = (tiles + per_block - 1) // per_block
    out = np.zeros((M, inter if epi == 'silu' else n))
    chunks = k // KCHUNK; per = (chunks + splits - 1) // splits
    for blk in range(blocks):
        partial = np.zeros((KMMA_WARPS, 8, 8))
        for warp in range(KMMA_WARPS):
            tile = blk * per_block + warp // splits; split = warp % splits
            active = tile < tiles
            begin = split * per; end = min(chunks, begin + per)
            c = [[0.0]*4 for _ in range(32)]
            rows = {}
            for lane in range(32):
                gid, tig = lane // 4, lane % 4
                if not active: row = 0
                elif epi == 'silu': row = 4*tile + gid//2 if gid % 2 == 0 else inter + 4*tile + gid//2
                else: row = min(8*tile + gid, n - 1)
                rows[lane] = row
            if active:
                for c0 in range(begin, end, KUNROLL):
                    for u in range(KUNROLL):
                        cc = c0 + u
                        if cc >= end: break
                        a0, a1, b0, b1 = {}, {}, {}, {}
                        for lane in range(32):
                            gid, tig = lane // 4, lane % 4
                            kk = 32*cc + 8*tig
                            wv = W[rows[lane], kk:kk+8]
                            xv = x[gid, kk:kk+8] if gid < M else np.zeros(8)
                            words_w = [wv[0:2], wv[2:4], wv[4:6], wv[6:8]]
                            words_x = [xv[0:2], xv[2:4], xv[4:6], xv[6:8]]
                            z = np.zeros(2)
                            a0[lane] = [words_x[0], z, words_x[1], z]; a1[lane] = [words_x[2], z, words_x[3], z]
                            b0[lane] = [words_w[0], words_w[1]]; b1[lane] = [words_w[2], words_w[3]]
                        mma(c, a0, b0); mma(c, a1, b1)
            for lane in range(32):
                gid, tig = lane // 4, lane % 4
                assert c[lane][2] == 0 and c[lane][3] == 0
                partial[warp, gid, 2*tig] = c[lane][0]; partial[warp, gid, 2*tig+1] = c[lane][1]
        for warp in range(KMMA_WARPS):
            tile = blk * per_block + warp // splits; split = warp % splits
            if tile >= tiles or split != 0: continue
            for lane in range(32):
                gid, tig = lane // 4, lane % 4
                if gid >= M: continue
                s0 = sum(partial[warp + i, gid, 2*tig] for i in range(splits))
                s1 = sum(partial[warp + i, gid, 2*tig+1] for i in range(splits))
                if epi == 'silu':
                    out[gid, 4*tile + tig] = s0 / (1 + np.exp(-s0)) * s1
                else:
                    for r in range(2):
                        nr = 8*tile + 2*tig + r
                        if nr >= n: continue
                        out[gid, nr] = s0 if r == 0 else s1
    return out

rng = np.random.default_rng(1)
for (M, epi, n, k, splits) in [(1,'store',40,64,1),(3,'store',37,128,2),(8,'store',24,96,4),(5,'silu',32,64,2),(8,'silu',48,256,4),(2,'silu',16,32,1),(7,'store',9,160,4),
                               (8,'store',20,896,8),(4,'silu',64,608,8),(6,'store',44,320,8)]:
    x = rng.standard_normal((M, k)); W = rng.standard_normal((n, k))
    got = run(M, epi, n, k, splits, x, W)
    y = x @ W.T
    ref = y[:, :n//2] / (1 + np.exp(-y[:, :n//2])) * y[:, n//2:] if epi == 'silu' else y
    err = np.abs(got - ref).max()
    print(M, epi, n, k, splits, err)
    assert err < 1e-9, (M, epi, n, k, splits)
