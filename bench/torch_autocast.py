#!/usr/bin/env python3
"""PyTorch's GPT training step in float32 and under CPU bf16 autocast, for `npm run bench -- --only precision --torch`.

The model, configs and step are the peer reference's own (../shared/bench/torch_ref.py, loaded
from the path given): GPT-2's architecture, AdamW, clipping at 1. Here the step runs in
float32 and under torch.autocast("cpu", dtype=torch.bfloat16) (matmuls and linears in bf16,
float32 master weights and optimizer), one step of each in turn so that load spells hit both
alike; prints one JSON line per precision with the median tokens/s.

    /usr/bin/python3 bench/torch_autocast.py ../shared/bench/torch_ref.py M [--threads N] [--steps K]
"""
import argparse
import importlib.util
import json
import os
import statistics
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("torch_ref")
    p.add_argument("config", choices=["S", "M"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    spec = importlib.util.spec_from_file_location("torch_ref", args.torch_ref)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)  # drops OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE before torch loads
    torch = ref.torch
    torch.set_num_threads(args.threads)
    c = ref.CONFIGS[args.config]
    torch.manual_seed(0)
    model = ref.GPT(c)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    x = torch.randint(0, c["vocab"], (c["batch"], c["ctx"]))
    y = torch.randint(0, c["vocab"], (c["batch"], c["ctx"]))
    n_params = sum(q.numel() for q in model.parameters())
    tokens = c["batch"] * c["ctx"]
    flops = 6 * n_params * tokens + 12 * c["layers"] * c["d"] * c["ctx"] * tokens

    def step(bf16):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - t, loss.item()

    for bf16 in (False, True, False, True):
        step(bf16)
    times = {False: [], True: []}
    losses = {}
    for i in range(args.steps):
        for bf16 in ((False, True) if i % 2 == 0 else (True, False)):
            dt, losses[bf16] = step(bf16)
            times[bf16].append(dt)
    for bf16 in (False, True):
        dt = statistics.median(times[bf16])
        print(json.dumps(dict(impl="torch", openblas_core=ref.openblas_core(), bench="gpt", config=args.config,
                              precision="bf16 autocast" if bf16 else "fp32", threads=args.threads,
                              tokens_per_s=round(tokens / dt), gflops=round(flops / dt / 1e9, 1),
                              loss=round(losses[bf16], 4), mkldnn=torch.backends.mkldnn.is_available())),
              flush=True)


if __name__ == "__main__":
    main()
