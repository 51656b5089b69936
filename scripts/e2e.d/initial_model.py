"""Writes the digits MLP the simulator starts from, as .safetensors, for `uplink serve --model`.

The same values as `MLP.digits(width:).initialParameters(seed:)` (Sources/UplinkSimulation/
Learning/MLP.swift): SplitMix64 seeded with the scenario seed, He-uniform weights
(unitFloat · 2 − 1) · √(6 / fan-in) in float32, layer by layer, biases 0. So the coordinator and
`uplink simulate` start from one model and their accuracies are comparable round by round.

Usage: initial_model.py SEED OUT.safetensors [WIDTH]
"""
import array
import json
import math
import struct
import sys

MASK = (1 << 64) - 1


def splitmix64(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    seed, out = int(sys.argv[1]), sys.argv[2]
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    sizes = [64, width, width, 10]
    rng = splitmix64(seed & MASK)
    tensors = {}
    for l in range(1, len(sizes)):
        fan_in, fan_out = sizes[l - 1], sizes[l]
        # √ of a float32 quotient, rounded to float32 (double rounding is exact for a square root).
        bound = f32(math.sqrt(f32(6 / fan_in)))
        w = array.array("f", bytes(4 * fan_in * fan_out))
        for i in range(fan_in * fan_out):
            u = (next(rng) >> 40) * 2.0**-24
            w[i] = (u * 2 - 1) * bound  # exact in double; the array rounds once to float32
        tensors[f"fc{l}.weight"] = ([fan_out, fan_in], w)
        tensors[f"fc{l}.bias"] = ([fan_out], array.array("f", bytes(4 * fan_out)))
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        shape, values = tensors[name]
        data = values.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main()
