#!/usr/bin/python3
"""PyTorch reference for plinth's CLIP training benchmark (bench/clip.ts runs both in one run).

The same model as plinth's CLIP presets, written in plain torch the way one normally would
(nn.Conv2d patch embedding, nn.Linear, LayerNorm, quick_gelu, causal text attention, eos
pooling, symmetric InfoNCE with a learnable logit_scale), float32, trained with AdamW and
gradient clipping on random batches. Prints one JSON line per config:

    /usr/bin/python3 scripts/torch_clip_bench.py tiny [--steps 10] [--threads N]
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # image side, patch, vision d/layers/heads, text d/layers/heads, text length, projection, batch, vocab
    "tiny": dict(S=32, P=8, vd=64, vl=2, vh=2, td=64, tl=2, th=2, T=24, E=64, B=64, V=1024),
    "small": dict(S=48, P=8, vd=128, vl=4, vh=4, td=128, tl=4, th=4, T=32, E=128, B=64, V=1024),
}


class Block(nn.Module):
    def __init__(self, d, heads, causal):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        h = self.layer_norm1(x)
        q, k, v = (p(h).view(B, T, self.heads, D // self.heads).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        att = (q @ k.transpose(-2, -1)) * (D // self.heads) ** -0.5
        if self.causal:
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.out_proj(y)
        m = self.fc1(self.layer_norm2(x))
        return x + self.fc2(m * torch.sigmoid(1.702 * m))


class Clip(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = (c["S"] // c["P"]) ** 2
        self.patch = nn.Conv2d(3, c["vd"], c["P"], stride=c["P"], bias=False)
        self.cls = nn.Parameter(torch.randn(c["vd"]) * c["vd"] ** -0.5)
        self.vpos = nn.Parameter(torch.randn(n + 1, c["vd"]) * 0.02)
        self.pre, self.post = nn.LayerNorm(c["vd"]), nn.LayerNorm(c["vd"])
        self.vblocks = nn.ModuleList(Block(c["vd"], c["vh"], False) for _ in range(c["vl"]))
        self.tok = nn.Embedding(c["V"], c["td"])
        self.tpos = nn.Parameter(torch.randn(c["T"], c["td"]) * 0.01)
        self.tblocks = nn.ModuleList(Block(c["td"], c["th"], True) for _ in range(c["tl"]))
        self.final = nn.LayerNorm(c["td"])
        self.visual_projection = nn.Linear(c["vd"], c["E"], bias=False)
        self.text_projection = nn.Linear(c["td"], c["E"], bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, pixels, ids, eos):
        B = pixels.shape[0]
        x = self.patch(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(B, 1, -1), x], 1) + self.vpos
        x = self.pre(x)
        for b in self.vblocks:
            x = b(x)
        img = self.visual_projection(self.post(x[:, 0]))
        t = self.tok(ids) + self.tpos[: ids.shape[1]]
        for b in self.tblocks:
            t = b(t)
        txt = self.text_projection(self.final(t)[torch.arange(B), eos])
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits = self.logit_scale.exp() * txt @ img.t()
        labels = torch.arange(B)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = CONFIGS[a.config]
    model = Clip(c)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    B, T = c["B"], c["T"]
    pixels = torch.randn(B, 3, c["S"], c["S"])
    ids = torch.randint(5, c["V"], (B, T))
    eos = torch.randint(3, T, (B,))
    ids[torch.arange(B), eos] = 0

    def step():
        loss = model(pixels, ids, eos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        return loss

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"impl": "torch", "bench": "clip", "config": a.config, "params": params, "batch": B,
                      "step_ms": round(dt * 1000, 1), "images_per_s": round(B / dt, 1), "threads": a.threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
