#!/usr/bin/env python3
"""Loads an MLX model directory with mlx_lm and prints the token ids of a greedy generation (one JSON list).

Usage: mlx_generate.py MODEL_DIR [--max-tokens N]
"""
import argparse
import json

from mlx_lm import load
from mlx_lm.generate import generate_step
import mlx.core as mx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--max-tokens", type=int, default=12)
    a = ap.parse_args()
    model, tokenizer = load(a.model)
    prompt = mx.array(tokenizer.encode("The quick brown fox"))
    out = []
    for (tok, _), _ in zip(generate_step(prompt, model), range(a.max_tokens)):
        out.append(int(tok))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
