"""The file checks of ``dreamfx validate``: damaged copies of a subject's model, export or preset file.

Each damaged copy is written to a fresh folder and opened the way dreamfx
opens it (``DreamEffect(path)``, ``validate_preset(path)``).  It must be
refused with a one-line DreamfxError; nothing may be unpickled (a trap object
would create a file), run or written beside it; a zip bomb must be refused
before it is inflated.
"""

from __future__ import annotations

import pickle
import struct
import tempfile
import time
import tomllib
import tracemalloc
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import tomli_w

from dreamfx.dream.step import TORCHSCRIPT_EXTRA
from dreamfx.engine.backends import model_format
from dreamfx.plugin.effect import DreamEffect
from dreamfx.nets.models import SHIPPED_MODELS
from dreamfx.validate.framework import Context, check, expect, one_line_error

BOMB_BYTES = 256 * 2**20        # what the zip bomb inflates to
BOMB_MEMORY = 64 * 2**20        # the most Python may allocate while refusing it


def has_model_file(subject) -> bool:
    return subject.model_file is not None


def has_preset_file(subject) -> bool:
    return subject.preset_file is not None


class Trap:
    """Unpickling this creates the file ``marker`` (pickle calls ``open(marker, "w")``)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def refuse_all(damaged: dict[str, bytes | Callable[[Path], bytes]], suffix: str, opener, what: str,
               harmless: Callable[[object], bool] | None = None) -> str:
    """Write each damaged file (bytes, or a function of the path a pickle trap would create) to its own fresh
    folder and open it: each must be refused in one line, with no file unpickled or written, unless ``harmless``
    says that what opened is the original (a flipped bit in a zip's timestamp).  Returns a figure."""
    intact = []
    for name, data in damaged.items():
        with tempfile.TemporaryDirectory() as tmp:
            path, marker = Path(tmp) / f"damaged{suffix}", Path(tmp) / "unpickled"
            path.write_bytes(data(marker) if callable(data) else data)
            opened = []
            message = one_line_error(lambda: opened.append(opener(path)))
            expect(not marker.exists(), f"{what} {name}: a pickle was unpickled")
            if message is None and harmless is not None and harmless(opened[0]):
                intact.append(name)
            else:
                expect(message is not None, f"{what} {name} was accepted")
            left = sorted(p.name for p in Path(tmp).iterdir() if p != path)
            expect(not left, f"{what} {name}: opening it wrote {', '.join(left)}")
    refused = [name for name in damaged if name not in intact]
    return "; ".join(([f"{len(refused)} refused in one line, nothing written: {', '.join(refused)}"] if refused else []) +
                     ([f"{len(intact)} opened and rendered bit for bit as the original (harmless): "
                       f"{', '.join(intact)}"] if intact else []))


def renders_as_original(ctx: Context) -> Callable[[object], bool]:
    """Whether an opened model renders a short noise bit for bit as the subject's own model file does (opened as
    dreamfx opens it, whatever opener is under test)."""
    x = ctx.noise(samples=ctx.latency() + ctx.chunk_samples())
    original = DreamEffect(ctx.subject.model_file)(x, ctx.sr)
    return lambda opened: isinstance(opened, DreamEffect) and np.array_equal(opened(x, ctx.sr), original)


def model_bytes(ctx: Context) -> tuple[bytes, str, str]:
    """(bytes, suffix, format) of the subject's model file."""
    path = ctx.subject.model_file
    return path.read_bytes(), path.suffix, model_format(path)


@check("files", 1, has_model_file)
def file_truncated(ctx: Context) -> str:
    data, suffix, _ = model_bytes(ctx)
    cuts = {"cut to 10 bytes": 10, "cut in half": len(data) // 2, "one byte short": len(data) - 1, "empty": 0}
    return refuse_all({k: data[:n] for k, n in cuts.items()}, suffix, ctx.subject.open_model, "file")


@check("files", 1, has_model_file)
def file_bit_flipped(ctx: Context) -> str:
    data, suffix, _ = model_bytes(ctx)
    positions = [3, 12, 40, 200, len(data) // 3, len(data) // 2, len(data) - 2]
    positions += [int(p) for p in ctx.rng.integers(0, len(data), 2 * ctx.strictness)]
    damaged = {}
    for p in positions:
        flipped = bytearray(data)
        flipped[p] ^= 1 << int(ctx.rng.integers(8))
        damaged[f"byte {p}"] = bytes(flipped)
    return refuse_all(damaged, suffix, ctx.subject.open_model, "file with a bit flipped at", renders_as_original(ctx))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@check("files", 1, has_model_file)
def file_oversized_header(ctx: Context) -> str:
    data, suffix, kind = model_bytes(ctx)
    if kind == "safetensors":   # the 8-byte header length
        damaged = {"claiming a 4 EiB header": struct.pack("<Q", 2**62) + data[8:],
                   "claiming a header past its end": struct.pack("<Q", len(data) - 9) + data[8:]}
    elif kind == "torchscript":  # the zip's directory: its own size, and an entry's inflated size
        end, entry = data.rfind(b"PK\x05\x06"), data.find(b"PK\x01\x02")
        damaged = {"whose zip directory claims 4 GiB": data[:end + 12] + struct.pack("<I", 0xFFFFFFF0) + data[end + 16:],
                   "with an entry claiming 4 GiB inflated": data[:entry + 24] + struct.pack("<I", 0xFFFFFFF0) +
                   data[entry + 28:]}
    else:                        # ONNX: a protobuf field claiming a terabyte
        damaged = {"starting with a field of 1 TiB": b"\x0a" + _varint(2**40) + data,
                   "whose graph claims 1 TiB": b"\x3a" + _varint(2**40) + data[:1000]}
    return refuse_all(damaged, suffix, ctx.subject.open_model, "file", renders_as_original(ctx))


def trap_pickle(marker: Path) -> bytes:
    return pickle.dumps(Trap(marker))


def trap_torch_save(marker: Path) -> bytes:
    import io

    import torch
    buffer = io.BytesIO()
    torch.save({"state_dict": Trap(marker)}, buffer)
    return buffer.getvalue()


@check("files", 1, has_model_file)
def file_pickle(ctx: Context) -> str:
    _, suffix, _ = model_bytes(ctx)
    return refuse_all({"a pickle": trap_pickle, "a torch.save zip": trap_torch_save}, suffix,
                      ctx.subject.open_model, "trap (a file is written when it is unpickled):")


@check("files", 1, has_model_file)
def file_zip_bomb(ctx: Context) -> str:
    _, suffix, _ = model_bytes(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bomb{suffix}"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for member in (f"archive/extra/{TORCHSCRIPT_EXTRA}", "archive/data.pkl"):
                with archive.open(member, "w", force_zip64=True) as f:
                    zeros = bytes(2**20)
                    for _ in range(BOMB_BYTES // 2**20):
                        f.write(zeros)
        size = path.stat().st_size
        tracemalloc.start()
        start = time.perf_counter()
        try:
            message = one_line_error(lambda: ctx.subject.open_model(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        seconds = time.perf_counter() - start
        left = sorted(p.name for p in Path(tmp).iterdir() if p != path)
    expect(message is not None, "a zip bomb was accepted")
    expect(not left, f"opening a zip bomb wrote {', '.join(left)}")
    expect(peak <= BOMB_MEMORY, f"refusing a zip bomb allocated {peak / 2**20:.0f} MiB (it was inflated)")
    return (f"a {size / 2**20:.1f} MiB zip inflating to {2 * BOMB_BYTES / 2**20:.0f} MiB refused in {seconds:.2f} s, "
            f"{peak / 2**20:.1f} MiB allocated")


# --- presets ------------------------------------------------------------------------------------------
WRONG_VALUES = {str: [1, True, [1], {"a": 1}], bool: ["yes", 1, [True]], int: ["1", True, [1], {"a": 1}],
                float: ["1.0", True, [1.0], {"a": 1}], list: ["x", 1, {"a": 1}], dict: ["x", 1, [1]]}


def leaves(value, path: tuple = ()):
    """Every (key path, value) of a parsed TOML document, tables and arrays included."""
    if path:
        yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, path + (i,))


def replaced(doc, path: tuple, value):
    """A copy of ``doc`` with the value at ``path`` replaced."""
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = replaced(doc[path[0]], path[1:], value)
    return copy


def preset_document(ctx: Context) -> dict:
    """The subject's preset as parsed TOML, a model file and a guide named by their absolute paths (the copies
    live elsewhere)."""
    path = ctx.subject.preset_file
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    model = doc.get("dream", {}).get("model", "default")
    if model not in SHIPPED_MODELS:
        doc["dream"]["model"] = str((path.parent / model).resolve())
    if "guide" in doc.get("dream", {}):
        doc["dream"]["guide"] = str((path.parent / doc["dream"]["guide"]).resolve())
    return doc


@check("files", 1, has_preset_file)
def preset_wrong_types(ctx: Context) -> str:
    doc = preset_document(ctx)
    tried = 0
    for path, value in list(leaves(doc)):
        name = next(str(p) for p in reversed(path) if isinstance(p, str)) if any(isinstance(p, str) for p in path) \
            else "chain"
        for wrong in WRONG_VALUES[type(value)]:
            with tempfile.TemporaryDirectory() as tmp:
                preset = Path(tmp) / "wrong.toml"
                preset.write_text(tomli_w.dumps(replaced(doc, path, wrong)), encoding="utf-8")
                message = one_line_error(lambda: ctx.subject.open_preset(preset))
                where = ".".join(map(str, path))
                expect(message is not None, f"{where} = {wrong!r} was accepted")
                expect(name in message, f"the error for {where} = {wrong!r} does not name {name!r}: {message}")
                expect([p.name for p in Path(tmp).iterdir()] == ["wrong.toml"], f"{where} = {wrong!r}: a file was "
                       "written")
            tried += 1
    return f"{tried} wrong-typed values over {len(list(leaves(doc)))} keys: each refused in one line naming the key"


@check("files", 1, has_preset_file)
def preset_damaged(ctx: Context) -> str:
    text = ctx.subject.preset_file.read_bytes()
    equals = text.index(b"=", text.index(b"[dream]"))
    damaged = {"cut after an '='": text[:equals + 1], "empty": b"", "not UTF-8": b"\xff\xfe" + text,
               "random bytes": ctx.rng.integers(0, 256, 512, dtype=np.uint8).tobytes(), "a pickle": trap_pickle}
    return refuse_all(damaged, ".toml", ctx.subject.open_preset, "preset")
