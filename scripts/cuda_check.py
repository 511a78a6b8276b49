#!/usr/bin/env python3
"""Checks the CUDA backend's kernels against PyTorch on the GPU, through the C ABI (no Node.js).

    python3 scripts/cuda_check.py --lib native/cuda/build/libplinth_cuda.so [--quick] [--compile]

1. Correctness: every kernel of native/cuda/src/plinth_cuda.h, forward and backward, against
   PyTorch (float64 references on the GPU). fp32: max |ours - ref| <= 1e-4 * max(1, max |ref|).
   bf16 GEMM: relative Frobenius error <= 1e-3 against the float64 product of the bf16-rounded
   operands (only the summation order differs), and <= 1e-2 against torch.matmul in bf16.
2. GPT parity: a tiny GPT-2 composed from the kernels (KernelGPT below) against the same model
   in PyTorch (float64): loss and every parameter gradient; and 200 training steps with bf16
   GEMMs (fp32 master weights, moments and reductions) tracking 200 fp32 steps within 1%.
3. Speed, side by side on this GPU: bf16 GEMM TFLOP/s at 4096^3 and GPT-2 124M's shapes
   (own tensor-core kernel, cuBLASLt, torch.matmul); a GPT-2 124M training step (12 layers,
   d=768, T=1024) in tokens/s and MFU, composed from the kernels, beside PyTorch eager
   (and torch.compile with --compile).

Prints one line per check ("PASS ..." / "FAIL ..."), then "SPEED ..." lines, then a JSON
summary line starting with "SUMMARY "; exits 1 when any check fails.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DEV = "cuda"
I, L, Fl, U, P = ctypes.c_int, ctypes.c_int64, ctypes.c_float, ctypes.c_uint64, ctypes.c_void_p
LP, DP = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double)

SIGNATURES = {
    "plinth_cuda_last_error": (ctypes.c_char_p, []),
    "plinth_cuda_device_count": (I, []),
    "plinth_cuda_set_device": (I, [I]),
    "plinth_cuda_device_info": (I, [I, ctypes.c_char_p, I, LP]),
    "plinth_cuda_alloc": (P, [L]),
    "plinth_cuda_free": (I, [P]),
    "plinth_cuda_empty_cache": (I, []),
    "plinth_cuda_memory_stats": (I, [LP]),
    "plinth_cuda_synchronize": (I, []),
    "plinth_cuda_set_stream": (I, [P]),
    "plinth_cuda_upload": (I, [P, P, L]),
    "plinth_cuda_download": (I, [P, P, L]),
    "plinth_cuda_copy": (I, [P, P, L]),
    "plinth_cuda_binary_forward": (I, [I, I, LP, LP, LP, P, P, P]),
    "plinth_cuda_binary_backward": (I, [I, I, LP, LP, LP, P, P, P, P, P]),
    "plinth_cuda_unary_forward": (I, [I, L, P, P, Fl]),
    "plinth_cuda_unary_backward": (I, [I, L, P, P, P, P, Fl, I]),
    "plinth_cuda_gelu_forward": (I, [L, P, P]),
    "plinth_cuda_gelu_backward": (I, [L, P, P, P, I]),
    "plinth_cuda_dropout_forward": (I, [L, P, P, Fl, U]),
    "plinth_cuda_dropout_backward": (I, [L, P, P, Fl, U, I]),
    "plinth_cuda_fill": (I, [L, P, Fl]),
    "plinth_cuda_axpy": (I, [L, Fl, P, P]),
    "plinth_cuda_copy_strided": (I, [I, LP, LP, P, P]),
    "plinth_cuda_sum_squares": (I, [L, P, DP]),
    "plinth_cuda_adamw_step": (I, [L, P, P, P, P, Fl, Fl, Fl, Fl, Fl, Fl, Fl]),
    "plinth_cuda_to_bf16": (I, [L, P, P]),
    "plinth_cuda_from_bf16": (I, [L, P, P]),
    "plinth_cuda_reduce_forward": (I, [I, L, L, L, P, P]),
    "plinth_cuda_reduce_backward": (I, [I, L, L, L, P, P, I]),
    "plinth_cuda_softmax_forward": (I, [L, L, P, P]),
    "plinth_cuda_softmax_backward": (I, [L, L, P, P, P, I]),
    "plinth_cuda_layernorm_forward": (I, [L, L, P, P, P, Fl, P, P, P]),
    "plinth_cuda_layernorm_backward": (I, [L, L, P, P, P, P, P, P, P, P, I]),
    "plinth_cuda_embedding_forward": (I, [L, L, L, P, P, P]),
    "plinth_cuda_embedding_backward": (I, [L, L, L, P, P, P]),
    "plinth_cuda_cross_entropy_forward": (I, [L, L, P, P, P, P, DP]),
    "plinth_cuda_cross_entropy_backward": (I, [L, L, P, P, P, Fl, P]),
    "plinth_cuda_attention_forward": (I, [LP, Fl, I, P, L, L, P, L, L, P, L, L, P, L, L, P]),
    "plinth_cuda_attention_backward": (I, [LP, Fl, I, P, L, L, P, L, L, P, L, L, P, L, L, P, P, P, P, P, I]),
    "plinth_cuda_gemm": (I, [I, I, L, L, L, L, Fl, Fl, P, L, L, P, L, L, P, L, L, P, P]),
    "plinth_cuda_gemm_bf16": (I, [I, I, I, L, L, L, L, Fl, Fl, P, L, L, P, L, L, P, L, L]),
    "plinth_cuda_set_autocast": (I, [I]),
    "plinth_cuda_set_gemm_backend": (I, [I]),
    "plinth_cuda_cublaslt_available": (I, []),
}

OPS_BINARY = {"add": 0, "sub": 1, "mul": 2, "div": 3}
OPS_UNARY = {"exp": 0, "log": 1, "tanh": 2, "relu": 3, "neg": 4, "scale": 5, "addScalar": 6, "sqrt": 7, "sigmoid": 8}
SUM, MEAN, MAX = 0, 1, 2


class Lib:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        for name, (res, args) in SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.restype, fn.argtypes = res, args

    def __getattr__(self, name):
        fn = getattr(self.lib, "plinth_cuda_" + name)

        def call(*args):
            torch.cuda.synchronize()
            rc = fn(*args)
            if fn.restype is I and rc != 0:
                raise RuntimeError(f"{name}: {self.lib.plinth_cuda_last_error().decode()}")
            self.lib.plinth_cuda_synchronize()
            return rc
        return call

    def raw(self, name):
        return getattr(self.lib, "plinth_cuda_" + name)


def p(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def dims(xs):
    return (ctypes.c_int64 * max(1, len(xs)))(*xs)


RESULTS = []


def check(name, got, want, tol=1e-4):
    """fp32 check: max |got - want| <= tol * max(1, max |want|) (want in float64)."""
    got, want = got.double(), want.double()
    err = (got - want).abs().max().item() if got.numel() else 0.0
    bound = tol * max(1.0, want.abs().max().item() if want.numel() else 0.0)
    ok = bool(torch.isfinite(got).all().item()) and err <= bound
    RESULTS.append(dict(check=name, ok=ok, max_abs_err=err, bound=bound))
    print(f"{'PASS' if ok else 'FAIL'} {name}: max_abs_err={err:.3e} bound={bound:.3e}", flush=True)
    return ok


def check_rel(name, got, want, tol):
    got, want = got.double(), want.double()
    rel = ((got - want).norm() / max(want.norm().item(), 1e-30)).item()
    ok = bool(torch.isfinite(got).all().item()) and rel <= tol
    RESULTS.append(dict(check=name, ok=ok, rel_frobenius_err=rel, bound=tol))
    print(f"{'PASS' if ok else 'FAIL'} {name}: rel_frobenius_err={rel:.3e} bound={tol:.1e}", flush=True)
    return ok


def guarded(name, fn):
    try:
        fn()
    except Exception as e:  # a crash in one group is a failure, and the others still run
        RESULTS.append(dict(check=name, ok=False, error=str(e)))
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, device=DEV, dtype=torch.float64) * scale).float()


def contiguous_strides(shape):
    s, out = 1, []
    for d in reversed(shape):
        out.append(s)
        s *= d
    return list(reversed(out))


def broadcast_strides(shape, out_shape):
    st = contiguous_strides(shape)
    pad = len(out_shape) - len(shape)
    return [0] * pad + [0 if shape[i] == 1 and out_shape[pad + i] != 1 else st[i] for i in range(len(shape))]


# ---- kernels ------------------------------------------------------------------------------

def check_elementwise(lib):
    sa_shape, sb_shape = [4, 1, 5], [3, 1]
    out_shape = [4, 3, 5]
    for name, op in OPS_BINARY.items():
        a = randn(*sa_shape)
        b = randn(*sb_shape) if name != "div" else (torch.rand(*sb_shape, device=DEV) + 0.5)
        out = torch.empty(out_shape, device=DEV)
        sh, sa, sb = dims(out_shape), dims(broadcast_strides(sa_shape, out_shape)), dims(broadcast_strides(sb_shape, out_shape))
        lib.binary_forward(op, 3, sh, sa, sb, p(a), p(b), p(out))
        ad, bd = a.double().requires_grad_(), b.double().requires_grad_()
        ref = {"add": ad + bd, "sub": ad - bd, "mul": ad * bd, "div": ad / bd}[name]
        check(f"binary_forward {name} {sa_shape}x{sb_shape}", out, ref)
        g = randn(*out_shape)
        ga, gb = torch.zeros_like(a), torch.zeros_like(b)
        lib.binary_backward(op, 3, sh, sa, sb, p(a), p(b), p(g), p(ga), p(gb))
        ref.backward(g.double())
        check(f"binary_backward {name} grad a", ga, ad.grad)
        check(f"binary_backward {name} grad b (broadcast, summed)", gb, bd.grad)
    n = 10007
    for name, op in OPS_UNARY.items():
        x = torch.rand(n, device=DEV) + 0.1 if name in ("log", "sqrt") else randn(n)
        alpha = {"scale": 0.7, "addScalar": 0.3}.get(name, 0.0)
        y = torch.empty_like(x)
        lib.unary_forward(op, n, p(x), p(y), alpha)
        xd = x.double().requires_grad_()
        ref = {"exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "relu": torch.relu, "neg": torch.neg,
               "scale": lambda v: v * alpha, "addScalar": lambda v: v + alpha, "sqrt": torch.sqrt,
               "sigmoid": torch.sigmoid}[name](xd)
        check(f"unary_forward {name}", y, ref)
        gy = randn(n)
        gx = torch.full_like(x, 0.5)
        lib.unary_backward(op, n, p(x), p(y), p(gy), p(gx), alpha, 1)
        ref.backward(gy.double())
        check(f"unary_backward {name} (accumulating)", gx, xd.grad + 0.5)
    x = randn(n, scale=2.0)
    y = torch.empty_like(x)
    lib.gelu_forward(n, p(x), p(y))
    xd = x.double().requires_grad_()
    ref = F.gelu(xd, approximate="tanh")
    check("gelu_forward", y, ref)
    gy, gx = randn(n), torch.empty_like(x)
    lib.gelu_backward(n, p(x), p(gy), p(gx), 0)
    ref.backward(gy.double())
    check("gelu_backward", gx, xd.grad)


def dropout_mask(n, prob, seed):
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15) * i
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return torch.from_numpy(u >= np.float32(prob)).to(DEV)


def check_misc(lib):
    n, prob, seed = 50000, 0.1, 1234567
    x, y = randn(n), torch.empty(n, device=DEV)
    lib.dropout_forward(n, p(x), p(y), prob, seed)
    keep = dropout_mask(n, prob, seed)
    check("dropout_forward (the CPU's counter-based mask)", y, torch.where(keep, x.double() / (1 - prob), 0.0))
    gy, gx = randn(n), torch.empty(n, device=DEV)
    lib.dropout_backward(n, p(gy), p(gx), prob, seed, 0)
    check("dropout_backward", gx, torch.where(keep, gy.double() / (1 - prob), 0.0))
    t = torch.empty(1000, device=DEV)
    lib.fill(1000, p(t), 2.5)
    check("fill", t, torch.full((1000,), 2.5, dtype=torch.float64, device=DEV))
    a, b = randn(1000), randn(1000)
    want = b.double() + 0.3 * a.double()
    lib.axpy(1000, 0.3, p(a), p(b))
    check("axpy", b, want)
    src = randn(6, 7, 5)
    dst = torch.empty(5, 6, 7, device=DEV)
    lib.copy_strided(3, dims([5, 6, 7]), dims([1, 35, 5]), p(src), p(dst))
    check("copy_strided (permute 2,0,1)", dst, src.double().permute(2, 0, 1))
    x = randn(123457)
    out = ctypes.c_double()
    lib.sum_squares(x.numel(), p(x), ctypes.byref(out))
    check("sum_squares", torch.tensor([out.value]), torch.tensor([(x.double() ** 2).sum().item()]))
    n = 4099
    prm, g, m, v = randn(n), randn(n), randn(n, scale=0.1), torch.rand(n, device=DEV) * 0.01
    ref = [t.double().clone() for t in (prm, g, m, v)]
    lr, b1, b2, eps, wd, step = 1e-3, 0.9, 0.95, 1e-8, 0.1, 3
    bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
    lib.adamw_step(n, p(prm), p(g), p(m), p(v), lr, b1, b2, eps, wd, bc1, bc2)
    rp, rg, rm, rv = ref
    rm = b1 * rm + (1 - b1) * rg
    rv = b2 * rv + (1 - b2) * rg * rg
    rp = rp - lr * (rm / bc1 / ((rv / bc2).sqrt() + eps) + wd * rp)
    check("adamw_step param", prm, rp)
    check("adamw_step m", m, rm)
    check("adamw_step v", v, rv)
    x = randn(1000)
    h = torch.empty(1000, dtype=torch.bfloat16, device=DEV)
    back = torch.empty(1000, device=DEV)
    lib.to_bf16(1000, p(x), p(h))
    lib.from_bf16(1000, p(h), p(back))
    check("to_bf16 / from_bf16 round trip", back, x.bfloat16().double(), tol=0.0)


def check_reduce(lib):
    x = randn(6, 7, 5)
    for name, op in (("sum", SUM), ("mean", MEAN), ("max", MAX)):
        out = torch.empty(6, 5, device=DEV)
        lib.reduce_forward(op, 6, 7, 5, p(x), p(out))
        xd = x.double().requires_grad_()
        ref = {"sum": lambda: xd.sum(1), "mean": lambda: xd.mean(1), "max": lambda: xd.max(1).values}[name]()
        check(f"reduce_forward {name} axis 1 of [6,7,5]", out, ref)
        rows = torch.empty(6, device=DEV)
        lib.reduce_forward(op, 6, 35, 1, p(x), p(rows))
        flat = x.double().reshape(6, 35)
        check(f"reduce_forward {name} rows of [6,35]", rows, {"sum": flat.sum(1), "mean": flat.mean(1), "max": flat.max(1).values}[name])
        if op != MAX:
            g = randn(6, 5)
            gx = torch.empty_like(x)
            lib.reduce_backward(op, 6, 7, 5, p(g), p(gx), 0)
            ref.backward(g.double())
            check(f"reduce_backward {name}", gx, xd.grad)
    x = randn(37, 1000, scale=3.0)
    y = torch.empty_like(x)
    lib.softmax_forward(37, 1000, p(x), p(y))
    xd = x.double().requires_grad_()
    ref = torch.softmax(xd, -1)
    check("softmax_forward [37,1000]", y, ref)
    gy, gx = randn(37, 1000), torch.empty_like(x)
    lib.softmax_backward(37, 1000, p(y), p(gy), p(gx), 0)
    ref.backward(gy.double())
    check("softmax_backward", gx, xd.grad)
    rows, C = 64, 768
    x, w, b = randn(rows, C, scale=2.0), randn(C), randn(C)
    y, mean, rstd = torch.empty_like(x), torch.empty(rows, device=DEV), torch.empty(rows, device=DEV)
    lib.layernorm_forward(rows, C, p(x), p(w), p(b), 1e-5, p(y), p(mean), p(rstd))
    xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
    ref = F.layer_norm(xd, (C,), wd, bd, 1e-5)
    check("layernorm_forward [64,768]", y, ref)
    check("layernorm_forward saved mean", mean, xd.detach().mean(-1))
    gy = randn(rows, C)
    gx, gw, gb = torch.empty_like(x), torch.zeros(C, device=DEV), torch.zeros(C, device=DEV)
    lib.layernorm_backward(rows, C, p(x), p(w), p(mean), p(rstd), p(gy), p(gx), p(gw), p(gb), 0)
    ref.backward(gy.double())
    check("layernorm_backward dx", gx, xd.grad)
    check("layernorm_backward dweight", gw, wd.grad)
    check("layernorm_backward dbias", gb, bd.grad)


def check_embedding_ce(lib):
    V, C, n = 50, 16, 200
    ids = torch.randint(0, V, (n,), device=DEV, dtype=torch.int32)
    table = randn(V, C)
    out = torch.empty(n, C, device=DEV)
    lib.embedding_forward(n, C, V, p(ids), p(table), p(out))
    td = table.double().requires_grad_()
    ref = td[ids.long()]
    check("embedding_forward", out, ref)
    g = randn(n, C)
    gt = torch.zeros_like(table)
    lib.embedding_backward(n, C, V, p(ids), p(g), p(gt))
    ref.backward(g.double())
    check("embedding_backward (scatter-add, repeated ids)", gt, td.grad)
    N, V = 64, 1000
    logits = randn(N, V, scale=2.0)
    targets = torch.randint(0, V, (N,), device=DEV, dtype=torch.int32)
    targets[::7] = -1
    lse, losses = torch.empty(N, device=DEV), torch.empty(N, device=DEV)
    total = ctypes.c_double()
    lib.cross_entropy_forward(N, V, p(logits), p(targets), p(lse), p(losses), ctypes.byref(total))
    ld = logits.double().requires_grad_()
    count = int((targets >= 0).sum().item())
    ref = F.cross_entropy(ld, targets.long(), ignore_index=-1, reduction="sum")
    check("cross_entropy_forward lse", lse, torch.logsumexp(ld.detach(), -1))
    check("cross_entropy_forward total (ignored targets)", torch.tensor([total.value]), ref.detach().cpu().reshape(1))
    gl = torch.empty_like(logits)
    lib.cross_entropy_backward(N, V, p(logits), p(targets), p(lse), 1.0 / count, p(gl))
    (ref / count).backward()
    check("cross_entropy_backward (mean over kept targets)", gl, ld.grad)


def attention_ref(q, k, v, nh, causal, scale):
    B, Tq, C = q.shape
    Tk = k.shape[1]
    hs = C // nh
    qh, kh, vh = (t.reshape(B, -1, nh, hs).transpose(1, 2) for t in (q, k, v))
    s = (qh @ kh.transpose(-1, -2)) * scale
    if causal:
        mask = torch.ones(Tq, Tk, dtype=torch.bool, device=DEV).tril(Tk - Tq)
        s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, -1)
    o = (torch.softmax(s, -1) @ vh).transpose(1, 2).reshape(B, Tq, C)
    return o, lse


def check_attention(lib):
    cases = [(2, 97, 97, 3, 16, True), (2, 97, 97, 3, 64, True), (1, 70, 70, 2, 128, True), (2, 50, 97, 2, 48, False),
             (2, 5, 40, 2, 64, True)]
    for B, Tq, Tk, NH, HS, causal in cases:
        C = NH * HS
        scale = 1.0 / math.sqrt(HS)
        q, k, v = randn(B, Tq, C), randn(B, Tk, C), randn(B, Tk, C)
        o, lse = torch.empty(B, Tq, C, device=DEV), torch.empty(B, NH, Tq, device=DEV)
        dd = dims([B, Tq, Tk, NH, HS])
        lib.attention_forward(dd, scale, int(causal), p(q), Tq * C, C, p(k), Tk * C, C, p(v), Tk * C, C, p(o), Tq * C, C, p(lse))
        qd, kd, vd = (t.double().requires_grad_() for t in (q, k, v))
        ro, rl = attention_ref(qd, kd, vd, NH, causal, scale)
        tag = f"B={B} Tq={Tq} Tk={Tk} NH={NH} HS={HS} {'causal' if causal else 'full'}"
        check(f"attention_forward out {tag}", o, ro)
        check(f"attention_forward lse {tag}", lse, rl)
        go = randn(B, Tq, C)
        gq, gk, gv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        lib.attention_backward(dd, scale, int(causal), p(q), Tq * C, C, p(k), Tk * C, C, p(v), Tk * C, C, p(o), Tq * C, C,
                               p(lse), p(go), p(gq), p(gk), p(gv), 0)
        ro.backward(go.double())
        check(f"attention_backward dq {tag}", gq, qd.grad)
        check(f"attention_backward dk {tag}", gk, kd.grad)
        check(f"attention_backward dv {tag}", gv, vd.grad)
    # The fused c_attn layout [B, T, 3C], read and written in place (GPT's path).
    B, T, NH, HS = 2, 64, 4, 32
    C = NH * HS
    qkv = randn(B, T, 3 * C)
    o, lse = torch.empty(B, T, C, device=DEV), torch.empty(B, NH, T, device=DEV)
    dd = dims([B, T, T, NH, HS])
    base = qkv.data_ptr()
    at = lambda t, off: ctypes.c_void_p(t.data_ptr() + 4 * off)
    lib.attention_forward(dd, 1 / math.sqrt(HS), 1, at(qkv, 0), T * 3 * C, 3 * C, at(qkv, C), T * 3 * C, 3 * C, at(qkv, 2 * C),
                          T * 3 * C, 3 * C, p(o), T * C, C, p(lse))
    xd = qkv.double().requires_grad_()
    ro, _ = attention_ref(xd[..., :C], xd[..., C:2 * C], xd[..., 2 * C:], NH, True, 1 / math.sqrt(HS))
    check("attention_forward fused qkv [2,64,3*128]", o, ro)
    go = randn(B, T, C)
    gx = torch.empty_like(qkv)
    lib.attention_backward(dd, 1 / math.sqrt(HS), 1, at(qkv, 0), T * 3 * C, 3 * C, at(qkv, C), T * 3 * C, 3 * C, at(qkv, 2 * C),
                           T * 3 * C, 3 * C, p(o), T * C, C, p(lse), p(go), at(gx, 0), at(gx, C), at(gx, 2 * C), 0)
    ro.backward(go.double())
    check("attention_backward fused qkv", gx, xd.grad)
    assert base == qkv.data_ptr()


def gemm_ref(A, B, ta, tb, alpha, beta, C0, bias):
    a = A.double().transpose(-1, -2) if ta else A.double()
    b = B.double().transpose(-1, -2) if tb else B.double()
    r = alpha * (a @ b) + beta * C0.double()
    return r + bias.double() if bias is not None else r


def check_gemm(lib):
    lt = lib.raw("cublaslt_available")() == 1
    print(f"INFO cuBLASLt loaded: {'yes' if lt else 'no (set PLINTH_CUBLASLT to libcublasLt.so)'}", flush=True)
    backends = [("own", 1)] + ([("cublasLt", 2)] if lt else [])
    M, N, K, batch = 67, 45, 129, 3
    for bname, bk in backends:
        lib.set_gemm_backend(bk)
        for ta in (0, 1):
            for tb in (0, 1):
                A = randn(batch, *((K, M) if ta else (M, K)))
                B = randn(batch, *((N, K) if tb else (K, N)))
                C = randn(batch, M, N)
                bias = randn(N) if bk == 1 else None
                want = gemm_ref(A, B, ta, tb, 0.5, 0.25, C, bias)
                lda, ldb = A.shape[-1], B.shape[-1]
                lib.gemm(ta, tb, M, N, K, batch, 0.5, 0.25, p(A), lda, A[0].numel(), p(B), ldb, B[0].numel(), p(C), N, M * N,
                         p(bias), None)
                check(f"gemm fp32 {bname} ta={ta} tb={tb} [{batch}x{M}x{K}]@[{K}x{N}] alpha=0.5 beta=0.25"
                      f"{' +bias' if bias is not None else ''}", C, want)
        A, B = randn(300, 40), randn(300, 70)
        C, colsum = torch.zeros(40, 70, device=DEV), torch.full((70,), 1.0, device=DEV)
        lib.gemm(1, 0, 40, 70, 300, 1, 1.0, 1.0, p(A), 40, 0, p(B), 70, 0, p(C), 70, 0, None, p(colsum))
        check(f"gemm fp32 {bname} dW = x^T g with colsum (bias gradient)", C, A.double().T @ B.double())
        check(f"gemm fp32 {bname} colsum accumulates", colsum, B.double().sum(0) + 1.0)
    lib.set_gemm_backend(0)
    for bname, bk in backends:
        for (M, N, K) in ((256, 192, 320), (100, 70, 50)):
            for ta in (0, 1):
                for tb in (0, 1):
                    A = randn(*((K, M) if ta else (M, K))).bfloat16()
                    B = randn(*((N, K) if tb else (K, N))).bfloat16()
                    C = torch.empty(M, N, device=DEV)
                    lib.gemm_bf16(bk, ta, tb, M, N, K, 1, 1.0, 0.0, p(A), A.shape[-1], 0, p(B), B.shape[-1], 0, p(C), N, 0)
                    a = A.T if ta else A
                    b = B.T if tb else B
                    tag = f"gemm bf16 {bname} ta={ta} tb={tb} {M}x{N}x{K}"
                    check_rel(f"{tag} vs float64 of the bf16 operands", C, a.double() @ b.double(), 1e-3)
                    check_rel(f"{tag} vs torch.matmul bf16", C, (a @ b).float(), 1e-2)
    lib.set_autocast(1)
    A, B = randn(128, 96), randn(96, 80)
    C = torch.empty(128, 80, device=DEV)
    lib.gemm(0, 0, 128, 80, 96, 1, 1.0, 0.0, p(A), 96, 0, p(B), 80, 0, p(C), 80, 0, None, None)
    check_rel("gemm autocast (fp32 operands through bf16 tensor cores)", C, A.bfloat16().double() @ B.bfloat16().double(), 1e-3)
    lib.set_autocast(0)


# ---- GPT composed from the kernels ---------------------------------------------------------

class KernelGPT:
    """GPT-2 (pre-LN, tied embeddings, weights [in, out] like GPT-2's Conv1D) on the C ABI."""

    def __init__(self, lib, V, C, NH, L, Tmax, seed=0):
        g = torch.Generator(device=DEV).manual_seed(seed)
        r = lambda *s, std=0.02: (torch.randn(*s, device=DEV, generator=g) * std)
        self.lib, self.V, self.C, self.NH, self.L = lib, V, C, NH, L
        self.params = {"wte": r(V, C), "wpe": r(Tmax, C, std=0.01)}
        for l in range(L):
            pre = f"h.{l}."
            self.params.update({
                pre + "ln_1.w": 1 + r(C, std=0.1), pre + "ln_1.b": r(C), pre + "attn.c_attn.w": r(C, 3 * C),
                pre + "attn.c_attn.b": r(3 * C), pre + "attn.c_proj.w": r(C, C), pre + "attn.c_proj.b": r(C),
                pre + "ln_2.w": 1 + r(C, std=0.1), pre + "ln_2.b": r(C), pre + "mlp.c_fc.w": r(C, 4 * C),
                pre + "mlp.c_fc.b": r(4 * C), pre + "mlp.c_proj.w": r(4 * C, C), pre + "mlp.c_proj.b": r(C)})
        self.params.update({"ln_f.w": 1 + r(C, std=0.1), "ln_f.b": r(C)})
        self.grads = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.m = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.steps = 0

    def _f(self, name, *args):
        fn = self.lib.raw(name)
        if fn(*args) != 0:
            raise RuntimeError(f"{name}: {self.lib.raw('last_error')().decode()}")

    def linear(self, x, w, b, rows, inf, outf, out):
        self._f("gemm", 0, 0, rows, outf, inf, 1, 1.0, 0.0, p(x), inf, 0, p(w), outf, 0, p(out), outf, 0, p(b), None)

    def linear_back(self, x, w, g, rows, inf, outf, gx, gw, gb):
        # dx = g W^T; dW += x^T g (colsum: db += column sums of g)
        self._f("gemm", 0, 1, rows, inf, outf, 1, 1.0, 0.0, p(g), outf, 0, p(w), outf, 0, p(gx), inf, 0, None, None)
        self._f("gemm", 1, 0, inf, outf, rows, 1, 1.0, 1.0, p(x), inf, 0, p(g), outf, 0, p(gw), outf, 0, None, p(gb))

    def step(self, ids, targets, train=True, lr=3e-4):
        """Forward, backward and (with train) one AdamW step; returns the mean loss."""
        P, G = self.params, self.grads
        B, T = ids.shape
        C, NH, V, R = self.C, self.NH, self.V, B * T
        HS = C // NH
        e = lambda *s: torch.empty(*s, device=DEV)
        pos = torch.arange(T, device=DEV, dtype=torch.int32).repeat(B)
        x = e(R, C)
        tok = e(R, C)
        self._f("embedding_forward", R, C, V, p(ids), p(P["wte"]), p(tok))
        self._f("embedding_forward", R, C, T, p(pos), p(P["wpe"]), p(x))
        self._f("axpy", R * C, 1.0, p(tok), p(x))
        saved = []
        dd = dims([B, T, T, NH, HS])
        for l in range(self.L):
            pre = f"h.{l}."
            s = {"x": x}
            s["ln1"], s["m1"], s["r1"] = e(R, C), e(R), e(R)
            self._f("layernorm_forward", R, C, p(x), p(P[pre + "ln_1.w"]), p(P[pre + "ln_1.b"]), 1e-5, p(s["ln1"]), p(s["m1"]), p(s["r1"]))
            s["qkv"] = e(R, 3 * C)
            self.linear(s["ln1"], P[pre + "attn.c_attn.w"], P[pre + "attn.c_attn.b"], R, C, 3 * C, s["qkv"])
            s["att"], s["lse"] = e(R, C), e(B, NH, T)
            q = s["qkv"].data_ptr()
            self._f("attention_forward", dd, 1 / math.sqrt(HS), 1, P_(q), T * 3 * C, 3 * C, P_(q + 4 * C), T * 3 * C, 3 * C,
                    P_(q + 8 * C), T * 3 * C, 3 * C, p(s["att"]), T * C, C, p(s["lse"]))
            x1 = e(R, C)
            self.linear(s["att"], P[pre + "attn.c_proj.w"], P[pre + "attn.c_proj.b"], R, C, C, x1)
            self._f("axpy", R * C, 1.0, p(x), p(x1))
            s["x1"] = x1
            s["ln2"], s["m2"], s["r2"] = e(R, C), e(R), e(R)
            self._f("layernorm_forward", R, C, p(x1), p(P[pre + "ln_2.w"]), p(P[pre + "ln_2.b"]), 1e-5, p(s["ln2"]), p(s["m2"]), p(s["r2"]))
            s["h"], s["gelu"] = e(R, 4 * C), e(R, 4 * C)
            self.linear(s["ln2"], P[pre + "mlp.c_fc.w"], P[pre + "mlp.c_fc.b"], R, C, 4 * C, s["h"])
            self._f("gelu_forward", R * 4 * C, p(s["h"]), p(s["gelu"]))
            x2 = e(R, C)
            self.linear(s["gelu"], P[pre + "mlp.c_proj.w"], P[pre + "mlp.c_proj.b"], R, 4 * C, C, x2)
            self._f("axpy", R * C, 1.0, p(x1), p(x2))
            saved.append(s)
            x = x2
        lnf, mf, rf = e(R, C), e(R), e(R)
        self._f("layernorm_forward", R, C, p(x), p(P["ln_f.w"]), p(P["ln_f.b"]), 1e-5, p(lnf), p(mf), p(rf))
        logits = e(R, V)
        self._f("gemm", 0, 1, R, V, C, 1, 1.0, 0.0, p(lnf), C, 0, p(P["wte"]), C, 0, p(logits), V, 0, None, None)
        lse, losses = e(R), e(R)
        total = ctypes.c_double()
        tg = targets.reshape(-1)
        self._f("cross_entropy_forward", R, V, p(logits), p(tg), p(lse), p(losses), ctypes.byref(total))
        loss = total.value / R
        # backward (glogits overwrite logits in place, as the CPU kernel allows)
        for g in G.values():
            self._f("fill", g.numel(), p(g), 0.0)
        self._f("cross_entropy_backward", R, V, p(logits), p(tg), p(lse), 1.0 / R, p(logits))
        glnf = e(R, C)
        self._f("gemm", 0, 0, R, C, V, 1, 1.0, 0.0, p(logits), V, 0, p(P["wte"]), C, 0, p(glnf), C, 0, None, None)
        self._f("gemm", 1, 0, V, C, R, 1, 1.0, 1.0, p(logits), V, 0, p(lnf), C, 0, p(G["wte"]), C, 0, None, None)
        gx = e(R, C)
        self._f("layernorm_backward", R, C, p(x), p(P["ln_f.w"]), p(mf), p(rf), p(glnf), p(gx), p(G["ln_f.w"]), p(G["ln_f.b"]), 0)
        for l in reversed(range(self.L)):
            pre, s = f"h.{l}.", saved[l]
            # x2 = x1 + proj(gelu(fc(ln2(x1)))): gx flows to x1 directly and through the MLP
            ggelu, gh, gln2 = e(R, 4 * C), e(R, 4 * C), e(R, C)
            self.linear_back(s["gelu"], P[pre + "mlp.c_proj.w"], gx, R, 4 * C, C, ggelu, G[pre + "mlp.c_proj.w"], G[pre + "mlp.c_proj.b"])
            self._f("gelu_backward", R * 4 * C, p(s["h"]), p(ggelu), p(gh), 0)
            self.linear_back(s["ln2"], P[pre + "mlp.c_fc.w"], gh, R, C, 4 * C, gln2, G[pre + "mlp.c_fc.w"], G[pre + "mlp.c_fc.b"])
            self._f("layernorm_backward", R, C, p(s["x1"]), p(P[pre + "ln_2.w"]), p(s["m2"]), p(s["r2"]), p(gln2), p(gx),
                    p(G[pre + "ln_2.w"]), p(G[pre + "ln_2.b"]), 1)
            gatt, gqkv, gln1 = e(R, C), e(R, 3 * C), e(R, C)
            self.linear_back(s["att"], P[pre + "attn.c_proj.w"], gx, R, C, C, gatt, G[pre + "attn.c_proj.w"], G[pre + "attn.c_proj.b"])
            q, gq = s["qkv"].data_ptr(), gqkv.data_ptr()
            self._f("attention_backward", dd, 1 / math.sqrt(HS), 1, P_(q), T * 3 * C, 3 * C, P_(q + 4 * C), T * 3 * C, 3 * C,
                    P_(q + 8 * C), T * 3 * C, 3 * C, p(s["att"]), T * C, C, p(s["lse"]), p(gatt), P_(gq), P_(gq + 4 * C),
                    P_(gq + 8 * C), 0)
            self.linear_back(s["ln1"], P[pre + "attn.c_attn.w"], gqkv, R, C, 3 * C, gln1, G[pre + "attn.c_attn.w"], G[pre + "attn.c_attn.b"])
            self._f("layernorm_backward", R, C, p(s["x"]), p(P[pre + "ln_1.w"]), p(s["m1"]), p(s["r1"]), p(gln1), p(gx),
                    p(G[pre + "ln_1.w"]), p(G[pre + "ln_1.b"]), 1)
        self._f("embedding_backward", R, C, V, p(ids), p(gx), p(G["wte"]))
        self._f("embedding_backward", R, C, T, p(pos), p(gx), p(G["wpe"]))
        if train:
            self.steps += 1
            b1, b2 = 0.9, 0.95
            for k in P:
                wd = 0.1 if P[k].dim() >= 2 else 0.0
                self._f("adamw_step", P[k].numel(), p(P[k]), p(G[k]), p(self.m[k]), p(self.v[k]), lr, b1, b2, 1e-8, wd,
                        1 - b1 ** self.steps, 1 - b2 ** self.steps)
        return loss


def P_(addr):
    return ctypes.c_void_p(addr)


class TorchGPT(torch.nn.Module):
    """The same GPT-2 in PyTorch (reference for parity, and the speed peer)."""

    def __init__(self, params, NH, L, dtype=torch.float64):
        super().__init__()
        self.NH, self.L = NH, L
        self.p = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(v.detach().to(dtype).clone()) for k, v in params.items()})

    def w(self, name):
        return self.p[name.replace(".", "_")]

    def forward(self, ids, targets):
        B, T = ids.shape
        C = self.w("wte").shape[1]
        x = self.w("wte")[ids] + self.w("wpe")[:T]
        for l in range(self.L):
            pre = f"h.{l}."
            h = F.layer_norm(x, (C,), self.w(pre + "ln_1.w"), self.w(pre + "ln_1.b"), 1e-5)
            qkv = h @ self.w(pre + "attn.c_attn.w") + self.w(pre + "attn.c_attn.b")
            q, k, v = (t.reshape(B, T, self.NH, C // self.NH).transpose(1, 2) for t in qkv.split(C, -1))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + a @ self.w(pre + "attn.c_proj.w") + self.w(pre + "attn.c_proj.b")
            h = F.layer_norm(x, (C,), self.w(pre + "ln_2.w"), self.w(pre + "ln_2.b"), 1e-5)
            h = F.gelu(h @ self.w(pre + "mlp.c_fc.w") + self.w(pre + "mlp.c_fc.b"), approximate="tanh")
            x = x + h @ self.w(pre + "mlp.c_proj.w") + self.w(pre + "mlp.c_proj.b")
        x = F.layer_norm(x, (C,), self.w("ln_f.w"), self.w("ln_f.b"), 1e-5)
        logits = x @ self.w("wte").T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long())


def check_gpt_parity(lib):
    V, C, NH, L, T, B = 96, 64, 4, 2, 33, 3
    model = KernelGPT(lib, V, C, NH, L, T, seed=1)
    ids = torch.randint(0, V, (B, T), device=DEV, dtype=torch.int32)
    targets = torch.randint(0, V, (B, T), device=DEV, dtype=torch.int32)
    ref = TorchGPT(model.params, NH, L, torch.float64)
    loss = model.step(ids, targets, train=False)
    torch.cuda.synchronize()
    rloss = ref(ids.long(), targets)
    rloss.backward()
    check("gpt parity: tiny GPT-2 loss (kernels vs PyTorch float64)", torch.tensor([loss]), rloss.detach().cpu().reshape(1))
    worst = max(((model.grads[k].double() - ref.w(k).grad).abs().max().item() /
                 max(1.0, ref.w(k).grad.abs().max().item()), k) for k in model.params)
    ok = worst[0] <= 1e-4
    RESULTS.append(dict(check="gpt parity: every gradient", ok=ok, worst=worst[1], max_scaled_err=worst[0]))
    print(f"{'PASS' if ok else 'FAIL'} gpt parity: all {len(model.params)} gradients (worst {worst[1]}: {worst[0]:.3e}, bound 1e-4)", flush=True)


def check_bf16_tracking(lib):
    """200 steps with bf16 GEMMs (autocast, fp32 master weights and optimizer) beside 200 fp32 steps
    on the same batches: the loss curves, averaged over windows of 10 steps, within 1% of each other."""
    V, C, NH, L, T, B, steps = 512, 256, 4, 4, 128, 16, 200
    g = torch.Generator(device=DEV).manual_seed(5)

    def batch():
        # Half the next tokens follow x -> 5x + 3 (mod V), half are uniform: a loss floor near 3.8 nats.
        x = [torch.randint(0, V, (B, 1), device=DEV, generator=g)]
        for _ in range(T):
            rule = (x[-1] * 5 + 3) % V
            noise = torch.randint(0, V, (B, 1), device=DEV, generator=g)
            x.append(torch.where(torch.rand(B, 1, device=DEV, generator=g) < 0.5, rule, noise))
        s = torch.cat(x, 1).int()
        return s[:, :T].contiguous(), s[:, 1:].contiguous()

    batches = [batch() for _ in range(steps)]
    curves = []
    for autocast in (0, 1):
        lib.set_autocast(autocast)
        model = KernelGPT(lib, V, C, NH, L, T, seed=3)
        curves.append([model.step(x, y, lr=1e-3) for x, y in batches])
        del model
    lib.set_autocast(0)
    fp32, bf16 = (np.array(c).reshape(-1, 10).mean(1) for c in curves)
    gap = float(np.max(np.abs(bf16 - fp32) / fp32))
    learned = fp32[-1] < 0.8 * fp32[0]
    ok = gap <= 0.01 and learned
    RESULTS.append(dict(check="bf16 training tracks fp32", ok=ok, max_rel_gap=gap, fp32_first=float(fp32[0]), fp32_last=float(fp32[-1]),
                        bf16_last=float(bf16[-1])))
    print(f"{'PASS' if ok else 'FAIL'} 200-step training with bf16 GEMMs tracks fp32: max gap {100 * gap:.2f}% over 10-step windows "
          f"(bound 1%); fp32 loss {fp32[0]:.3f} -> {fp32[-1]:.3f}, bf16 -> {bf16[-1]:.3f}", flush=True)


# ---- speed -----------------------------------------------------------------------------------

def timed(fn, sync, iters, warmup=2):
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters


def speed_gemm(lib, quick):
    lt = lib.raw("cublaslt_available")() == 1
    gemm16 = lib.raw("gemm_bf16")
    sync_ours = lib.raw("synchronize")
    shapes = [("square 4096^3", 4096, 4096, 4096, 0, 0)]
    if not quick:
        R = 8 * 1024
        shapes += [("c_attn fwd", R, 2304, 768, 0, 0), ("attn c_proj fwd", R, 768, 768, 0, 0), ("c_fc fwd", R, 3072, 768, 0, 0),
                   ("mlp c_proj fwd", R, 768, 3072, 0, 0), ("c_fc dX (g W^T)", R, 768, 3072, 0, 1),
                   ("c_fc dW (x^T g)", 768, 3072, R, 1, 0), ("lm head fwd", R, 50304, 768, 0, 1)]
    out = []
    for name, M, N, K, ta, tb in shapes:
        A = torch.randn(*((K, M) if ta else (M, K)), device=DEV).bfloat16()
        B = torch.randn(*((N, K) if tb else (K, N)), device=DEV).bfloat16()
        C = torch.empty(M, N, device=DEV)
        flops = 2.0 * M * N * K
        row = dict(shape=name, M=M, N=N, K=K)
        a, b = (A.T if ta else A), (B.T if tb else B)
        row["torch_tflops"] = flops / timed(lambda: torch.matmul(a, b), torch.cuda.synchronize, 10) / 1e12
        for bname, bk in [("own", 1)] + ([("cublaslt", 2)] if lt else []):
            f = lambda: gemm16(bk, ta, tb, M, N, K, 1, 1.0, 0.0, p(A), A.shape[-1], 0, p(B), B.shape[-1], 0, p(C), N, 0)
            torch.cuda.synchronize()
            row[f"{bname}_tflops"] = flops / timed(f, sync_ours, 10) / 1e12
        ratios = " ".join(f"{k[:-7]}/torch={row[k] / row['torch_tflops']:.2f}" for k in row if k.endswith("_tflops") and k != "torch_tflops")
        print(f"SPEED gemm bf16 {name} [{M}x{K}]@[{K}x{N}]: torch.matmul {row['torch_tflops']:.1f} TFLOP/s, "
              + ", ".join(f"{k[:-7]} {row[k]:.1f}" for k in row if k.endswith("_tflops") and k != "torch_tflops")
              + f" ({ratios})", flush=True)
        out.append(row)
    return out


def peak_bf16(name):
    for key, peak in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12), ("A10", 125e12)):
        if key in name:
            return peak
    return None


def speed_gpt(lib, quick, compile_too):
    V, C, NH, L, T, B = 50304, 768, 12, 12, 1024, 8
    steps = 3 if quick else 8
    name = torch.cuda.get_device_name()
    peak = peak_bf16(name)
    model = KernelGPT(lib, V, C, NH, L, T)
    n_params = sum(v.numel() for v in model.params.values())
    flops_per_token = 6 * n_params + 12 * L * C * T
    ids = torch.randint(0, V, (B, T), device=DEV, dtype=torch.int32)
    targets = torch.randint(0, V, (B, T), device=DEV, dtype=torch.int32)
    rows = []

    def report(impl, secs, losses=None):
        tps = B * T / secs
        mfu = flops_per_token * tps / peak if peak else None
        rows.append(dict(impl=impl, step_ms=secs * 1e3, tokens_per_s=tps, mfu=mfu))
        print(f"SPEED gpt2-124M train step B={B} T={T} {impl}: {secs * 1e3:.1f} ms, {tps:,.0f} tokens/s"
              + (f", MFU {100 * mfu:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16" if mfu else ""), flush=True)

    sync = lib.raw("synchronize")
    stats = (ctypes.c_int64 * 4)()
    both = lambda: (sync(), torch.cuda.synchronize())
    for autocast in (0, 1):
        lib.raw("set_autocast")(autocast)
        model.steps = 0
        for _ in range(2):  # warm-up: the allocator's size classes fill here
            model.step(ids, targets)
        both()
        lib.raw("memory_stats")(stats)
        mallocs = stats[3]
        torch.cuda.reset_peak_memory_stats()
        secs = timed(lambda: model.step(ids, targets), both, steps, warmup=0)
        lib.raw("memory_stats")(stats)
        report("plinth kernels " + ("bf16 GEMMs (autocast)" if autocast else "fp32"), secs)
        print(f"SPEED plinth memory ({'autocast' if autocast else 'fp32'}): {stats[3] - mallocs} cudaMalloc calls after warm-up "
              f"(the addon's allocator; 0 = steady state), its peak {stats[2] / 2**30:.2f} GiB; activations (torch-allocated here) "
              f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    lib.raw("set_autocast")(0)
    del model
    torch.cuda.empty_cache()
    ref_params = KernelGPT(lib, V, C, NH, L, T)
    for dtype_name, autocast in (("fp32", False), ("bf16 autocast", True)):
        tm = TorchGPT(ref_params.params, NH, L, torch.float32).to(DEV)
        opt = torch.optim.AdamW(tm.parameters(), lr=3e-4, weight_decay=0.1, fused=True)
        variants = [("eager", tm)]
        if compile_too and autocast:
            variants.append(("torch.compile", torch.compile(tm)))
        for vname, mod in variants:
            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    loss = mod(ids.long(), targets)
                loss.backward()
                opt.step()
            try:
                report(f"pytorch {vname} {dtype_name}", timed(step, torch.cuda.synchronize, steps, warmup=3 if vname == "eager" else 5))
            except Exception as e:
                print(f"SPEED pytorch {vname} {dtype_name}: failed ({type(e).__name__}: {str(e)[:200]})", flush=True)
        del tm, opt
        torch.cuda.empty_cache()
    return dict(device=name, params=n_params, rows=rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=os.path.join(os.path.dirname(__file__), "..", "native", "cuda", "build", "libplinth_cuda.so"))
    ap.add_argument("--quick", action="store_true", help="correctness and the 4096^3 GEMM only, a short GPT timing")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("cuda_check: PyTorch sees no CUDA GPU", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    lib = Lib(os.path.abspath(args.lib))
    # One stream for both sides: PyTorch's allocator may hand a freed tensor's memory to the next
    # torch op while a kernel of ours still reads it, unless both run in one stream order.
    lib.set_stream(ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
    name = ctypes.create_string_buffer(256)
    info = (ctypes.c_int64 * 5)()
    lib.raw("device_info")(0, name, 256, info)
    print(f"INFO device 0: {name.value.decode()}, {info[0] / 2**30:.1f} GiB, sm_{info[2]}{info[3]}, {info[4]} SMs; "
          f"torch {torch.__version__}", flush=True)
    t0 = time.time()
    for group, fn in (("elementwise", check_elementwise), ("misc", check_misc), ("reduce/softmax/layernorm", check_reduce),
                      ("embedding/cross-entropy", check_embedding_ce), ("attention", check_attention), ("gemm", check_gemm),
                      ("gpt parity", check_gpt_parity), ("bf16 tracking", check_bf16_tracking)):
        guarded(group, lambda: fn(lib))
    passed = sum(r["ok"] for r in RESULTS)
    print(f"INFO correctness: {passed}/{len(RESULTS)} checks passed in {time.time() - t0:.1f} s", flush=True)
    speed = {}
    if not args.no_speed:
        try:
            speed["gemm"] = speed_gemm(lib, args.quick)
            speed["gpt"] = speed_gpt(lib, args.quick, args.compile)
        except Exception as e:
            print(f"SPEED failed: {type(e).__name__}: {e}", flush=True)
    failed = [r["check"] for r in RESULTS if not r["ok"]]
    print("SUMMARY " + json.dumps(dict(passed=passed, total=len(RESULTS), failed=failed, speed=speed)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
