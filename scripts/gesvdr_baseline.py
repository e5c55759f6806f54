#!/usr/bin/env python3
"""cuSOLVER's randomized SVD (cusolverDnXgesvdr) as a baseline for benches/kernels.rs `rsvd`: the same matrices
(scripts/baselines.py dct_power_law, singular values 1/(k+1)), ranks, oversampling p = 10 and 2 power iterations;
its time and its error ratio (rank-r error / optimal rank-r error) go to the results file as baseline and
accuracy records.

Bound through ctypes on the toolkit's libcusolver (never run on a GPU before it first lands: it runs in its own
process, after baselines.py, so a wrong binding cannot lose the other baselines). The row-major m x n A is the
column-major n x m A^T: gesvdr factors A^T = U S V^T, so A = V S U^T. gesvdr overwrites its input, so each timed
call copies A first; the copy's own time, measured alone, is subtracted.

    python3 gesvdr_baseline.py --json results.jsonl [--full]
"""
import argparse
import ctypes
import glob
import json
import os
import sys

import torch

from baselines import dct_power_law, error_ratio, time_ms

CUDA_R_32F = 0


def load_cusolver():
    names = ["libcusolver.so", "libcusolver.so.12", "libcusolver.so.11"]
    dirs = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
    torch_dir = os.path.dirname(torch.__file__)
    dirs += glob.glob(os.path.join(torch_dir, "..", "nvidia", "*", "lib"))
    dirs += glob.glob(os.path.join(torch_dir, "..", "nvidia", "cu1*", "lib"))
    for name in names:
        try:
            return ctypes.CDLL(name), name
        except OSError:
            pass
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "libcusolver.so*"))):
            try:
                return ctypes.CDLL(path), path
            except OSError:
                pass
    raise OSError("libcusolver not found")


def check(status, what):
    if status != 0:
        raise RuntimeError(f"{what} returned cusolverStatus {status}")


class Gesvdr:
    def __init__(self):
        self.lib, self.path = load_cusolver()
        self.handle = ctypes.c_void_p()
        check(self.lib.cusolverDnCreate(ctypes.byref(self.handle)), "cusolverDnCreate")
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        check(self.lib.cusolverDnSetStream(self.handle, stream), "cusolverDnSetStream")
        self.params = ctypes.c_void_p()
        check(self.lib.cusolverDnCreateParams(ctypes.byref(self.params)), "cusolverDnCreateParams")
        i64, vp, sz = ctypes.c_int64, ctypes.c_void_p, ctypes.c_size_t
        common = [vp, vp, ctypes.c_byte, ctypes.c_byte, i64, i64, i64, i64, i64,
                  ctypes.c_int, vp, i64, ctypes.c_int, vp, ctypes.c_int, vp, i64, ctypes.c_int, vp, i64, ctypes.c_int]
        self.lib.cusolverDnXgesvdr_bufferSize.argtypes = common + [ctypes.POINTER(sz), ctypes.POINTER(sz)]
        self.lib.cusolverDnXgesvdr_bufferSize.restype = ctypes.c_int
        self.lib.cusolverDnXgesvdr.argtypes = common + [vp, sz, vp, sz, vp]
        self.lib.cusolverDnXgesvdr.restype = ctypes.c_int

    def prepare(self, a_rowmajor, k, p, niters):
        """Buffers for the column-major A^T (M = cols x N = rows); returns a callable doing one factorization of a
        fresh copy, and the outputs."""
        rows, cols = a_rowmajor.shape
        M, N = cols, rows
        big = max(M, N)
        dev = a_rowmajor.device
        work_a = torch.empty_like(a_rowmajor)
        s = torch.zeros(big, device=dev, dtype=torch.float32)
        u = torch.zeros(big, M, device=dev, dtype=torch.float32)  # column j of the column-major U is row j
        v = torch.zeros(big, N, device=dev, dtype=torch.float32)
        info = torch.zeros(1, device=dev, dtype=torch.int32)
        jobs = (ord("S"), ord("S"))
        head = lambda: (self.handle, self.params, jobs[0], jobs[1], M, N, k, p, niters,
                        CUDA_R_32F, work_a.data_ptr(), M, CUDA_R_32F, s.data_ptr(),
                        CUDA_R_32F, u.data_ptr(), M, CUDA_R_32F, v.data_ptr(), N, CUDA_R_32F)
        dev_bytes, host_bytes = ctypes.c_size_t(), ctypes.c_size_t()
        check(self.lib.cusolverDnXgesvdr_bufferSize(*head(), ctypes.byref(dev_bytes), ctypes.byref(host_bytes)),
              "cusolverDnXgesvdr_bufferSize")
        dwork = torch.empty(max(dev_bytes.value, 1), device=dev, dtype=torch.uint8)
        hwork = ctypes.create_string_buffer(max(host_bytes.value, 1))

        def run():
            work_a.copy_(a_rowmajor)
            check(self.lib.cusolverDnXgesvdr(*head(), dwork.data_ptr(), dev_bytes.value,
                                             ctypes.cast(hwork, ctypes.c_void_p), host_bytes.value,
                                             info.data_ptr()), "cusolverDnXgesvdr")

        def factors():
            # A^T = U S V^T (U: M x k, V: N x k)  =>  A = V S U^T.
            return v[:k, :N].T, s[:k], u[:k, :M].T

        return run, (lambda: work_a.copy_(a_rowmajor)), factors, info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    try:
        g = Gesvdr()
    except Exception as e:
        print(f"# gesvdr unavailable: {e}", flush=True)
        return
    print(f"# cusolver: {g.path}", flush=True)
    p, niter = 10, 2
    ranks = [16, 64, 128, 256] if args.full else [16, 128]
    # Each record is appended as soon as it is measured (a run cut short keeps what it finished).
    json_file = open(args.json, "a", buffering=1)
    for rows, cols in [(4096, 4096), (4096, 11008)]:
        a32, sigma = dct_power_law(rows, cols, dev)
        for r in ranks:
            label = f"cusolverDnXgesvdr k={r} p={p} niters={niter}"
            try:
                run, copy, factors, info = g.prepare(a32, r, p, niter)
                t_all = time_ms(run, iters=5)
                t_copy = time_ms(copy, iters=5)
                run()
                torch.cuda.synchronize()
                if int(info.item()) != 0:
                    raise RuntimeError(f"d_info = {int(info.item())}")
                u, s, v = factors()
                ratio = error_ratio(a32, sigma, u, s, v)
            except Exception as e:
                print(f"# {label} failed at {rows}x{cols}: {e}", flush=True)
                continue
            base = dict(op="rsvd", rows=rows, cols=cols, density=0.0, dtype="f32", t=r,
                        baseline=label + " (input copy subtracted)", time_ms=max(t_all - t_copy, 0.0), device=name)
            acc = dict(op="rsvd", rows=rows, cols=cols, density=0.0, dtype="f32", t=r, accuracy_of=label,
                       error_ratio=ratio, device=name)
            for rec in (base, acc):
                print(json.dumps(rec), flush=True)
                json_file.write(json.dumps(rec) + "\n")
    json_file.close()


if __name__ == "__main__":
    sys.exit(main())
