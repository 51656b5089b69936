// libFuzzer target for the Uplink frame decoder and the pipeline spec parser.
//
// Built by `scripts/fuzz frame` into one module together with Sources/UplinkCodec/**/*.swift,
// so it uses the codec's API without `import UplinkCodec`. Every input is tried twice: as
// given, and (when that changes anything) with its fingerprint, section checksums and header
// checksum recomputed, so that mutations get past the CRC and FNV checks to the code behind them.
//
// Properties checked (a violation traps, which libFuzzer reports as a crash):
// - nothing crashes, hangs or allocates without bound on any input;
// - `accumulate` leaves the destination bit-for-bit unchanged when it throws, and adds exactly
//   `weight × decode(frame, layout:)` when it succeeds; it succeeds exactly when that decode does;
// - a successful decode has `parameterCount` finite values and agrees with `readHeader`;
// - pipelines round-trip through their canonical text and their binary descriptor.

/// The layout of fixtures/frames/golden-update.safetensors (tensors sorted by name, as
/// `Safetensors.read` orders them): the seed frames decode and accumulate against it.
let goldenLayout: ModelLayout = {
    do {
        return try ModelLayout([
            TensorSpec(name: "dense.bias", shape: [32]),
            TensorSpec(name: "dense.weight", shape: [16, 32]),
            TensorSpec(name: "embed", shape: [8, 4, 2]),
        ])
    } catch {
        fatalError("golden layout: \(error)")
    }
}()

/// What `accumulate` adds to: distinct, non-trivial values so a partial write cannot go unseen.
let initialDestination: [Float] = (0..<goldenLayout.parameterCount).map { Float($0 % 37) * 0.375 - 5 }

let accumulateWeight: Float = 0.5

let decoder = FrameDecoder()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    exerciseFrame(bytes)
    if let fixed = repaired(bytes) { exerciseFrame(fixed) }
    exercisePipelineText(bytes)
    return 0
}

func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

func exerciseFrame(_ frame: [UInt8]) {
    frame.withUnsafeBytes { raw in
        // 1. The header alone.
        let header = try? FrameReader.readHeader(raw)
        if let header {
            precondition(header.frameLength == raw.count)
            precondition(header.parameterCount >= 1 && header.tensorCount >= 1)
            for s in header.sections {
                precondition(s.offset >= 0 && s.storedLength >= 1 && s.offset + s.storedLength <= raw.count,
                             "section outside the frame")
            }
            _ = try? FrameReader.verifySectionChecksums(raw, header)
            _ = try? header.layout()
            _ = try? header.check(against: goldenLayout)
            _ = header.fingerprintHex
            _ = header.compressionRatio
            let reparsed = header.pipeline.descriptor.withUnsafeBytes { try? Pipeline(descriptor: $0) }
            precondition(reparsed == header.pipeline, "pipeline descriptor does not round-trip")
        }

        // 2. Decode with the frame's own tensor table (default limits).
        let own = try? decoder.decode(raw)
        if let own {
            precondition(header != nil, "decode succeeded where readHeader failed")
            precondition(own.values.count == own.header.parameterCount)
            precondition(own.layout.parameterCount == own.values.count)
            precondition(own.values.allSatisfy(\.isFinite), "decode returned a non-finite value")
        }

        // 3. Decode against a fixed small layout.
        let fixed = try? decoder.decode(raw, layout: goldenLayout)
        if let fixed {
            precondition(header != nil, "decode(layout:) succeeded where readHeader failed")
            precondition(fixed.values.count == goldenLayout.parameterCount)
            precondition(fixed.values.allSatisfy(\.isFinite), "decode returned a non-finite value")
            if let own { precondition(sameBits(own.values, fixed.values), "decodes with and without layout differ") }
        }

        // 4. Accumulate: all or nothing.
        var destination = initialDestination
        var accepted = false
        do {
            try destination.withUnsafeMutableBufferPointer { buffer in
                _ = try decoder.accumulate(raw, into: buffer, weight: accumulateWeight, layout: goldenLayout)
            }
            accepted = true
        } catch {
            precondition(sameBits(destination, initialDestination), "accumulate threw but changed the destination: \(error)")
        }
        precondition(accepted == (fixed != nil), "accumulate and decode(layout:) disagree on acceptance")
        if accepted, let fixed {
            for i in 0..<destination.count {
                var expected = initialDestination[i]
                expected += accumulateWeight * fixed.values[i]
                precondition(destination[i].bitPattern == expected.bitPattern, "accumulate added the wrong value at \(i)")
            }
        }
    }
}

func exercisePipelineText(_ bytes: [UInt8]) {
    guard let text = String(validatingUTF8Bytes: bytes) else { return }
    guard let pipeline = try? Pipeline(parsing: text) else { return }
    precondition((try? Pipeline(parsing: pipeline.description)) == pipeline, "pipeline text does not round-trip")
    let reparsed = pipeline.descriptor.withUnsafeBytes { try? Pipeline(descriptor: $0) }
    precondition(reparsed == pipeline, "pipeline descriptor does not round-trip")
}

/// A copy of `frame` with the fields that mutations almost always break recomputed: the
/// fingerprint (from the tensor table, when the flags say there is one), each section's CRC-32C
/// and the header CRC-32C. It parses only as far as the bytes allow and leaves fields it cannot
/// locate alone; nil when the header cannot be located or nothing changed.
func repaired(_ frame: [UInt8]) -> [UInt8]? {
    let pre = FrameFormat.preambleLength
    let n = frame.count
    guard n >= pre else { return nil }
    var f = frame
    let headerLength = Int(load(f, 8, as: UInt32.self))
    let headerEnd = pre + headerLength
    guard headerLength >= FrameFormat.fixedHeaderLength, headerEnd + FrameFormat.headerChecksumLength <= n else { return nil }
    let flags = load(f, 6, as: UInt16.self)
    let tensorCount = Int(load(f, pre + 32, as: UInt32.self))
    let sectionCount = Int(load(f, pre + 36, as: UInt32.self))
    let descriptorLength = Int(load(f, pre + 40, as: UInt16.self))
    let tableStart = pre + FrameFormat.fixedHeaderLength + descriptorLength

    // Fingerprint: FNV-1a 64 of u32 T and the tensor table, when the whole table is in the header.
    if flags & FrameFlags.hasTensorTable.rawValue != 0, tableStart <= headerEnd {
        var p = tableStart
        var complete = true
        for _ in 0..<tensorCount {  // each entry is at least 3 bytes, so this ends within the header
            guard p + 2 <= headerEnd else { complete = false; break }
            p += 2 + Int(load(f, p, as: UInt16.self))
            guard p + 1 <= headerEnd else { complete = false; break }
            p += 1 + 8 * Int(f[p])
            guard p <= headerEnd else { complete = false; break }
        }
        if complete {
            store(ModelLayout.fingerprint(tensorCount: tensorCount, table: Array(f[tableStart..<p])), into: &f, at: pre)
        }
    }

    // Section checksums: the section table ends the header; payloads follow the header CRC.
    let tableBytes = sectionCount * FrameFormat.sectionEntryLength
    if sectionCount > 0, tableBytes <= headerLength - FrameFormat.fixedHeaderLength {
        var entry = headerEnd - tableBytes
        var offset = headerEnd + FrameFormat.headerChecksumLength
        for _ in 0..<sectionCount {
            let stored = load(f, entry + 16, as: UInt64.self)
            guard stored <= UInt64(n - offset) else { break }
            let crc = CRC32C.checksum(f[offset..<(offset + Int(stored))])
            store(crc, into: &f, at: entry + 4)
            offset += Int(stored)
            entry += FrameFormat.sectionEntryLength
        }
    }

    store(CRC32C.checksum(f[0..<headerEnd]), into: &f, at: headerEnd)
    return f == frame ? nil : f
}

func load<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as _: T.Type) -> T {
    var v: T = 0
    for i in 0..<MemoryLayout<T>.size { v |= T(bytes[offset + i]) << (8 * i) }
    return v
}

func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
    for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}
