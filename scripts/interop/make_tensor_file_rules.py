"""Writes fixtures/tensor-files/safetensors-rules.json: the .safetensors header rules of
docs/wire-format.md §6.1 as cases, each a header and the outcome every Uplink reader must give
(the Swift reader in Tests/UplinkTensorIOTests and the Python one in scripts/interop run the
same file). Run: python3 scripts/interop/make_tensor_file_rules.py
"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "tensor-files",
                   "safetensors-rules.json")


def t(shape, begin, end, dtype="F32", extra=""):
    return '{"dtype":"%s","shape":[%s],"data_offsets":[%s,%s]%s}' % (
        dtype, ",".join(str(d) for d in shape), begin, end, extra)


W1 = t([1], 0, 4)  # one float32
cases = []


def ok(label, header, data, tensors):
    cases.append({"label": label, "header": header, "data_bytes": data, "tensors": tensors})


def bad(label, header, data, code, **kw):
    c = {"label": label, "header": header, "data_bytes": data, "code": code}
    c.update(kw)
    cases.append(c)


# Accepted.
ok("layout sorted by name, __metadata__ is not a tensor",
   '{"z":%s,"a":%s,"__metadata__":{"format":"pt"}}' % (t([1], 8, 12), t([2], 0, 8)), 12,
   [["a", [2]], ["z", [1]]])
ok("__metadata__ may be null", '{"__metadata__":null,"w":%s}' % W1, 4, [["w", [1]]])
ok("__metadata__ may be empty", '{"__metadata__":{},"w":%s}' % W1, 4, [["w", [1]]])
ok("unknown keys in a tensor are ignored",
   '{"w":%s}' % t([1], 0, 4, extra=',"x":{"y":[1,2.5,-3e4,{"z":null}],"b":true}'), 4, [["w", [1]]])
ok("names differing only in Unicode normalization are two tensors (NFC U+00E9, NFD e+U+0301)",
   '{"\u00e9":%s,"e\u0301":%s}' % (t([1], 0, 4), t([1], 4, 8)), 8, [["e\u0301", [1]], ["\u00e9", [1]]])
ok("a \\u escape is the character it names", '{"\\u00e9":%s}' % W1, 4, [["\u00e9", [1]]])
ok("whitespace inside and trailing padding spaces", '{\n "w" : %s \t}      ' % W1, 4, [["w", [1]]])
bad("a space before the opening brace", ' {"w":%s}' % W1, 4, 703)
ok("empty tensors share an offset",
   '{"a":%s,"b":%s,"c":%s}' % (t([0], 0, 0), t([2, 0], 0, 0), t([1], 0, 4)), 4,
   [["a", [0]], ["b", [2, 0]], ["c", [1]]])
ok("rank 64 is the most", '{"w":%s}' % t([1] * 64, 0, 4), 4, [["w", [1] * 64]])
ok("rank 0 is a scalar", '{"w":%s}' % t([], 0, 4), 4, [["w", []]])
ok("F16, BF16 and F64 are read",
   '{"h":%s,"b":%s,"d":%s}' % (t([1], 0, 2, "F16"), t([1], 2, 4, "BF16"), t([1], 4, 12, "F64")), 12,
   [["b", [1]], ["d", [1]], ["h", [1]]])
ok("a name of 1024 bytes", '{"%s":%s}' % ("n" * 1024, W1), 4, [["n" * 1024, [1]]])

# Shapes and offsets are integer literals.
for lit in ["1.0", "1e0", "1E0", "1.5", "-1", "true", "null", '"1"', "[1]"]:
    bad(f"shape entry {lit} is not a non-negative integer literal", '{"w":%s}' % W1.replace("[1]", f"[{lit}]", 1), 4, 703)
bad("shape written as floats [3.0, 4.0]", '{"w":%s}' % t(["3.0", "4.0"], 0, 48), 48, 703)
bad("data_offsets written as floats", '{"w":%s}' % t([1], "0.0", "4.0"), 4, 703)
bad("data_offsets with 3 numbers", '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', 4, 703)
bad("data_offsets with 1 number", '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4, 703)
bad("leading zero (not JSON)", '{"w":%s}' % t(["01"], 0, 4), 4, 703)
bad("rank 65", '{"w":%s}' % t([1] * 65, 0, 4), 4, 407)
bad("dimension 2^48 + 1", '{"w":%s}' % t([2 ** 48 + 1], 0, 4), 4, 406)
bad("dimension beyond 64 bits", '{"w":%s}' % t([10 ** 30], 0, 4), 4, 406)
bad("element count beyond 2^48", '{"w":%s}' % t([2 ** 32, 2 ** 32], 0, 4), 4, 406)

# Names.
bad("the same name twice", '{"w":%s,"w":%s}' % (t([1], 0, 4), t([1], 4, 8)), 8, 703)
bad("the same name twice, once escaped", '{"\\u00e9":%s,"\u00e9":%s}' % (t([1], 0, 4), t([1], 4, 8)), 8, 703)
bad("a name of 1025 bytes", '{"%s":%s}' % ("n" * 1025, W1), 4, 407)
bad("an empty name", '{"":%s}' % W1, 4, 303)
bad("an unpaired surrogate escape", '{"\\ud800":%s}' % W1, 4, 703)
bad("an invalid escape", '{"\\x41":%s}' % W1, 4, 703)
bad("a raw control character in a name", '{"a\u0001":%s}' % W1, 4, 703)

# __metadata__.
bad("__metadata__ with a number value", '{"__metadata__":{"a":1},"w":%s}' % W1, 4, 703)
bad("__metadata__ as an array", '{"__metadata__":["a"],"w":%s}' % W1, 4, 703)
bad("__metadata__ twice", '{"__metadata__":{},"__metadata__":{},"w":%s}' % W1, 4, 703)
bad("__metadata__ with a key twice", '{"__metadata__":{"a":"1","a":"2"},"w":%s}' % W1, 4, 703)
bad("only __metadata__, no tensor", '{"__metadata__":{"format":"pt"}}', 0, 703)

# Structure.
bad("no tensors", "{}", 0, 703)
bad("not an object", '["w"]', 0, 703)
bad("a tensor that is not an object", '{"w":4}', 0, 703)
bad("a key given twice inside a tensor", '{"w":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}', 4, 703)
bad("missing data_offsets", '{"w":{"dtype":"F32","shape":[1]}}', 4, 703)
bad("dtype not a string", '{"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}', 4, 703)
bad("unsupported dtype", '{"w":%s}' % t([1], 0, 8, "I64"), 8, 701)
bad("bytes after the object", '{"w":%s}x' % W1, 4, 703)
bad("unterminated object", '{"w":%s' % W1, 4, 703)
bad("NaN is not JSON", '{"w":%s}' % t([1], 0, 4, extra=',"x":NaN'), 4, 703)
bad("ignored value nested 65 deep", '{"w":%s}' % t([1], 0, 4, extra=',"x":' + "[" * 65 + "]" * 65), 4, 703)
ok("ignored value nested 64 deep", '{"w":%s}' % t([1], 0, 4, extra=',"x":' + "[" * 64 + "]" * 64), 4, [["w", [1]]])

# Data coverage.
bad("data shorter than the shape needs", '{"w":%s}' % t([2], 0, 4), 4, 703)
bad("a gap before the first tensor", '{"w":%s}' % t([1], 4, 8), 8, 703)
bad("bytes after the last tensor", '{"w":%s}' % W1, 8, 703)
bad("two tensors overlap", '{"w":%s,"v":%s}' % (t([1], 0, 4), t([1], 0, 4)), 4, 703)

# The 8-byte header length (length_override replaces the true length).
bad("header length 2^64 - 1", "{}", 0, 401, length_override=2 ** 64 - 1)
bad("header length 100,000,001", "{}", 0, 401, length_override=100_000_001)
bad("header length beyond the file", "{}", 0, 703, length_override=100)
bad("header length 1", "{}", 0, 703, length_override=1)

doc = {
    "about": ("Header rules of docs/wire-format.md §6.1. Each case is a .safetensors file: u64 LE "
              "length of 'header' (or length_override), the UTF-8 bytes of 'header', then "
              "data_bytes zero bytes. A case with 'tensors' must be accepted with exactly that "
              "layout (names sorted by UTF-8 bytes); a case with 'code' must be refused with it. "
              "Generated by scripts/interop/make_tensor_file_rules.py (public domain)."),
    "limits": {"max_header_length": 100_000_000, "max_tensors": 1 << 20, "max_rank": 64, "max_name_bytes": 1024,
               "max_depth": 64},
    "cases": cases,
}
with open(OUT, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=1, ensure_ascii=True)
    f.write("\n")
print(f"{len(cases)} cases -> {os.path.relpath(OUT)}")
