#!/usr/bin/env python3
"""Loads a Hugging Face directory lbrx rebuilt from a GGUF with `transformers` and compares it with the
original directory (a vision-language original: its text model): every parameter equal to the original rounded through the GGUF's dtype (F16 matrices,
F32 vectors), the same tokenizer ids on llama.cpp's tokenizer test texts, the same chat template.
Usage: hf_load_check.py ORIGINAL_DIR REBUILT_DIR TEXTS_FILE
Prints a JSON report; exits 1 on a difference.
"""
import json
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer


def file_dtypes(d):
    import glob
    import os
    out = {}
    for f in glob.glob(os.path.join(d, "*.safetensors")):
        with safe_open(f, "pt") as s:
            for k in s.keys():
                out[k] = s.get_slice(k).get_dtype()
    return out


def main():
    orig, new, texts_file = sys.argv[1:4]
    problems = []
    import transformers

    cfg = json.load(open(f"{orig}/config.json"))
    if "vision_config" in cfg:
        # a vision-language original: its text model is what the GGUF (and so the rebuilt directory) holds
        mo = getattr(transformers, cfg["architectures"][0]).from_pretrained(orig, torch_dtype=torch.float32)
        so = {k.replace("model.language_model.", "model."): v for k, v in mo.state_dict().items()
              if k.startswith("model.language_model.") or k == "lm_head.weight"}
    else:
        so = AutoModelForCausalLM.from_pretrained(orig, torch_dtype=torch.float32).state_dict()
    mn = AutoModelForCausalLM.from_pretrained(new, torch_dtype=torch.float32)
    sn = mn.state_dict()
    dts = file_dtypes(new)
    if set(so) != set(sn):
        problems.append({"params": sorted(set(so) ^ set(sn))[:10]})
    for k in sorted(set(so) & set(sn)):
        a, b = so[k], sn[k]
        dt = dts.get(k) or (dts.get("model.embed_tokens.weight") if k == "lm_head.weight" else None)
        if dt == "F16":
            a = a.to(torch.float16).to(torch.float32)
        if a.shape != b.shape or not torch.equal(a, b):
            problems.append({"param": k, "max_abs_diff": float((a - b).abs().max()) if a.shape == b.shape else None})
    to, tn = AutoTokenizer.from_pretrained(orig), AutoTokenizer.from_pretrained(new)
    texts = open(texts_file, encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    for t in texts:
        ia, ib = to.encode(t), tn.encode(t)
        if ia != ib:
            problems.append({"text": t[:60], "orig": ia[:20], "new": ib[:20]})
            break
    if getattr(to, "chat_template", None) != getattr(tn, "chat_template", None):
        problems.append({"chat_template": "differs"})
    print(json.dumps({"params": len(sn), "texts": len(texts), "problems": problems[:20]}, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
