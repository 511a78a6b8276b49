#!/usr/bin/python3
"""Generate PyTorch golden fixtures for plinth's CLIP parity test.

Run by hand (Debian's python has torch); the output is committed:

    /usr/bin/python3 scripts/torch_parity_clip.py            # -> test/fixtures/clip_tiny.json

A tiny CLIP (ViT image tower + causal text tower + projections + symmetric InfoNCE
with a learnable logit_scale) written in plain torch, following Hugging Face's
CLIPModel computation and parameter names: the patch embedding is a real Conv2d
(stride = kernel = patch) here, so the test also checks that plinth's strided
reshape + matmul equals the convolution. Weights are drawn in float32, everything
runs in float64; the fixture stores float32 (same format as scripts/torch_parity.py):
config, params, pixel_values, input_ids, image/text embeddings, logits_per_text,
loss, every parameter gradient, and 10 clipped AdamW steps' losses and grad norms.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_parity import ADAMW, SEED, TRAIN_STEPS, encode, layer_norm, linear, normal  # noqa: E402

OUT = "test/fixtures/clip_tiny.json"


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def build():
    text = {"model_type": "clip_text_model", "vocab_size": 30, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 8, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "projection_dim": 8}
    vision = {"model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_channels": 3, "image_size": 16, "patch_size": 4, "hidden_act": "quick_gelu",
              "layer_norm_eps": 1e-5, "projection_dim": 8}
    cfg = {"model_type": "clip", "projection_dim": 8, "logit_scale_init_value": math.log(1 / 0.07),
           "initializer_factor": 1.0, "text_config": text, "vision_config": vision}
    B, T = 4, 7
    torch.manual_seed(SEED)
    std = 0.2  # large enough that every gradient is well away from zero
    p = {}  # insertion order == HF CLIPModel's state_dict order

    def tower(prefix, c):
        D, I = c["hidden_size"], c["intermediate_size"]
        for i in range(c["num_hidden_layers"]):
            h = f"{prefix}encoder.layers.{i}."
            for n in ("k_proj", "v_proj", "q_proj", "out_proj"):
                p[h + f"self_attn.{n}.weight"] = normal((D, D), std)
                p[h + f"self_attn.{n}.bias"] = normal((D,), std)
            p[h + "layer_norm1.weight"] = normal((D,), 0.1, 1.0)
            p[h + "layer_norm1.bias"] = normal((D,), std)
            p[h + "mlp.fc1.weight"] = normal((I, D), std)
            p[h + "mlp.fc1.bias"] = normal((I,), std)
            p[h + "mlp.fc2.weight"] = normal((D, I), std)
            p[h + "mlp.fc2.bias"] = normal((D,), std)
            p[h + "layer_norm2.weight"] = normal((D,), 0.1, 1.0)
            p[h + "layer_norm2.bias"] = normal((D,), std)

    Dt, Dv, E = text["hidden_size"], vision["hidden_size"], cfg["projection_dim"]
    P, S, C = vision["patch_size"], vision["image_size"], vision["num_channels"]
    N = (S // P) ** 2
    p["text_model.embeddings.token_embedding.weight"] = normal((text["vocab_size"], Dt), std)
    p["text_model.embeddings.position_embedding.weight"] = normal((text["max_position_embeddings"], Dt), std)
    tower("text_model.", text)
    p["text_model.final_layer_norm.weight"] = normal((Dt,), 0.1, 1.0)
    p["text_model.final_layer_norm.bias"] = normal((Dt,), std)
    p["vision_model.embeddings.class_embedding"] = normal((Dv,), std)
    p["vision_model.embeddings.patch_embedding.weight"] = normal((Dv, C, P, P), std)
    p["vision_model.embeddings.position_embedding.weight"] = normal((N + 1, Dv), std)
    p["vision_model.pre_layrnorm.weight"] = normal((Dv,), 0.1, 1.0)
    p["vision_model.pre_layrnorm.bias"] = normal((Dv,), std)
    tower("vision_model.", vision)
    p["vision_model.post_layernorm.weight"] = normal((Dv,), 0.1, 1.0)
    p["vision_model.post_layernorm.bias"] = normal((Dv,), std)
    p["visual_projection.weight"] = normal((E, Dv), std)
    p["text_projection.weight"] = normal((E, Dt), std)
    p["logit_scale"] = torch.tensor(cfg["logit_scale_init_value"], dtype=torch.float32).double()

    pixels = normal((B, C, S, S), 1.0)
    # Captions: bos, tokens, eos, then padding; eos at different positions per row.
    lengths = [7, 4, 5, 3]
    rows = []
    for L in lengths:
        body = torch.randint(3, text["vocab_size"], (L - 2,)).tolist()
        rows.append([1] + body + [2] + [0] * (T - L))
    input_ids = torch.tensor(rows)
    return cfg, p, pixels, input_ids


def encoder(p, prefix, c, x, causal):
    Bx, Tx, D = x.shape
    nh = c["num_attention_heads"]
    hs = D // nh
    eps = c["layer_norm_eps"]
    mask = torch.ones(Tx, Tx, dtype=torch.bool).tril()
    for i in range(c["num_hidden_layers"]):
        h = f"{prefix}encoder.layers.{i}."
        a = layer_norm(x, p[h + "layer_norm1.weight"], p[h + "layer_norm1.bias"], eps)
        q, k, v = (linear(a, p[h + f"self_attn.{n}.weight"], p[h + f"self_attn.{n}.bias"]).view(Bx, Tx, nh, hs).transpose(1, 2)
                   for n in ("q_proj", "k_proj", "v_proj"))
        att = (q * hs ** -0.5) @ k.transpose(-2, -1)
        if causal:
            att = att.masked_fill(~mask, float("-inf"))
        y = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(Bx, Tx, D)
        x = x + linear(y, p[h + "self_attn.out_proj.weight"], p[h + "self_attn.out_proj.bias"])
        m = layer_norm(x, p[h + "layer_norm2.weight"], p[h + "layer_norm2.bias"], eps)
        m = quick_gelu(linear(m, p[h + "mlp.fc1.weight"], p[h + "mlp.fc1.bias"]))
        x = x + linear(m, p[h + "mlp.fc2.weight"], p[h + "mlp.fc2.bias"])
    return x


def forward(cfg, p, pixels, ids):
    v, t = cfg["vision_config"], cfg["text_config"]
    B = pixels.shape[0]
    patches = F.conv2d(pixels, p["vision_model.embeddings.patch_embedding.weight"], stride=v["patch_size"])
    patches = patches.flatten(2).transpose(1, 2)  # [B, N, D]
    cls = p["vision_model.embeddings.class_embedding"].expand(B, 1, -1)
    x = torch.cat([cls, patches], dim=1) + p["vision_model.embeddings.position_embedding.weight"]
    x = layer_norm(x, p["vision_model.pre_layrnorm.weight"], p["vision_model.pre_layrnorm.bias"], v["layer_norm_eps"])
    x = encoder(p, "vision_model.", v, x, causal=False)
    pooled_image = layer_norm(x[:, 0, :], p["vision_model.post_layernorm.weight"], p["vision_model.post_layernorm.bias"], v["layer_norm_eps"])
    image_embeds = pooled_image @ p["visual_projection.weight"].t()

    Tx = ids.shape[1]
    h = p["text_model.embeddings.token_embedding.weight"][ids] + p["text_model.embeddings.position_embedding.weight"][:Tx]
    h = encoder(p, "text_model.", t, h, causal=True)
    h = layer_norm(h, p["text_model.final_layer_norm.weight"], p["text_model.final_layer_norm.bias"], t["layer_norm_eps"])
    eos = (ids == t["eos_token_id"]).int().argmax(dim=-1)  # first eos of each row
    text_embeds = h[torch.arange(B), eos] @ p["text_projection.weight"].t()

    image_embeds = image_embeds / image_embeds.norm(p=2, dim=-1, keepdim=True)
    text_embeds = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
    logits_per_text = p["logit_scale"].exp() * text_embeds @ image_embeds.t()
    labels = torch.arange(B)
    loss = (F.cross_entropy(logits_per_text, labels) + F.cross_entropy(logits_per_text.t(), labels)) / 2
    return image_embeds, text_embeds, logits_per_text, loss


def main():
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    cfg, init, pixels, ids = build()

    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    image_embeds, text_embeds, logits, loss = forward(cfg, params, pixels, ids)
    loss.backward()
    grads = {k: encode(v.grad) for k, v in params.items()}

    tparams = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    decay = [k for k, v in tparams.items() if v.dim() >= 2]
    no_decay = [k for k, v in tparams.items() if v.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": [tparams[k] for k in decay], "weight_decay": ADAMW["weight_decay"]},
         {"params": [tparams[k] for k in no_decay], "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"])
    train_losses, grad_norms = [], []
    for _ in range(TRAIN_STEPS):
        l = forward(cfg, tparams, pixels, ids)[3]
        opt.zero_grad(set_to_none=True)
        l.backward()
        gn = torch.nn.utils.clip_grad_norm_(list(tparams.values()), ADAMW["clip"])
        opt.step()
        train_losses.append(float(l.item()))
        grad_norms.append(float(gn.item()))

    fx = {
        "config": cfg, "params": {k: encode(v) for k, v in init.items()},
        "pixel_values": encode(pixels), "input_ids": ids.tolist(),
        "image_embeds": encode(image_embeds), "text_embeds": encode(text_embeds), "logits_per_text": encode(logits),
        "loss": float(loss.item()), "grads": grads,
        "adamw": {"lr": ADAMW["lr"], "betas": ADAMW["betas"], "eps": ADAMW["eps"], "weight_decay": ADAMW["weight_decay"],
                  "decay": decay, "clip": ADAMW["clip"]},
        "train_losses": train_losses, "grad_norms": grad_norms,
        "generator": "scripts/torch_parity_clip.py", "torch_version": torch.__version__,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fx, f, separators=(",", ":"))
        f.write("\n")
    print("loss: %.6f  (ln B = %.6f)" % (fx["loss"], math.log(pixels.shape[0])))
    print("train_losses:", " ".join("%.5f" % x for x in train_losses))
    print("grad_norms:  ", " ".join("%.5f" % x for x in grad_norms))
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
