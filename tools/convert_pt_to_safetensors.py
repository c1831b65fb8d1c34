#!/usr/bin/python3
"""Converts a PyTorch .pt/.pth checkpoint (a state_dict, or a dict holding one) to safetensors.

Pickle files can run code when they are opened, so only PyTorch opens them, here, and never afd's
C++; afd reads the safetensors file this script writes, with PyTorch's parameter names unchanged.

    /usr/bin/python3 tools/convert_pt_to_safetensors.py model.pt model.safetensors
    /usr/bin/python3 tools/convert_pt_to_safetensors.py ckpt.pth out.safetensors --key state_dict \\
        --strip-prefix module.

Dtypes afd has no Tensor type for are converted: f16/bf16 -> f32, i32/i16/i8 -> i64, bool -> u8.
The header is written as specs/formats.md describes (u64 LE length, JSON padded with spaces to a
multiple of 8, offsets relative to the data buffer, tensors in state_dict order).
"""
import argparse
import json
import os
import struct
import sys

import torch

# torch dtype -> (safetensors dtype, numpy dtype, the torch dtype to store it as)
STORED = {
    torch.float32: ("F32", "<f4", torch.float32), torch.float64: ("F64", "<f8", torch.float64),
    torch.float16: ("F32", "<f4", torch.float32), torch.bfloat16: ("F32", "<f4", torch.float32),
    torch.int64: ("I64", "<i8", torch.int64), torch.int32: ("I64", "<i8", torch.int64),
    torch.int16: ("I64", "<i8", torch.int64), torch.int8: ("I64", "<i8", torch.int64),
    torch.uint8: ("U8", "u1", torch.uint8), torch.bool: ("U8", "u1", torch.uint8),
}
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")


def find_state_dict(obj, key):
    """The mapping name -> tensor inside a loaded checkpoint."""
    if key is not None:
        return obj[key]
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return obj
    for k in WRAPPER_KEYS:
        if isinstance(obj, dict) and k in obj:
            return find_state_dict(obj[k], None)
    sys.exit(f"no state_dict found; top-level keys: {list(obj.keys()) if isinstance(obj, dict) else type(obj)}; "
             "name one with --key")


def write_safetensors(path, tensors, metadata):
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors:
        dtype, np_dtype, store_as = STORED[t.dtype]
        data = t.detach().to("cpu", store_as).contiguous().numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:  # atomic: temp file, fsync, rename
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help=".pt/.pth file (opened by torch.load on the CPU)")
    parser.add_argument("output", help="safetensors file to write")
    parser.add_argument("--key", help="the entry of the checkpoint dict that holds the state_dict")
    parser.add_argument("--strip-prefix", default="", help="removed from names that start with it, e.g. 'module.'")
    args = parser.parse_args()

    state = find_state_dict(torch.load(args.input, map_location="cpu"), args.key)
    tensors, converted = [], []
    for name, t in state.items():
        if not torch.is_tensor(t):
            sys.exit(f"entry '{name}' is a {type(t).__name__}, not a tensor")
        if t.dtype not in STORED:
            sys.exit(f"entry '{name}' has dtype {t.dtype}, which safetensors for afd cannot hold")
        if STORED[t.dtype][2] != t.dtype:
            converted.append(f"{name} ({t.dtype} -> {STORED[t.dtype][2]})")
        if args.strip_prefix and name.startswith(args.strip_prefix):
            name = name[len(args.strip_prefix):]
        tensors.append((name, t))
    names = [n for n, _ in tensors]
    if len(set(names)) != len(names):
        sys.exit("names collide after --strip-prefix")
    write_safetensors(args.output, tensors, {"converted_from": os.path.basename(args.input),
                                             "torch": torch.__version__})
    print(f"{args.output}: {len(tensors)} tensors, {os.path.getsize(args.output)} bytes")
    for c in converted:
        print(f"  converted {c}")


if __name__ == "__main__":
    main()
