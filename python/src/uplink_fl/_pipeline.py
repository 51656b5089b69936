"""Pipelines: spec text (docs/pipeline.md) to stages, canonical text, and the binary
descriptor of frame headers (docs/wire-format.md §5), both ways."""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._errors import UplinkError, quoted

__all__ = ["Pipeline", "parse_pipeline", "parse_descriptor", "amount_k"]

MAX_N = 1 << 48
MAX_BLOCK = 1 << 24

STAGE_NAMES = ["clip", "noise", "ef", "topk", "topk-sampled", "randk", "threshold",
               "fp32", "fp16", "bf16", "int8", "int4", "int2", "sign", "ternary", "stored", "lz4", "zlib"]


@dataclass(frozen=True)
class Amount:
    """A sparsifier amount: a fraction in (0, 1] or a count."""
    fraction: Optional[float] = None
    count: Optional[int] = None

    def k(self, n: int) -> int:
        if self.fraction is not None:
            return min(n, int(math.floor(self.fraction * float(n) + 0.5)))
        return min(n, self.count)

    def fraction_of(self, n: int) -> float:
        if self.fraction is not None:
            return self.fraction
        return 1.0 if n == 0 else min(1.0, self.count / n)

    def __str__(self) -> str:
        if self.fraction is not None:
            p = _shortest(self.fraction * 100)
            return f"{p}%" if float(p) / 100 == self.fraction else _shortest(self.fraction)
        return str(self.count)


def amount_k(amount: Amount, n: int) -> int:
    return amount.k(n)


@dataclass(frozen=True)
class Pipeline:
    """A parsed pipeline. ``str(p)`` is its canonical spec text (as Swift prints it)."""
    clip: Optional[float] = None
    noise: Optional[float] = None
    noise_seed: Optional[int] = None
    ef_decay: Optional[float] = None          # float32 value; None = no error feedback
    sparsifier: Optional[str] = None          # topk, topk-sampled, randk, threshold
    amount: Optional[Amount] = None
    scope: str = "global"
    sample: float = 0.01
    seed: int = 0                             # randk seed
    tau: float = 0.0
    quantizer: str = "fp32"                   # fp32 fp16 bf16 int sign ternary
    bits: int = 0
    block: int = 0
    asymmetric: bool = False
    stochastic: bool = False
    qseed: int = 0
    codec: str = "stored"
    level: int = 0

    @property
    def has_ef(self) -> bool:
        return self.ef_decay is not None

    @property
    def value_bits(self) -> int:
        return {"fp32": 32, "fp16": 16, "bf16": 16, "sign": 1, "ternary": 1}.get(self.quantizer) or self.bits

    @property
    def has_scales(self) -> bool:
        return self.quantizer in ("int", "sign", "ternary")

    def block_length(self, m: int) -> int:
        if self.quantizer == "int":
            return self.block
        if self.quantizer in ("sign", "ternary"):
            return self.block or max(m, 1)
        return max(m, 1)

    def stream_lengths(self, m: int):
        """(scales, values) byte lengths for m transmitted values."""
        values = (m * self.value_bits + 7) // 8
        if not self.has_scales or m == 0:
            return 0, values
        per = 8 if (self.quantizer == "int" and self.asymmetric) else 4
        b = self.block_length(m)
        return ((m + b - 1) // b) * per, values

    def fixed_count(self, n: int) -> Optional[int]:
        if self.sparsifier is None:
            return n
        if self.sparsifier == "randk":
            return self.amount.k(n)
        return None

    def __str__(self) -> str:
        parts = []
        if self.clip is not None:
            parts.append(f"clip {_shortest(self.clip)}")
            if self.noise is not None:
                parts.append(f"noise z={_shortest(self.noise)}" + (f" seed={self.noise_seed}" if self.noise_seed is not None else ""))
        if self.ef_decay is not None:
            parts.append("ef" if self.ef_decay == 1 else f"ef decay={np.float32(self.ef_decay)}")
        if self.sparsifier == "topk":
            parts.append(f"topk {self.amount} scope={self.scope}")
        elif self.sparsifier == "topk-sampled":
            parts.append(f"topk-sampled {self.amount} scope={self.scope} sample={_shortest(self.sample * 100)}%")
        elif self.sparsifier == "randk":
            parts.append(f"randk {self.amount} seed={self.seed}")
        elif self.sparsifier == "threshold":
            parts.append(f"threshold {_shortest(self.tau)}")
        q = self.quantizer
        if q == "int":
            parts.append(f"int{self.bits} block={self.block} {'asym' if self.asymmetric else 'sym'}"
                         + (f" stochastic seed={self.qseed}" if self.stochastic else ""))
        elif q in ("sign", "ternary"):
            parts.append(f"{q} block={self.block}")
        else:
            parts.append(q)
        if self.codec == "stored":
            parts.append("stored")
        elif self.codec == "lz4":
            parts.append("lz4" if self.level == 0 else f"lz4 level={self.level}")
        else:
            parts.append(f"zlib level={self.level}")
        return " | ".join(parts)

    def descriptor(self, with_codec: bool = True) -> bytes:
        """The binary descriptor (§5); without the codec stage it is the key an
        error-feedback state is tied to (the codec written as stored)."""
        stages = []
        if self.clip is not None:
            stages.append((0x02, struct.pack("<d", self.clip)))
            if self.noise is not None:
                stages.append((0x03, struct.pack("<dBQ", self.noise, 0 if self.noise_seed is None else 1, self.noise_seed or 0)))
        if self.ef_decay is not None:
            stages.append((0x01, struct.pack("<f", self.ef_decay)))

        def amount(a: Amount) -> bytes:
            return struct.pack("<Bd", 0, a.fraction) if a.fraction is not None else struct.pack("<BQ", 1, a.count)
        scope = 0 if self.scope == "global" else 1
        if self.sparsifier == "topk":
            stages.append((0x10, bytes([scope]) + amount(self.amount)))
        elif self.sparsifier == "topk-sampled":
            stages.append((0x11, bytes([scope]) + amount(self.amount) + struct.pack("<d", self.sample)))
        elif self.sparsifier == "randk":
            stages.append((0x12, amount(self.amount) + struct.pack("<Q", self.seed)))
        elif self.sparsifier == "threshold":
            stages.append((0x13, struct.pack("<d", self.tau)))
        q = self.quantizer
        if q == "int":
            flags = (1 if self.asymmetric else 0) | (2 if self.stochastic else 0)
            stages.append((0x23, struct.pack("<BBIQ", self.bits, flags, self.block, self.qseed if self.stochastic else 0)))
        elif q == "sign":
            stages.append((0x24, struct.pack("<I", self.block)))
        elif q == "ternary":
            stages.append((0x25, struct.pack("<I", self.block)))
        else:
            stages.append(({"fp32": 0x20, "fp16": 0x21, "bf16": 0x22}[q], b""))
        codec = self.codec if with_codec else "stored"
        if codec == "stored":
            stages.append((0x60, b""))
        elif codec == "lz4":
            stages.append((0x61, bytes([self.level])))
        else:
            stages.append((0x62, bytes([self.level])))
        out = bytearray([len(stages)])
        for sid, params in stages:
            out += bytes([sid, len(params)]) + params
        return bytes(out)


def _shortest(v: float) -> str:
    """The shortest decimal text that parses back to v (Swift's spelling)."""
    if v == round(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


# ---------------------------------------------------------------------------------------------
# Spec text

_IDENT = re.compile(r"^[a-z0-9_-]+$")


def _split(text: str):
    stages = []
    for i, part in enumerate(text.split("|")):
        tokens = [t for t in re.split(r"[ \t\n]+", part) if t]
        if not tokens:
            raise UplinkError(600, f"pipeline {quoted(text)}: stage {i + 1} is empty")
        name = tokens[0].lower()
        if not _IDENT.match(name):
            raise UplinkError(600, f"pipeline {quoted(text)}: {quoted(tokens[0])} is not a stage name")
        positional, named = [], {}
        for tok in tokens[1:]:
            if "=" in tok:
                key, value = tok.split("=", 1)
                key = key.lower()
                if not _IDENT.match(key) or not value or "=" in value:
                    raise UplinkError(600, f"stage {quoted(name)}: {quoted(tok)} is not a key=value parameter")
                if key in named:
                    raise UplinkError(600, f"stage {quoted(name)}: parameter {quoted(key)} is given twice")
                named[key] = value
            else:
                positional.append(tok)
        stages.append(_Params(name, positional, named))
    return stages


_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)$", re.IGNORECASE)


def _to_int(text: str) -> Optional[int]:
    return int(text) if _INT.match(text) else None


def _to_float(text: str) -> Optional[float]:
    return float(text) if _FLOAT.match(text) else None


class _Params:
    def __init__(self, name, positional, named):
        self.name, self.positional, self.named = name, positional, named
        self.used_named: set = set()
        self.used_pos: set = set()

    def take(self, key: str, positional: bool = False) -> Optional[str]:
        if key in self.named:
            self.used_named.add(key)
            return self.named[key]
        if positional:
            for i, v in enumerate(self.positional):
                if i not in self.used_pos:
                    self.used_pos.add(i)
                    return v
        return None

    def flag(self, word: str) -> bool:
        for i, v in enumerate(self.positional):
            if v == word and i not in self.used_pos:
                self.used_pos.add(i)
                return True
            if v == word:
                return False
        return False

    def int(self, key, default, lo, hi, positional=False) -> int:
        text = self.take(key, positional)
        if text is None:
            return default
        v = _to_int(text)
        if v is None or not lo <= v <= hi:
            raise UplinkError(602, f"stage \"{self.name}\": {key}={quoted(text)} must be an integer in {lo}…{hi}")
        return v

    def uint64(self, key, default) -> int:
        text = self.take(key)
        if text is None:
            return default
        v = _to_int(text)
        if v is None or not 0 <= v <= (1 << 64) - 1 or text.startswith("-"):
            raise UplinkError(602, f"stage \"{self.name}\": {key}={quoted(text)} must be an integer in 0…2^64−1")
        return v

    def double(self, key, default, lo, hi, positional=False) -> float:
        text = self.take(key, positional)
        if text is None:
            return default
        v = _to_float(text)
        if v is None or not lo <= v <= hi:
            raise UplinkError(602, f"stage \"{self.name}\": {key}={quoted(text)} must be a number in {_shortest(lo)}…{_shortest(hi)}")
        return v

    def finish(self):
        for k in self.named:
            if k not in self.used_named:
                raise UplinkError(602, f"stage \"{self.name}\" has no parameter {quoted(k)}")
        for i, v in enumerate(self.positional):
            if i not in self.used_pos:
                raise UplinkError(602, f"stage \"{self.name}\" does not take the value {quoted(v)}")


def _amount(p: _Params) -> Amount:
    text = p.take("k", positional=True)
    if text is None:
        raise UplinkError(602, f"stage \"{p.name}\" needs an amount, for example \"{p.name} 1%\"")
    if text.endswith("%"):
        v = _to_float(text[:-1])
        if v is not None and 0 < v <= 100:
            return Amount(fraction=v / 100)
    c = _to_int(text)
    if c is not None and c >= 1:
        return Amount(count=c)
    f = _to_float(text)
    if f is not None and 0 < f <= 1 and not text.isdigit():
        return Amount(fraction=f)
    raise UplinkError(602, f"stage \"{p.name}\": {quoted(text)} is not an amount; use a percentage (1%), a fraction in (0, 1] (0.01) or a count (1000)")


_KINDS = ["clip", "noise", "error feedback", "sparsifier", "quantizer", "codec"]


def parse_pipeline(text: str) -> Pipeline:
    """Parses spec text such as ``"ef | topk 1% | int8 | lz4"`` (grammar: docs/pipeline.md).
    Raises UplinkError 600 (syntax), 601 (unknown stage), 602 (parameter), 603 (order)."""
    if not isinstance(text, str):
        raise UplinkError(600, "a pipeline is spec text, for example \"ef | topk 1% | int8 | lz4\"")
    fields: dict = {}
    seen = []
    for p in _split(text):
        name = p.name
        if name == "clip":
            rank = 0
            c = p.double("c", math.nan, 1e-12, 1e12, positional=True)
            if not math.isfinite(c):
                raise UplinkError(602, "stage \"clip\" needs the L2 bound, for example \"clip 1.0\"")
            fields["clip"] = c
        elif name == "noise":
            rank = 1
            z = p.double("z", math.nan, 1e-6, 1e6, positional=True)
            if not math.isfinite(z):
                raise UplinkError(602, "stage \"noise\" needs the noise multiplier, for example \"noise z=1.1\"")
            if "seed" in p.named:
                fields["noise_seed"] = p.uint64("seed", 0)
            if "clip" not in fields:
                p.finish()
                raise UplinkError(603, "noise needs a clip stage before it: the noise is scaled to the clipping bound (\"clip 1.0 | noise z=1.1\")")
            fields["noise"] = z
        elif name == "ef":
            rank = 2
            fields["ef_decay"] = float(np.float32(p.double("decay", 1.0, 0.0, 1.0)))
        elif name in ("topk", "topk-sampled", "randk", "threshold"):
            rank = 3
            fields["sparsifier"] = name
            if name == "threshold":
                text_t = p.take("tau", positional=True)
                t = _to_float(text_t) if text_t is not None else None
                if t is None or not (t > 0 and math.isfinite(t)):
                    raise UplinkError(602, "stage \"threshold\" needs a magnitude τ > 0, for example \"threshold 0.001\"")
                fields["tau"] = t
            else:
                fields["amount"] = _amount(p)
                if name in ("topk", "topk-sampled"):
                    scope = p.take("scope")
                    if scope not in (None, "global", "tensor"):
                        raise UplinkError(602, f"stage \"{name}\": scope={quoted(scope)} must be global or tensor")
                    fields["scope"] = scope or "global"
                if name == "topk-sampled":
                    s = p.take("sample")
                    if s is not None:
                        f = None
                        if s.endswith("%"):
                            v = _to_float(s[:-1])
                            f = v / 100 if v is not None else None
                        if f is None:
                            f = _to_float(s)
                        if f is None or not 0 < f <= 1:
                            raise UplinkError(602, f"stage \"topk-sampled\": sample={quoted(s)} must be a fraction in (0, 1] or a percentage")
                        fields["sample"] = f
                if name == "randk":
                    fields["seed"] = p.uint64("seed", 0)
        elif name in ("fp32", "fp16", "bf16", "int8", "int4", "int2", "sign", "ternary"):
            rank = 4
            if name.startswith("int"):
                fields["quantizer"] = "int"
                fields["bits"] = int(name[3:])
                fields["block"] = p.int("block", 256, 1, MAX_BLOCK)
                asym = p.flag("asym")
                sym = p.flag("sym")
                if asym and sym:
                    raise UplinkError(602, f"stage \"{name}\": choose sym or asym, not both")
                fields["asymmetric"] = asym
                stochastic = p.flag("stochastic")
                seed = p.uint64("seed", 0)
                if not stochastic and "seed" in p.named:
                    raise UplinkError(602, f"stage \"{name}\": seed= needs stochastic rounding (add \"stochastic\")")
                fields["stochastic"] = stochastic
                fields["qseed"] = seed if stochastic else 0
            elif name == "sign":
                fields["quantizer"] = "sign"
                fields["block"] = p.int("block", 1024, 0, MAX_BLOCK)
            elif name == "ternary":
                fields["quantizer"] = "ternary"
                fields["block"] = p.int("block", 0, 0, MAX_BLOCK)
            else:
                fields["quantizer"] = name
        elif name in ("stored", "lz4", "zlib"):
            rank = 5
            fields["codec"] = name
            if name == "lz4":
                fields["level"] = p.int("level", 0, 0, 12, positional=True)
            elif name == "zlib":
                fields["level"] = p.int("level", 6, 1, 9, positional=True)
        else:
            raise UplinkError(601, f"unknown stage {quoted(name)}; known stages: {', '.join(STAGE_NAMES)}")
        p.finish()
        for r, n in seen:
            if r == rank:
                raise UplinkError(603, f"two {_KINDS[rank]} stages, \"{n}\" and \"{name}\"; a pipeline has at most one")
        for r, n in seen:
            if r > rank:
                raise UplinkError(603, f"{_KINDS[rank]} \"{name}\" must come before {_KINDS[r]} \"{n}\" (order: clip | noise | ef | sparsifier | quantizer | codec)")
        seen.append((rank, name))
    pipe = Pipeline(**fields)
    if pipe.quantizer == "ternary" and pipe.sparsifier is None:
        raise UplinkError(603, "ternary quantizes the values a sparsifier keeps (Sparse Ternary Compression); put topk, topk-sampled, randk or threshold before it, or use sign for dense updates")
    return pipe


# ---------------------------------------------------------------------------------------------
# Binary descriptor

# id -> (name, kind rank, parameter length)
_STAGES = {
    0x02: ("clip", 0, 8), 0x03: ("noise", 1, 17), 0x01: ("ef", 2, 4),
    0x10: ("topk", 3, 10), 0x11: ("topk-sampled", 3, 18), 0x12: ("randk", 3, 17), 0x13: ("threshold", 3, 8),
    0x20: ("fp32", 4, 0), 0x21: ("fp16", 4, 0), 0x22: ("bf16", 4, 0), 0x23: ("int", 4, 14),
    0x24: ("sign", 4, 4), 0x25: ("ternary", 4, 4),
    0x60: ("stored", 5, 0), 0x61: ("lz4", 5, 1), 0x62: ("zlib", 5, 1),
}


def _read_amount(b: bytes, what: str) -> Amount:
    kind = b[0]
    if kind == 0:
        (f,) = struct.unpack("<d", b[1:9])
        if not 0.0 < f <= 1.0:
            raise UplinkError(105, f"{what}: fraction {f!r} outside (0, 1]")
        return Amount(fraction=f)
    if kind == 1:
        (c,) = struct.unpack("<Q", b[1:9])
        if not 1 <= c <= MAX_N:
            raise UplinkError(105, f"{what}: count {c} outside 1..2^48")
        return Amount(count=c)
    raise UplinkError(105, f"{what}: amount kind {kind} is neither 0 (fraction) nor 1 (count)")


def parse_descriptor(desc: bytes) -> Pipeline:
    """The pipeline of a frame's descriptor bytes; raises 105 (malformed) or 106 (unknown id)."""
    pos = 0

    def take(k):
        nonlocal pos
        if pos + k > len(desc):
            raise UplinkError(105, f"pipeline descriptor ends early (need {k} bytes at offset {pos})")
        b = desc[pos:pos + k]
        pos += k
        return b
    count = take(1)[0]
    fields: dict = {}
    last = -1
    for _ in range(count):
        sid = take(1)[0]
        plen = take(1)[0]
        p = take(plen)
        if sid not in _STAGES:
            raise UplinkError(106, f"unknown stage id 0x{sid:02x}")
        name, rank, want = _STAGES[sid]
        if plen != want:
            raise UplinkError(105, f"stage {name}: parameter length {plen}, expected {want}")
        if rank <= last:
            raise UplinkError(105, f"stage {name}: {_KINDS[rank]} stage out of order or repeated")
        last = rank
        if sid == 0x02:
            (c,) = struct.unpack("<d", p)
            if not (c > 0 and math.isfinite(c)):
                raise UplinkError(105, f"clip: bound {c!r} is not a finite positive number")
            fields["clip"] = c
        elif sid == 0x03:
            z, seeded, seed = struct.unpack("<dBQ", p)
            if not (z > 0 and math.isfinite(z)) or seeded > 1 or (seeded == 0 and seed != 0):
                raise UplinkError(105, "noise: parameters out of range")
            fields["noise"] = z
            fields["noise_seed"] = seed if seeded else None
        elif sid == 0x01:
            (decay,) = struct.unpack("<f", p)
            if not 0.0 <= decay <= 1.0:
                raise UplinkError(105, f"ef: decay {decay!r} outside 0..1")
            fields["ef_decay"] = decay
        elif sid in (0x10, 0x11):
            if p[0] not in (0, 1):
                raise UplinkError(105, f"{name}: scope {p[0]} is neither 0 nor 1")
            fields.update(sparsifier=name, scope="global" if p[0] == 0 else "tensor", amount=_read_amount(p[1:10], name))
            if sid == 0x11:
                (s,) = struct.unpack("<d", p[10:18])
                if not 0.0 < s <= 1.0:
                    raise UplinkError(105, f"{name}: sample {s!r} outside (0, 1]")
                fields["sample"] = s
        elif sid == 0x12:
            fields.update(sparsifier=name, amount=_read_amount(p[0:9], name), seed=struct.unpack("<Q", p[9:17])[0])
        elif sid == 0x13:
            (tau,) = struct.unpack("<d", p)
            if not (math.isfinite(tau) and tau > 0.0):
                raise UplinkError(105, f"threshold: tau {tau!r} not finite and > 0")
            fields.update(sparsifier=name, tau=tau)
        elif sid == 0x23:
            bits, flags, block, seed = struct.unpack("<BBIQ", p)
            if bits not in (8, 4, 2):
                raise UplinkError(105, f"int: bits {bits} not 8, 4 or 2")
            if flags & ~0x03:
                raise UplinkError(105, f"int: undefined flag bits 0x{flags & ~0x03:02x}")
            if not 1 <= block <= MAX_BLOCK:
                raise UplinkError(105, f"int: block {block} outside 1..2^24")
            fields.update(quantizer="int", bits=bits, asymmetric=bool(flags & 1), stochastic=bool(flags & 2), block=block, qseed=seed)
        elif sid in (0x24, 0x25):
            (block,) = struct.unpack("<I", p)
            if block > MAX_BLOCK:
                raise UplinkError(105, f"{name}: block {block} outside 0..2^24")
            fields.update(quantizer=name, block=block)
        elif sid in (0x20, 0x21, 0x22):
            fields["quantizer"] = name
        else:
            lo, hi = (0, 12) if sid == 0x61 else (1, 9) if sid == 0x62 else (0, 0)
            level = p[0] if p else 0
            if not lo <= level <= hi:
                raise UplinkError(105, f"stage {name}: level {level} outside {lo}..{hi}")
            fields.update(codec=name, level=level)
        fields.setdefault("_ranks", set()).add(rank)
    if pos != len(desc):
        raise UplinkError(105, f"pipeline descriptor has {len(desc) - pos} bytes after stage {count}")
    ranks = fields.pop("_ranks", set())
    if 1 in ranks and 0 not in ranks:
        raise UplinkError(105, "noise stage without a clip stage")
    if 4 not in ranks or 5 not in ranks:
        raise UplinkError(105, "pipeline must have exactly one quantizer and one codec")
    pipe = Pipeline(**fields)
    if pipe.quantizer == "ternary" and pipe.sparsifier is None:
        raise UplinkError(105, "ternary quantizer requires a sparsifier")
    return pipe
