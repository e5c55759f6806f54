#!/usr/bin/env python3
"""PyTorch baselines for the benchmark cases, on the GPU machine (torch 2.11 there). Appends one JSON object
per case to --json, in the benchmark's schema plus "baseline". Timed with CUDA events after a warm-up.

gather:      what LIFT does, grad[mask] with a bool mask, and the cheaper flat index_select at the same positions.
scatter_add: W.view(-1).index_add_(0, flat, delta) (torch needs delta in W's dtype: the f32 delta is rounded to
             bf16 first, so the baseline rounds twice where ours rounds once), and LIFT-style W[mask] += delta.
spmm_xst:    dense x @ w.T (cuBLAS) and torch.sparse.mm on a CSR tensor (cuSPARSE SpMM), Y^T computed.
sddmm:       the dense gradient then a gather at the mask, as SLTrain's backward does; and cuSPARSE SDDMM
             (torch.sparse.sampled_addmm on the CSR pattern).
topk_*:      torch.topk on the flattened |W| (per row: dim=1, k = 64) and torch.sort of the flattened |W|.
rsvd:        torch.svd_lowrank(A, q=r+p, niter=q) with our defaults (p = 10, q = 2; torch's q is the subspace size)
             and torch.linalg.svd(A, full_matrices=False) (the exact SVD), f32 math; for bf16 A the conversion to
             f32 is inside the timed call (svd_lowrank and linalg.svd do not take bf16), as ours converts on device.
"""
import argparse
import json

import torch


def time_ms(fn, iters=50):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def dct_power_law(m, n, dev):
    """A = C_m diag(sigma) C_n^T with orthonormal DCT-II bases and sigma_k = 1/(k+1), k < min(m, n): the matrix of
    benches/kernels.rs dct_power_law (f32, built in f64 here), and sigma."""
    kk = min(m, n)
    k = torch.arange(kk, device=dev, dtype=torch.float64)
    sigma = 1.0 / (k + 1.0)

    def basis(length):
        i = torch.arange(length, device=dev, dtype=torch.float64)
        w = torch.full((kk,), 2.0, device=dev, dtype=torch.float64)
        w[0] = 1.0
        norm = (w / length).sqrt()
        return norm * torch.cos(torch.pi * k[None, :] * (i[:, None] + 0.5) / length)

    a = (basis(m) * sigma[None, :]) @ basis(n).T
    return a.float(), sigma


def error_ratio(a, sigma, u, s, v):
    """||A - U diag(s) V^T||_F over the optimal rank-r error sqrt(sum_{k>=r} sigma_k^2), in f64."""
    r = s.shape[0]
    resid = a.double() - (u.double() * s.double()[None, :]) @ v.double().T
    return float(torch.linalg.matrix_norm(resid) / sigma[r:].square().sum().sqrt())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--full", action="store_true", help="all densities, not the quick subset")
    ap.add_argument("--only", default="", help="comma-separated groups to run (gather_scatter, spmm, sddmm, "
                    "csr_transpose, tile_mma, topk); all if empty")
    args = ap.parse_args()
    only = set(g for g in args.only.split(",") if g)
    want = lambda group: not only or group in only
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    gen = torch.Generator(device=dev).manual_seed(7)
    densities = [0.01, 0.05, 0.10, 0.30] if args.full else [0.01, 0.05]
    # Each record goes to the log and the JSON file as soon as it is measured: a run cut short by its time limit
    # keeps what it finished.
    json_file = open(args.json, "a", buffering=1)

    def emit(rec):
        print(json.dumps(rec), flush=True)
        json_file.write(json.dumps(rec) + "\n")
    for rows, cols in [(4096, 4096), (11008, 4096)] if want("gather_scatter") else []:
        w = torch.randn(rows, cols, device=dev, generator=gen).to(torch.bfloat16)
        for d in densities:
            mask = torch.rand(rows, cols, device=dev, generator=gen) < d
            flat = mask.view(-1).nonzero().squeeze(1)
            nnz = flat.numel()
            delta32 = torch.full((nnz,), 1e-3, device=dev, dtype=torch.float32)
            delta16 = delta32.to(torch.bfloat16)
            cases = [
                ("gather", "bf16", "torch W[mask]", lambda: w[mask]),
                ("gather", "bf16", "torch index_select", lambda: w.view(-1).index_select(0, flat)),
                ("scatter_add", "bf16<-f32", "torch index_add_", lambda: w.view(-1).index_add_(0, flat, delta16)),
                ("scatter_add", "bf16<-f32", "torch W[mask] += d", lambda: w.__setitem__(mask, w[mask] + delta16)),
            ]
            for op, dtype, baseline, fn in cases:
                ms = time_ms(fn)
                rec = dict(op=op, rows=rows, cols=cols, density=d, dtype=dtype, t=0, baseline=baseline,
                           time_ms=ms, device=name, nnz=nnz)
                emit(rec)
    # SpMM forward Y = X W^T: dense cuBLAS (x @ w.T) and torch.sparse.mm on CSR (cuSPARSE SpMM underneath).
    ts = [1, 16, 128, 2048] if args.full else [1, 16, 128]
    for out, inn in [(4096, 4096), (11008, 4096), (4096, 11008)] if want("spmm") else []:
        w = torch.randn(out, inn, device=dev, generator=gen).to(torch.bfloat16)
        for d in densities:
            mask = torch.rand(out, inn, device=dev, generator=gen) < d
            s_csr = (w * mask).to_sparse_csr()
            s_csr32 = torch.sparse_csr_tensor(s_csr.crow_indices().int(), s_csr.col_indices().int(), s_csr.values(),
                                              size=s_csr.shape)
            # T = 2048 at 4096 x 4096 in the quick run too, as the Rust bench does.
            for t in (ts if args.full or (out, inn) != (4096, 4096) else ts + [2048]):
                x = torch.randn(t, inn, device=dev, generator=gen).to(torch.bfloat16)
                # torch's CSR carries int64 indices (10 B per bf16 entry against our 6): the int32 line is cuSPARSE
                # on the bytes ours moves (2026-11-29).
                cases = [("spmm_xst", "torch dense x@w.T", lambda: x @ w.T),
                         ("spmm_xst", "torch.sparse.mm CSR (cuSPARSE)", lambda: torch.sparse.mm(s_csr, x.T)),
                         ("spmm_xst", "torch.sparse.mm CSR int32 indices (cuSPARSE)", lambda: torch.sparse.mm(s_csr32, x.T))]
                if (out, inn) == (4096, 4096) and t in (16, 128):
                    # The textbook C = S B with B (in x n) row-major, n = t (benches: spmm_sb).
                    b = x.T.contiguous()
                    cases += [("spmm_sb", "torch dense w@b", lambda: w @ b),
                              ("spmm_sb", "torch.sparse.mm CSR (cuSPARSE)", lambda: torch.sparse.mm(s_csr, b))]
                for op, baseline, fn in cases:
                    try:
                        ms = time_ms(fn, iters=20)
                    except Exception as e:  # e.g. a dtype the sparse path does not support
                        print(f"# {baseline} failed at {out}x{inn} d={d} T={t}: {e}", flush=True)
                        continue
                    rec = dict(op=op, rows=out, cols=inn, density=d, dtype="bf16", t=t, baseline=baseline,
                               time_ms=ms, device=name)
                    emit(rec)
    # SDDMM: what SLTrain/SpIEL-style code does today: form the dense gradient, then gather at the mask.
    #   sddmm_weight_grad: (dY^T X).view(-1)[flat]   (dY: T x out, X: T x in)
    #   sddmm:             (A B^T).view(-1)[flat]    (A: out x T, B: in x T)
    for out, inn in [(4096, 4096), (11008, 4096)] if want("sddmm") else []:
        for d in [0.01, 0.05]:
            mask = torch.rand(out, inn, device=dev, generator=gen) < d
            flat = mask.view(-1).nonzero().squeeze(1)
            for t in ([16, 128, 2048] if args.full else [16, 128]):
                dy = torch.randn(t, out, device=dev, generator=gen).to(torch.bfloat16)
                x = torch.randn(t, inn, device=dev, generator=gen).to(torch.bfloat16)
                a, b = dy.T.contiguous(), x.T.contiguous()
                cases = [("sddmm_weight_grad", "torch dense dY^T X + gather", lambda: (dy.T @ x).view(-1)[flat]),
                         ("sddmm", "torch dense A B^T + gather", lambda: (a @ b.T).view(-1)[flat])]
                # cuSPARSE SDDMM through torch.sparse.sampled_addmm (CSR pattern, alpha * (A B^T) at the mask). Its
                # CUDA path may refuse bf16: then f32 operands, named so in the baseline.
                for tdt, tag in [(torch.bfloat16, ""), (torch.float32, ", f32 operands")]:
                    try:
                        pat = mask.to(tdt).to_sparse_csr()
                        a_t, bt_t = a.to(tdt), b.T.contiguous().to(tdt)
                        torch.sparse.sampled_addmm(pat, a_t, bt_t, beta=0.0)
                    except Exception as e:
                        print(f"# sampled_addmm {tdt} failed at {out}x{inn} d={d} T={t}: {e}", flush=True)
                        continue
                    cases.append(("sddmm", f"torch.sparse.sampled_addmm (cuSPARSE SDDMM{tag})",
                                  lambda pat=pat, a_t=a_t, bt_t=bt_t: torch.sparse.sampled_addmm(pat, a_t, bt_t, beta=0.0)))
                    break
                for op, baseline, fn in cases:
                    ms = time_ms(fn, iters=20)
                    rec = dict(op=op, rows=out, cols=inn, density=d, dtype="bf16", t=t, baseline=baseline,
                               time_ms=ms, device=name)
                    emit(rec)
    # CSR transpose (torch: CSR -> transposed CSR, cuSPARSE csr2csc underneath) and mask -> CSR (torch: a dense
    # bool mask's to_sparse_csr()).
    for rows, cols in [(4096, 4096), (11008, 4096)] if want("csr_transpose") else []:
        for d in [0.01, 0.05]:
            mask = torch.rand(rows, cols, device=dev, generator=gen) < d
            s_csr = mask.to(torch.float32).to_sparse_csr()
            nnz = int(mask.sum())
            vals = torch.randn(nnz, device=dev, generator=gen).to(torch.bfloat16)
            perm = torch.randperm(nnz, device=dev, generator=gen)
            cases = [("csr_transpose", "u32", "torch csr.t().to_sparse_csr()", lambda: s_csr.t().to_sparse_csr()),
                     ("mask_to_csr", "bits", "torch bool mask.to_sparse_csr()", lambda: mask.to_sparse_csr()),
                     ("transpose_values", "bf16", "torch index_select by a permutation",
                      lambda: vals.index_select(0, perm))]
            for op, dtype, baseline, fn in cases:
                try:
                    ms = time_ms(fn, iters=20)
                except Exception as e:
                    print(f"# {baseline} failed: {e}", flush=True)
                    continue
                rec = dict(op=op, rows=rows, cols=cols, density=d, dtype=dtype, t=0, baseline=baseline, time_ms=ms,
                           device=name)
                emit(rec)
    # tile_mma: 65536 independent 16x16 x 16x8 bf16 products into f32.
    tiles = 1 << 16
    a = torch.randn(tiles, 16, 16, device=dev, generator=gen).to(torch.bfloat16)
    b = torch.randn(tiles, 16, 8, device=dev, generator=gen).to(torch.bfloat16)
    ms = time_ms(lambda: torch.bmm(a, b), iters=20)
    rec = dict(op="tile_mma", rows=tiles, cols=16, density=1.0, dtype="bf16", t=0, baseline="torch bmm (bf16 out)",
               time_ms=ms, device=name)
    emit(rec)
    # Top-k by magnitude (ours: topk_mask, topk_threshold and topk_csr at 5%, topk_mask_per_row with k = 64): torch.topk on the
    # flattened |W| (values + indices, unsorted order not requested), torch.sort of the flattened |W|, and the
    # per-row torch.topk(|W|, 64, dim=1). torch.topk returns indices, not a mask; the mask scatter is extra.
    shapes = [(4096, 4096), (4096, 11008), (14336, 4096)] if args.full else [(4096, 4096), (4096, 11008)]
    fractions = [0.001, 0.01, 0.05, 0.25] if args.full else [0.01, 0.05]
    # (4096, 14336): rows of 14336 (LLaMA-3-8B's down_proj), the per-row case only (benches/kernels.rs).
    for rows, cols in (shapes + [(4096, 14336)]) if want("topk") else []:
        per_row_only = cols == 14336
        for dtype, tdt in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            w = (torch.randn(rows, cols, device=dev, generator=gen) * 0.05).to(tdt)
            n = rows * cols
            cases = []
            for d in ([] if per_row_only else fractions + ([0.05] if 0.05 not in fractions else [])):
                k = round(d * n)
                if d in fractions:
                    cases.append(("topk_mask", d, "torch.topk(|W|.flatten(), k)",
                                  lambda k=k: torch.topk(w.abs().flatten(), k)))
                    cases.append(("topk_mask", d, "torch.sort(|W|.flatten())",
                                  lambda: torch.sort(w.abs().flatten(), descending=True)))
                if d == 0.05:
                    cases.append(("topk_csr", d, "torch.topk(|W|.flatten(), k)",
                                  lambda k=k: torch.topk(w.abs().flatten(), k)))
                    # The threshold alone: torch.topk (values + indices), and kthvalue of -|W| (the k-th largest).
                    cases.append(("topk_threshold", d, "torch.topk(|W|.flatten(), k)",
                                  lambda k=k: torch.topk(w.abs().flatten(), k)))
                    cases.append(("topk_threshold", d, "torch.kthvalue(-|W|.flatten(), k)",
                                  lambda k=k: torch.kthvalue(-w.abs().flatten().float(), k)))
            # k = n (ours: one pass for the smallest key and its count, the mask all ones).
            if not per_row_only:
                cases.append(("topk_mask", 1.0, "torch.topk(|W|.flatten(), n)",
                              lambda: torch.topk(w.abs().flatten(), n)))
            if cols in (4096, 14336):
                cases.append(("topk_mask_per_row", 64 / cols, "torch.topk(|W|, 64, dim=1)",
                              lambda: torch.topk(w.abs(), 64, dim=1)))
            for op, d, baseline, fn in cases:
                try:
                    ms = time_ms(fn, iters=10)
                except Exception as e:  # e.g. out of memory for the sort of the largest shape
                    print(f"# {baseline} failed at {rows}x{cols} {dtype}: {e}", flush=True)
                    continue
                rec = dict(op=op, rows=rows, cols=cols, density=d, dtype=dtype, t=0, baseline=baseline,
                           time_ms=ms, device=name)
                emit(rec)
    # Randomized SVD: the same shapes, ranks and matrix as benches/kernels.rs (bench_rsvd: dct_power_law, singular
    # values 1/(k+1) exactly); p and q are our defaults. Each method's error ratio (rank-r error / the optimum,
    # sqrt(sum_{k>=r} sigma_k^2)) is recorded next to its time.
    p, niter = 10, 2
    ranks = [16, 64, 128, 256]  # the grid, quick mode too (as benches/kernels.rs bench_rsvd)
    for rows, cols in [(4096, 4096), (4096, 11008)] if want("rsvd") else []:
        a32, sigma = dct_power_law(rows, cols, dev)
        a16 = a32.to(torch.bfloat16)
        for dtype, a in [("f32", a32), ("bf16", a16)]:
            for r in ranks:
                q = min(r + p, rows, cols)
                label = f"torch.svd_lowrank q={q} niter={niter}"
                rec = dict(op="rsvd", rows=rows, cols=cols, density=0.0, dtype=dtype, t=r, baseline=label,
                           time_ms=time_ms(lambda: torch.svd_lowrank(a.float(), q=q, niter=niter), iters=5),
                           device=name)
                emit(rec)
                u, s_, v = torch.svd_lowrank(a.float(), q=q, niter=niter)
                ratio = error_ratio(a32, sigma, u[:, :r], s_[:r], v[:, :r])
                rec = dict(op="rsvd", rows=rows, cols=cols, density=0.0, dtype=dtype, t=r, accuracy_of=label,
                           error_ratio=ratio, device=name)
                emit(rec)
            # The exact SVD does not depend on r: one timing per shape and dtype, reported at t = 0 (quick mode: only
            # f32 4096x4096, since each call takes seconds).
            if not args.full and (dtype != "f32" or cols != 4096):
                continue
            rec = dict(op="rsvd", rows=rows, cols=cols, density=0.0, dtype=dtype, t=0,
                       baseline="torch.linalg.svd full_matrices=False",
                       time_ms=time_ms(lambda: torch.linalg.svd(a.float(), full_matrices=False), iters=2),
                       device=name)
            emit(rec)
    json_file.close()


if __name__ == "__main__":
    main()
