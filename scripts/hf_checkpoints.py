#!/usr/bin/python3
"""Write Hugging Face-named checkpoints (GPT2LMHeadModel, BertForMaskedLM, CLIPModel) for the
interop tests, with PyTorch's logits for them.

Run by hand (Debian's python has torch; `transformers` is not needed and not used);
the output is committed under test/fixtures/hf/ and the tests only read it:

    /usr/bin/python3 scripts/hf_checkpoints.py

The models are torch_parity.py's tiny GPT-2 and BERT (same forward code), with their
weights scaled up so that the logits are O(1). Each folder holds what a Hugging Face
`save_pretrained` folder holds for these models: config.json with the fields HF writes
(dropout settings, architectures, task fields), model.safetensors written by the small
writer below, with the extras HF checkpoints carry -- GPT-2's tied `lm_head.weight`
and `attn.bias` mask buffers; BERT's `position_ids` buffer and tied
`cls.predictions.decoder.weight` / `.bias`; CLIP's two `position_ids` buffers (CLIP is
torch_parity_clip.py's tiny CLIPModel). expected.json holds the inputs and the float64
PyTorch logits (CLIP: normalised embeddings and logits_per_text), stored as float32.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_parity as tp  # noqa: E402
import torch_parity_clip as tpc  # noqa: E402

OUT = "test/fixtures/hf"
DTYPES = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64"}


def save_safetensors(path, tensors):
    """Our own writer: u64 header length, JSON header (8-byte aligned), raw little-endian data."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        a = arr if arr.flags.c_contiguous else arr.copy()  # (ascontiguousarray would turn a 0-d logit_scale into [1])
        data = a.tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def scaled(spec):
    """Weights x10 (LayerNorm gains kept) so logits are not all near zero."""
    for k, v in spec["params"].items():
        if k.endswith(".weight") and "LayerNorm" not in k and ".ln_" not in k:
            spec["params"][k] = v * 10
    return spec


def f32(t):
    return t.detach().float().numpy().astype("<f4")


def write(name, spec, config, extras, inputs):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    tensors = {k: f32(v) for k, v in spec["params"].items()}
    tensors.update(extras(spec["params"]))
    save_safetensors(os.path.join(out, "model.safetensors"), tensors)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with torch.no_grad():
        logits = spec["forward"](spec["params"], *inputs)
    expected = {"input_ids": spec["input_ids"].tolist(), "logits": tp.encode(logits)}
    if "extra" in spec:
        expected["token_type_ids"] = spec["extra"]["token_type_ids"]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"wrote {out}: {len(tensors)} tensors, logits {list(logits.shape)}")


def main():
    gpt = scaled(tp.build_gpt())
    c = gpt["config"]
    gpt_config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
        "attn_pdrop": 0.1, "embd_pdrop": 0.1, "resid_pdrop": 0.1, "bos_token_id": c["vocab_size"] - 1, "eos_token_id": c["vocab_size"] - 1,
        "initializer_range": 0.02, "layer_norm_epsilon": c["layer_norm_epsilon"], "n_ctx": c["n_positions"], "n_embd": c["n_embd"],
        "n_head": c["n_head"], "n_inner": None, "n_layer": c["n_layer"], "n_positions": c["n_positions"],
        "reorder_and_upcast_attn": False, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
        "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "torch_dtype": "float32", "transformers_version": "4.40.0", "use_cache": True, "vocab_size": c["vocab_size"],
    }
    P = c["n_positions"]

    def gpt_extras(p):
        mask = np.tril(np.ones((P, P), dtype="<f4")).reshape(1, 1, P, P)
        out = {"lm_head.weight": f32(p["transformer.wte.weight"])}
        for i in range(c["n_layer"]):
            out[f"transformer.h.{i}.attn.bias"] = mask
        return out

    write("gpt2", gpt, gpt_config, gpt_extras, (gpt["input_ids"],))

    bert = scaled(tp.build_bert())
    b = dict(bert["config"])
    bert_config = {"architectures": ["BertForMaskedLM"], **b, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                   "position_embedding_type": "absolute", "classifier_dropout": None, "use_cache": True,
                   "torch_dtype": "float32", "transformers_version": "4.40.0"}

    def bert_extras(p):
        return {
            "bert.embeddings.position_ids": np.arange(b["max_position_embeddings"], dtype="<i8").reshape(1, -1),
            "cls.predictions.decoder.weight": f32(p["bert.embeddings.word_embeddings.weight"]),
            "cls.predictions.decoder.bias": f32(p["cls.predictions.bias"]),
        }

    write("bert", bert, bert_config, bert_extras, (bert["input_ids"],))
    write_clip()
    return 0


def write_clip():
    torch.set_default_dtype(torch.float64)
    cfg, params, pixels, ids = tpc.build()
    out = os.path.join(OUT, "clip")
    os.makedirs(out, exist_ok=True)
    t, v = cfg["text_config"], cfg["vision_config"]
    n_patches = (v["image_size"] // v["patch_size"]) ** 2
    tensors = {k: f32(p) for k, p in params.items()}
    tensors["text_model.embeddings.position_ids"] = np.arange(t["max_position_embeddings"], dtype="<i8").reshape(1, -1)
    tensors["vision_model.embeddings.position_ids"] = np.arange(n_patches + 1, dtype="<i8").reshape(1, -1)
    save_safetensors(os.path.join(out, "model.safetensors"), tensors)
    config = {"architectures": ["CLIPModel"], **cfg, "torch_dtype": "float32", "transformers_version": "4.40.0",
              "text_config": {**t, "dropout": 0.0, "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0},
              "vision_config": {**v, "dropout": 0.0, "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0}}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with torch.no_grad():
        image_embeds, text_embeds, logits, _ = tpc.forward(cfg, params, pixels, ids)
    expected = {"input_ids": ids.tolist(), "pixel_values": tp.encode(pixels), "image_embeds": tp.encode(image_embeds),
                "text_embeds": tp.encode(text_embeds), "logits_per_text": tp.encode(logits)}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"wrote {out}: {len(tensors)} tensors, logits_per_text {list(logits.shape)}")


if __name__ == "__main__":
    sys.exit(main())
