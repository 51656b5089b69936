// libFuzzer target for the Swift LZ4 block codec, held against liblz4.
//
// Built by `scripts/fuzz lz4` into one module together with Sources/UplinkCodec/**/*.swift (so
// the codec's package symbols are reachable without `import UplinkCodec`) and linked with liblz4.
//
// Properties checked for every input (a violation traps, which libFuzzer reports as a crash):
// - decoding: the input, read as a 2-byte little-endian output size and a block, decodes with
//   `LZ4BlockDecoder` exactly when it decodes with `LZ4_decompress_safe`, to the same bytes
//   (the one difference allowed: the Swift decoder rejects offset 0, which liblz4 accepts);
//   the same for liblz4's block of the input with a byte changed and a nearby output size;
// - encoding: the input through `LZ4FastEncoder` is byte-identical to `LZ4_compress_default`,
//   with room for the worst case and with the codec's count − 1 (including "does not fit"),
//   and so is a tiling of the input past 64 KiB (liblz4's other hash table);
// - round trips: the Swift fast and chain encoders' blocks decode with liblz4 to the input, and
//   liblz4's HC block at the same level decodes with the Swift decoder to the input;
// - nothing reads or writes out of bounds (AddressSanitizer) or hangs on any input.

import CUplinkLZ4

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    if input.count >= 2 {
        let outputCount = Int(input[0]) | Int(input[1]) << 8
        crossDecode(Array(input[2...]), outputCount: outputCount)
    }
    checkEncoders(input)
    return 0
}

/// liblz4's verdict: the decoded bytes, or `nil` for an error.
func liblz4Decode(_ block: [UInt8], outputCount: Int) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: outputCount)
    let n = block.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in
            LZ4_decompress_safe(
                src.baseAddress?.assumingMemoryBound(to: CChar.self), dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                Int32(src.count), Int32(dst.count))
        }
    }
    return n < 0 ? nil : Array(out[0..<Int(n)])
}

/// The Swift decoder's outcome and bytes.
func swiftDecode(_ block: [UInt8], outputCount: Int) -> (LZ4BlockDecoder.Outcome, [UInt8]) {
    // Canary bytes on both sides of the output catch a write past either end even without ASan.
    var out = [UInt8](repeating: 0xA5, count: outputCount + 32)
    let outcome = block.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { all in
            LZ4BlockDecoder.decode(src, into: UnsafeMutableRawBufferPointer(rebasing: all[16..<(16 + outputCount)]))
        }
    }
    precondition(out[0..<16].allSatisfy { $0 == 0xA5 } && out[(16 + outputCount)...].allSatisfy { $0 == 0xA5 },
                 "the Swift decoder wrote outside its output")
    if case .decoded(let n) = outcome { return (outcome, Array(out[16..<(16 + n)])) }
    return (outcome, [])
}

func crossDecode(_ block: [UInt8], outputCount: Int) {
    guard !block.isEmpty else { return }
    let system = liblz4Decode(block, outputCount: outputCount)
    let (outcome, bytes) = swiftDecode(block, outputCount: outputCount)
    switch outcome {
    case .decoded:
        precondition(system == bytes, "Swift decoded \(bytes.count) bytes, liblz4 \(system.map { "\($0.count) other bytes" } ?? "failed")")
    case .corrupt(.zeroOffset, _):
        break
    case .corrupt(let reason, let at):
        precondition(system == nil, "Swift rejected (\(reason) at \(at)) a block liblz4 decodes")
    }
}

func compressBlock(_ input: [UInt8], capacity: Int, level: Int, using implementation: LZ4Implementation) -> [UInt8]? {
    input.withUnsafeBytes { LZ4Block.compressBlock($0, capacity: capacity, level: level, using: implementation) }
}

func checkEncoders(_ input: [UInt8]) {
    let bound = LZ4FastEncoder.bound(input.count)
    // Fast encoder: byte identity, and the block decodes with liblz4.
    let fast = compressBlock(input, capacity: bound, level: 0, using: .swift)
    let reference = compressBlock(input, capacity: bound, level: 0, using: .system)
    precondition(fast != nil && fast == reference, "fast encoder differs from LZ4_compress_default (\(input.count) bytes)")
    if input.count > 1 {
        precondition(compressBlock(input, capacity: input.count - 1, level: 0, using: .swift)
                     == compressBlock(input, capacity: input.count - 1, level: 0, using: .system),
                     "fast encoder differs from LZ4_compress_default at count − 1")
    }
    precondition(liblz4Decode(fast!, outputCount: input.count) == input, "liblz4 does not decode the fast block")

    // Chain encoder against liblz4's decoder; liblz4 HC against the Swift decoder. Levels 10–12
    // only on small inputs, to keep executions fast.
    let selector = input.first.map(Int.init) ?? 0
    let level = input.count <= 4096 ? 1 + selector % 12 : 1 + selector % 9
    let chain = compressBlock(input, capacity: bound, level: level, using: .swift)
    precondition(chain != nil && liblz4Decode(chain!, outputCount: input.count) == input, "liblz4 does not decode the chain block (level \(level))")
    let hc = compressBlock(input, capacity: bound, level: level, using: .system)!
    let (outcome, bytes) = swiftDecode(hc, outputCount: input.count)
    precondition(outcome == .decoded(input.count) && bytes == input, "Swift does not decode liblz4's HC block (level \(level)): \(outcome)")

    // Inputs over 64 KiB + 11 bytes take liblz4's other table (32-bit positions, LZ4_hash5),
    // which libFuzzer's 64 KiB inputs never reach: tile the input, each copy XORed with its
    // index, up to 70,000 bytes (200,000 for one input in eight, for matches over 65,535 back).
    if input.count >= 16 {
        let target = (input[0] & 7) == 0 ? 200_000 : 70_000
        var big: [UInt8] = []
        big.reserveCapacity(target + input.count)
        var tile: UInt8 = 0
        while big.count < target {
            big += input.map { $0 ^ tile }
            tile &+= 1
        }
        let bigBound = LZ4FastEncoder.bound(big.count)
        let mine = compressBlock(big, capacity: bigBound, level: 0, using: .swift)
        precondition(mine != nil && mine == compressBlock(big, capacity: bigBound, level: 0, using: .system),
                     "fast encoder differs from LZ4_compress_default on \(big.count) bytes")
        precondition(compressBlock(big, capacity: big.count - 1, level: 0, using: .swift)
                     == compressBlock(big, capacity: big.count - 1, level: 0, using: .system),
                     "fast encoder differs from LZ4_compress_default at count − 1 on \(big.count) bytes")
        let (bigOutcome, bigBytes) = swiftDecode(mine!, outputCount: big.count)
        precondition(bigOutcome == .decoded(big.count) && bigBytes == big, "Swift does not decode its own large block")
    }

    // A valid block with one byte changed and an output size near the right one.
    guard input.count >= 4, let block = reference else { return }
    var mutated = block
    let hash = input.suffix(4).reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
    mutated[Int(hash % UInt32(mutated.count))] ^= UInt8(truncatingIfNeeded: hash >> 8) | 1
    let outputCount = max(0, input.count + Int((hash >> 16) % 9) - 4)
    crossDecode(mutated, outputCount: outputCount)
    crossDecode(block, outputCount: outputCount)
}
