#!/usr/bin/python3
"""Generate PyTorch golden fixtures for plinth's model-parity tests.

This script is run by hand, and its output is committed to the repository
(the test suite only reads the JSON fixture; it never needs PyTorch).

Setup (Debian/Ubuntu):

    apt-get install -y python3-torch libopenblas0-pthread

Run (use Debian's python, which is the one that has torch):

    /usr/bin/python3 scripts/torch_parity.py gpt
    /usr/bin/python3 scripts/torch_parity.py gpt --out test/fixtures/gpt_tiny.json
    /usr/bin/python3 scripts/torch_parity.py bert

Each model is written by hand in plain torch (no `transformers`), following
the Hugging Face computation exactly, with Hugging Face parameter names and
layouts. Initial weights are drawn in float32 (so the stored float32 weights
are exactly the ones used), then all computation runs in float64 so the golden
values are more accurate than a float32 run would be; results are stored as
float32.

Fixture format (per model): config, initial params, inputs, logits, loss,
parameter gradients, and the losses / pre-clip grad norms of a short AdamW
training run on the same batch. Tensors are stored as
{"shape": [...], "data": base64(float32 little-endian)}. Targets equal to -100
(PyTorch's and Hugging Face's ignore index) are not scored; plinth ignores any
negative target. A model may add fields of its own (BERT: token_type_ids).

To add a model (e.g. CLIP): write a `build_<name>` returning
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
# BERT (masked LM)


def linear(x, w, b):
    # torch.nn.Linear: weight [out, in], y = x @ W^T + b
    return F.linear(x, w, b)


def build_bert():
    cfg = {
        "model_type": "bert",
        "vocab_size": 40,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "hidden_act": "gelu_new",
        "max_position_embeddings": 16,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "pad_token_id": 0,
    }
    B, T = 2, 10
    V, C, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
    I, P, TV = cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]
    mask_id = V - 1

    torch.manual_seed(SEED)
    std = 0.02
    p = {}  # insertion order == Hugging Face's BertForMaskedLM order
    e = "bert.embeddings."
    p[e + "word_embeddings.weight"] = normal((V, C), std)
    p[e + "position_embeddings.weight"] = normal((P, C), std)
    p[e + "token_type_embeddings.weight"] = normal((TV, C), std)
    p[e + "LayerNorm.weight"] = normal((C,), 0.1, 1.0)
    p[e + "LayerNorm.bias"] = normal((C,), std)
    for i in range(L):
        h = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            p[h + f"attention.self.{name}.weight"] = normal((C, C), std)
            p[h + f"attention.self.{name}.bias"] = normal((C,), std)
        p[h + "attention.output.dense.weight"] = normal((C, C), std)
        p[h + "attention.output.dense.bias"] = normal((C,), std)
        p[h + "attention.output.LayerNorm.weight"] = normal((C,), 0.1, 1.0)
        p[h + "attention.output.LayerNorm.bias"] = normal((C,), std)
        p[h + "intermediate.dense.weight"] = normal((I, C), std)
        p[h + "intermediate.dense.bias"] = normal((I,), std)
        p[h + "output.dense.weight"] = normal((C, I), std)
        p[h + "output.dense.bias"] = normal((C,), std)
        p[h + "output.LayerNorm.weight"] = normal((C,), 0.1, 1.0)
        p[h + "output.LayerNorm.bias"] = normal((C,), std)
    p["cls.predictions.transform.dense.weight"] = normal((C, C), std)
    p["cls.predictions.transform.dense.bias"] = normal((C,), std)
    p["cls.predictions.transform.LayerNorm.weight"] = normal((C,), 0.1, 1.0)
    p["cls.predictions.transform.LayerNorm.bias"] = normal((C,), std)
    p["cls.predictions.bias"] = normal((V,), std)  # the decoder's bias; its weight is tied to word_embeddings

    # A masked-LM batch: about 30% of positions are targets (at least one per row), their
    # inputs replaced by [MASK]; every other label is -100. Two segments per row.
    tokens = torch.randint(0, V - 1, (B, T))
    chosen = torch.rand(B, T) < 0.3
    for b in range(B):
        if not chosen[b].any():
            chosen[b, 3] = True
    labels = torch.where(chosen, tokens, torch.full_like(tokens, -100))
    input_ids = torch.where(chosen, torch.full_like(tokens, mask_id), tokens)
    token_type_ids = torch.tensor([[0] * 5 + [1] * 5, [0] * 7 + [1] * 3])

    eps = cfg["layer_norm_eps"]
    nh = cfg["num_attention_heads"]
    hs = C // nh

    def forward(p, idx):
        Bx, Tx = idx.shape
        x = (p[e + "word_embeddings.weight"][idx] + p[e + "token_type_embeddings.weight"][token_type_ids]
             + p[e + "position_embeddings.weight"][:Tx])
        x = layer_norm(x, p[e + "LayerNorm.weight"], p[e + "LayerNorm.bias"], eps)
        for i in range(L):
            h = f"bert.encoder.layer.{i}."
            q, k, v = (linear(x, p[h + f"attention.self.{n}.weight"], p[h + f"attention.self.{n}.bias"])
                       .view(Bx, Tx, nh, hs).transpose(1, 2) for n in ("query", "key", "value"))
            att = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(hs), dim=-1)  # no mask: bidirectional
            y = (att @ v).transpose(1, 2).contiguous().view(Bx, Tx, C)
            y = linear(y, p[h + "attention.output.dense.weight"], p[h + "attention.output.dense.bias"])
            a = layer_norm(y + x, p[h + "attention.output.LayerNorm.weight"], p[h + "attention.output.LayerNorm.bias"], eps)
            m = gelu_tanh(linear(a, p[h + "intermediate.dense.weight"], p[h + "intermediate.dense.bias"]))
            m = linear(m, p[h + "output.dense.weight"], p[h + "output.dense.bias"])
            x = layer_norm(m + a, p[h + "output.LayerNorm.weight"], p[h + "output.LayerNorm.bias"], eps)
        t = gelu_tanh(linear(x, p["cls.predictions.transform.dense.weight"], p["cls.predictions.transform.dense.bias"]))
        t = layer_norm(t, p["cls.predictions.transform.LayerNorm.weight"], p["cls.predictions.transform.LayerNorm.bias"], eps)
        return linear(t, p[e + "word_embeddings.weight"], p["cls.predictions.bias"])  # decoder tied to word_embeddings

    return {"config": cfg, "batch": B, "seq": T, "params": p,
            "input_ids": input_ids, "targets": labels, "forward": forward,
            "extra": {"token_type_ids": token_type_ids.tolist(), "mask_token_id": mask_id}}


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

    fixture = {
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
    fixture.update(spec.get("extra", {}))
    return fixture


MODELS = {"gpt": build_gpt, "bert": build_bert}
DEFAULT_OUT = {"gpt": "test/fixtures/gpt_tiny.json", "bert": "test/fixtures/bert_tiny.json"}


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
