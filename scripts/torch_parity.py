#!/usr/bin/python3
"""Generate PyTorch golden fixtures for plinth's model-parity tests.

This script is run by hand, and its output is committed to the repository
(the test suite only reads the JSON fixture; it never needs PyTorch).

Setup (Debian/Ubuntu):

    apt-get install -y python3-torch libopenblas0-pthread

Run (use Debian's python, which is the one that has torch):

    /usr/bin/python3 scripts/torch_parity.py gpt
    /usr/bin/python3 scripts/torch_parity.py gpt --out test/fixtures/gpt_tiny.json

Each model is written by hand in plain torch (no `transformers`), following
the Hugging Face computation exactly, with Hugging Face parameter names and
layouts. Initial weights are drawn in float32 (so the stored float32 weights
are exactly the ones used), then all computation runs in float64 so the golden
values are more accurate than a float32 run would be; results are stored as
float32.

Fixture format (per model): config, initial params, inputs, logits, loss,
parameter gradients, and the losses / pre-clip grad norms of a short AdamW
training run on the same batch. Tensors are stored as
{"shape": [...], "data": base64(float32 little-endian)}.

To add a model (e.g. BERT, CLIP): write a `build_<name>` returning
(config, ordered params dict, forward fn, batch inputs), register it in
MODELS, and give it a default output path in DEFAULT_OUT.
"""

import argparse
import base64
import copy
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 1234
TRAIN_STEPS = 10
ADAMW = {"lr": 1e-2, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "clip": 1.0}


# ----------------------------------------------------------------------------
# helpers


def encode(t):
    """Tensor -> {"shape", "data": base64 of float32 little-endian}."""
    a = np.asarray(t.detach().cpu().float().numpy(), dtype="<f4")
    return {"shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def normal(shape, std, mean=0.0):
    # Drawn in float32 from the global (seeded) generator, then cast to float64,
    # so the float32 values written to the fixture are exactly the ones used.
    return (torch.randn(*shape, dtype=torch.float32) * std + mean).double()


def layer_norm(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu_tanh(x):
    # GPT-2's "gelu_new": 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def conv1d(x, w, b):
    # Hugging Face Conv1D: weight [in, out], y = x @ W + b
    return x @ w + b


# ----------------------------------------------------------------------------
# GPT-2


def build_gpt():
    cfg = {
        "model_type": "gpt2",
        "vocab_size": 32,
        "n_positions": 8,
        "n_embd": 16,
        "n_layer": 2,
        "n_head": 2,
        "layer_norm_epsilon": 1e-5,
    }
    B, T = 2, 8
    V, C, L, P = cfg["vocab_size"], cfg["n_embd"], cfg["n_layer"], cfg["n_positions"]

    torch.manual_seed(SEED)
    std = 0.02
    p = {}  # insertion order == fixture order
    p["transformer.wte.weight"] = normal((V, C), std)
    p["transformer.wpe.weight"] = normal((P, C), std)
    for i in range(L):
        h = f"transformer.h.{i}."
        p[h + "ln_1.weight"] = normal((C,), 0.1, 1.0)
        p[h + "ln_1.bias"] = normal((C,), std)
        p[h + "attn.c_attn.weight"] = normal((C, 3 * C), std)
        p[h + "attn.c_attn.bias"] = normal((3 * C,), std)
        p[h + "attn.c_proj.weight"] = normal((C, C), std)
        p[h + "attn.c_proj.bias"] = normal((C,), std)
        p[h + "ln_2.weight"] = normal((C,), 0.1, 1.0)
        p[h + "ln_2.bias"] = normal((C,), std)
        p[h + "mlp.c_fc.weight"] = normal((C, 4 * C), std)
        p[h + "mlp.c_fc.bias"] = normal((4 * C,), std)
        p[h + "mlp.c_proj.weight"] = normal((4 * C, C), std)
        p[h + "mlp.c_proj.bias"] = normal((C,), std)
    p["transformer.ln_f.weight"] = normal((C,), 0.1, 1.0)
    p["transformer.ln_f.bias"] = normal((C,), std)

    input_ids = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))

    eps = cfg["layer_norm_epsilon"]
    nh = cfg["n_head"]
    hs = C // nh

    def forward(p, idx):
        Bx, Tx = idx.shape
        x = p["transformer.wte.weight"][idx] + p["transformer.wpe.weight"][:Tx]
        mask = torch.ones(Tx, Tx, dtype=torch.bool).tril()  # key j <= query i kept
        for i in range(L):
            h = f"transformer.h.{i}."
            a = layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
            qkv = conv1d(a, p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"])
            q, k, v = qkv.split(C, dim=-1)
            q = q.view(Bx, Tx, nh, hs).transpose(1, 2)
            k = k.view(Bx, Tx, nh, hs).transpose(1, 2)
            v = v.view(Bx, Tx, nh, hs).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
            att = att.masked_fill(~mask, float("-inf"))
            att = torch.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(Bx, Tx, C)
            x = x + conv1d(y, p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"])
            m = layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
            m = gelu_tanh(conv1d(m, p[h + "mlp.c_fc.weight"], p[h + "mlp.c_fc.bias"]))
            x = x + conv1d(m, p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"])
        x = layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
        return x @ p["transformer.wte.weight"].t()  # lm_head tied to wte

    return {"config": cfg, "batch": B, "seq": T, "params": p,
            "input_ids": input_ids, "targets": targets, "forward": forward}


# ----------------------------------------------------------------------------
# generic driver: forward/backward golden values + short AdamW run


def loss_fn(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def make_fixture(spec):
    init = {k: v.clone() for k, v in spec["params"].items()}
    fwd, idx, tgt = spec["forward"], spec["input_ids"], spec["targets"]

    # 1. one forward/backward from the initial weights
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    logits = fwd(params, idx)
    loss = loss_fn(logits, tgt)
    loss.backward()
    grads = {k: encode(v.grad) for k, v in params.items()}

    # 2. AdamW training run on the same batch, from the same initial weights
    tparams = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    decay = [k for k, v in tparams.items() if v.dim() >= 2]
    no_decay = [k for k, v in tparams.items() if v.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": [tparams[k] for k in decay], "weight_decay": ADAMW["weight_decay"]},
         {"params": [tparams[k] for k in no_decay], "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"])
    plist = list(tparams.values())
    train_losses, grad_norms = [], []
    for _ in range(TRAIN_STEPS):
        l = loss_fn(fwd(tparams, idx), tgt)
        opt.zero_grad(set_to_none=True)
        l.backward()
        gn = torch.nn.utils.clip_grad_norm_(plist, ADAMW["clip"])
        opt.step()
        train_losses.append(float(l.item()))
        grad_norms.append(float(gn.item()))

    return {
        "config": spec["config"],
        "batch": spec["batch"],
        "seq": spec["seq"],
        "params": {k: encode(v) for k, v in init.items()},
        "input_ids": idx.tolist(),
        "targets": tgt.tolist(),
        "logits": encode(logits),
        "loss": float(loss.item()),
        "grads": grads,
        "adamw": {"lr": ADAMW["lr"], "betas": ADAMW["betas"], "eps": ADAMW["eps"],
                  "weight_decay": ADAMW["weight_decay"], "decay": decay, "clip": ADAMW["clip"]},
        "train_losses": train_losses,
        "grad_norms": grad_norms,
        "generator": "scripts/torch_parity.py",
        "torch_version": torch.__version__,
    }


MODELS = {"gpt": build_gpt}
DEFAULT_OUT = {"gpt": "test/fixtures/gpt_tiny.json"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default="gpt", choices=sorted(MODELS))
    ap.add_argument("--out", default=None, help="output path (default: %s)" % DEFAULT_OUT)
    args = ap.parse_args(argv)
    out = args.out or DEFAULT_OUT[args.model]

    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    fx = make_fixture(MODELS[args.model]())

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(fx, f, separators=(",", ":"))
        f.write("\n")

    print("model: %s  torch %s" % (args.model, torch.__version__))
    print("loss: %.6f  (ln V = %.6f)" % (fx["loss"], math.log(fx["config"]["vocab_size"])))
    print("train_losses:", " ".join("%.6f" % x for x in fx["train_losses"]))
    print("grad_norms:  ", " ".join("%.6f" % x for x in fx["grad_norms"]))
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
