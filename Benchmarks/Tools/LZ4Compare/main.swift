// Encode and decode speed of UplinkCodec's Swift LZ4 codec against the system liblz4, in one run
// on the same inputs, as ratios (docs/benchmarks.md). Not a correctness check and not asserted
// anywhere; run it in release:
//
//   swift run --package-path Benchmarks -c release LZ4Compare [seconds-per-measurement] [input]
//
// (`input` limits the run to one kind: "float32 real", "int8 real", "int8 dense", "int8 sparse",
// "float32", "random", "zeros".) The real inputs come from fixtures/updates/.
//
// The Swift side goes through the public `SectionCodec.lz4` (this tool sets UPLINK_LZ4=swift
// before the codec is first used); the liblz4 side makes the same calls the codec's liblz4 path
// makes (a count − 1 destination, LZ4_compress_default / LZ4_compress_HC, LZ4_decompress_safe).

import CUplinkLZ4
import Foundation
import UplinkCodec

setenv("UPLINK_LZ4", "swift", 1)

let secondsPerMeasurement = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 0.3
let onlyKind = CommandLine.arguments.dropFirst(2).first
let sectionBytes = 1 << 20  // FrameFormat.defaultChunkLength

/// Seeded inputs shaped like real sections.
func makeInput(_ kind: String) -> [UInt8] {
    var rng = SplitMix64(seed: 42)
    func laplace() -> Float {
        let u = max(rng.unitFloat(), 0x1p-24)
        return (rng.next() & 1 == 0 ? 1 : -1) * -Float(LibM.log(Double(u)))
    }
    switch kind {
    case "float32 real":
        return realUpdate
    case "int8 real":
        // `int8 block=256 sym` codes of the real update: c = round(x / scale) + 127.
        var out: [UInt8] = []
        out.reserveCapacity(sectionBytes)
        let floats = stride(from: 0, to: realUpdate.count, by: 4).map { i in
            Float(bitPattern: UInt32(realUpdate[i]) | UInt32(realUpdate[i + 1]) << 8 | UInt32(realUpdate[i + 2]) << 16 | UInt32(realUpdate[i + 3]) << 24)
        }
        for start in stride(from: 0, to: floats.count, by: 256) {
            let block = floats[start..<min(start + 256, floats.count)]
            let scale = max(block.map(abs).max()!, 1e-30) / 127
            out += block.map { UInt8(max(0, min(254, ($0 / scale).rounded() + 127))) }
        }
        return out + out.prefix(sectionBytes - out.count)
    case "int8 dense":
        // `int8 block=256` codes of a heavy-tailed update with 32% exact zeros.
        var out: [UInt8] = []
        out.reserveCapacity(sectionBytes)
        while out.count < sectionBytes {
            let block = (0..<256).map { _ in rng.below(100) < 32 ? 0 : laplace() }
            let scale = max(block.map(abs).max()!, 1e-12)
            out += block.map { UInt8(bitPattern: Int8(($0 / scale * 127).rounded())) }
        }
        return out
    case "int8 sparse":
        // Codes of a sparsified update sent dense: 90% zeros.
        return (0..<sectionBytes).map { _ in rng.below(10) < 9 ? 0 : UInt8(bitPattern: Int8(max(-127, min(127, laplace() * 30)))) }
    case "float32":
        var out: [UInt8] = []
        out.reserveCapacity(sectionBytes)
        for _ in 0..<(sectionBytes / 4) { withUnsafeBytes(of: (laplace() * 0.01).bitPattern.littleEndian) { out += $0 } }
        return out
    case "random":
        return (0..<sectionBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    default:
        return [UInt8](repeating: 0, count: sectionBytes)
    }
}

/// 1 MiB of float32 values from a real client update (fixtures/updates/mlp-digits-r6-c61.safetensors,
/// the first tensor bytes after the header).
let realUpdate: [UInt8] = {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/updates/mlp-digits-r6-c61.safetensors").path
    guard let data = FileManager.default.contents(atPath: path), data.count > 8 else { fatalError("LZ4Compare: cannot read \(path)") }
    let bytes = [UInt8](data)
    let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    return Array(bytes[(8 + headerLength)...].prefix(sectionBytes))
}()

func liblz4Compress(_ raw: [UInt8], level: Int) -> [UInt8]? {
    let capacity = raw.count - 1
    var out = [UInt8](repeating: 0, count: capacity)
    let n = raw.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in
            let s = src.baseAddress!.assumingMemoryBound(to: CChar.self)
            let d = dst.baseAddress!.assumingMemoryBound(to: CChar.self)
            return level == 0
                ? LZ4_compress_default(s, d, Int32(raw.count), Int32(capacity))
                : LZ4_compress_HC(s, d, Int32(raw.count), Int32(capacity), Int32(level))
        }
    }
    guard n > 0 else { return nil }
    out.removeSubrange(Int(n)...)
    return out
}

func liblz4Decompress(_ block: [UInt8], into out: inout [UInt8]) {
    let n = block.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in
            LZ4_decompress_safe(src.baseAddress!.assumingMemoryBound(to: CChar.self), dst.baseAddress!.assumingMemoryBound(to: CChar.self),
                                Int32(src.count), Int32(dst.count))
        }
    }
    precondition(Int(n) == out.count, "liblz4 failed to decode")
}

func swiftCompress(_ raw: [UInt8], level: Int) -> [UInt8]? {
    try! raw.withUnsafeBytes { try SectionCodec.lz4.compress($0, level: level) }
}

func swiftDecompress(_ block: [UInt8], into out: inout [UInt8]) {
    try! block.withUnsafeBytes { src in try out.withUnsafeMutableBytes { try SectionCodec.lz4.decompress(src, into: $0) } }
}

/// Median seconds per call of `body` over 5 measurements of at least `secondsPerMeasurement` each.
func seconds(_ body: () -> Void) -> Double {
    body()
    let clock = ContinuousClock()
    var samples: [Double] = []
    for _ in 0..<5 {
        var calls = 0
        let start = clock.now
        var elapsed = 0.0
        repeat {
            body()
            calls += 1
            let d = clock.now - start
            elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        } while elapsed < secondsPerMeasurement
        samples.append(elapsed / Double(calls))
    }
    return samples.sorted()[2]
}

func mbps(_ bytes: Int, _ s: Double) -> String { String(format: "%.0f", Double(bytes) / s / 1e6) }
/// Swift's speed as a multiple of liblz4's (below 1: slower), from the two times.
func speedRatio(liblz4 a: Double, swift b: Double) -> String { String(format: "%.2f", a / b) }

print("Swift LZ4 vs liblz4 \(String(cString: LZ4_versionString())), \(sectionBytes) B sections, MB/s of raw bytes, median of 5")
print()
print("| input | level | liblz4 bytes | Swift bytes | encode liblz4 | encode Swift | Swift ÷ liblz4 speed | decode liblz4 | decode Swift | Swift ÷ liblz4 speed |")
print("|---|---|---|---|---|---|---|---|---|---|")
for kind in ["float32 real", "int8 real", "int8 dense", "int8 sparse", "float32", "random", "zeros"] where onlyKind == nil || onlyKind == kind {
    let raw = makeInput(kind)
    for level in [0, 9] {
        let reference = liblz4Compress(raw, level: level)
        let mine = swiftCompress(raw, level: level)
        if level == 0 { precondition(reference == mine, "\(kind): the fast encoders differ") }
        let encodeC = seconds { _ = liblz4Compress(raw, level: level) }
        let encodeSwift = seconds { _ = swiftCompress(raw, level: level) }
        var decodeCell = ["stored", "stored", "—"]
        if let reference {
            var out = [UInt8](repeating: 0, count: raw.count)
            swiftDecompress(reference, into: &out)
            precondition(out == raw, "\(kind): the Swift decoder differs")
            let decodeC = seconds { liblz4Decompress(reference, into: &out) }
            let decodeSwift = seconds { swiftDecompress(reference, into: &out) }
            decodeCell = [mbps(raw.count, decodeC), mbps(raw.count, decodeSwift), speedRatio(liblz4: decodeC, swift: decodeSwift)]
        }
        let sizes = [reference, mine].map { $0.map { String($0.count) } ?? "stored" }
        print("| \(kind) | \(level) | \(sizes[0]) | \(sizes[1]) | \(mbps(raw.count, encodeC)) | \(mbps(raw.count, encodeSwift)) | \(speedRatio(liblz4: encodeC, swift: encodeSwift)) | "
              + decodeCell.joined(separator: " | ") + " |")
    }
}
