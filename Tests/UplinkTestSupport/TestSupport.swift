import Foundation
import UplinkCodec

/// Locates files under the repository's `fixtures/` from the source path, as swift-crypto's
/// Wycheproof tests do, so fixtures stay outside any target.
public enum Fixtures {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    public static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(relative)))
    }

    /// The layout (tensors sorted by name) and flat values of an F32 `.safetensors` fixture,
    /// parsed here independently of UplinkTensorIO so codec tests do not depend on it.
    public static func safetensors(_ relative: String) throws -> (layout: ModelLayout, values: [Float]) {
        let b = try bytes(relative)
        let n = Int(b[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try JSONSerialization.jsonObject(with: Data(b[8..<(8 + n)])) as! [String: Any]
        var tensors: [TensorSpec] = []
        var values: [Float] = []
        for name in header.keys.sorted() where name != "__metadata__" {
            let entry = header[name] as! [String: Any]
            let offsets = (entry["data_offsets"] as! [NSNumber]).map(\.intValue)
            tensors.append(TensorSpec(name: name, shape: (entry["shape"] as! [NSNumber]).map(\.intValue)))
            b.withUnsafeBytes { raw in
                for i in stride(from: 8 + n + offsets[0], to: 8 + n + offsets[1], by: 4) {
                    values.append(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))))
                }
            }
        }
        return (try ModelLayout(tensors), values)
    }

    /// The float32 data of a version 1.0 little-endian `.npy` fixture (as written by Uplink).
    public static func npyFloats(_ relative: String) throws -> [Float] {
        let b = try bytes(relative)
        let start = 10 + Int(b[8]) + Int(b[9]) << 8
        return stride(from: start, to: b.count, by: 4).map {
            Float(bitPattern: UInt32(b[$0]) | UInt32(b[$0 + 1]) << 8 | UInt32(b[$0 + 2]) << 16 | UInt32(b[$0 + 3]) << 24)
        }
    }
}

extension FrameDecoder {
    /// The code `decode` fails with, or `nil` when the frame decodes.
    public func errorCode(_ frame: [UInt8]) -> UplinkError.Code? {
        do {
            _ = try decode(frame)
            return nil
        } catch {
            return error.code
        }
    }
}

extension FrameEncoder {
    /// Encodes one update with a copy of this encoder (for stateless tests).
    public func encodeOnce(_ update: [Float], round: UInt64 = 0, sampleCount: UInt64 = 1) throws(UplinkError) -> [UInt8] {
        var copy = self
        return try copy.encode(update, round: round, sampleCount: sampleCount)
    }
}

public enum TestData {
    /// A heavy-tailed update like a real one: Student-t-ish values (ratio of normals), a fraction
    /// of exact zeros, scaled by `scale`.
    public static func heavyTailed(count: Int, seed: UInt64, zeroFraction: Double = 0.3, scale: Float = 0.01) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            if Double.random(in: 0..<1, using: &rng) < zeroFraction { return 0 }
            let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng)
            let u2 = Double.random(in: 0..<1, using: &rng)
            let normal = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
            let chi = Double.random(in: 0.2..<1.5, using: &rng)
            return Float(normal / chi) * scale
        }
    }

    /// Uniform values in `-1..<1`: incompressible as float32.
    public static func uniform(count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float.random(in: -1..<1, using: &rng) }
    }
}

/// A crafted frame: build a header field by field, then fix the header CRC, to test the
/// reader's checks beyond the checksum.
public struct FrameBuilder {
    public var version: UInt16 = 1
    public var flags: UInt16 = 1
    public var fingerprint: UInt64? = nil
    public var round: UInt64 = 0
    public var samples: UInt64 = 1
    public var parameterCount: UInt64
    public var tensorCount: UInt32
    public var descriptor: [UInt8] = Pipeline().descriptor
    public var table: [UInt8]
    public var sections: [[UInt8]] = []
    public var payload: [UInt8] = []
    public var sectionCountOverride: UInt32? = nil

    /// A builder for a one-tensor model named "w" of shape `[count]`.
    public init(count: Int) {
        parameterCount = UInt64(count)
        tensorCount = 1
        var t = ByteWriter()
        t.write(UInt16(1)); t.write(bytes: Array("w".utf8)); t.write(UInt8(1)); t.write(UInt64(count))
        table = t.bytes
    }

    public static func section(kind: UInt8 = 1, codec: UInt8 = 0, level: UInt8 = 0, reserved: UInt8 = 0, crc: UInt32, raw: UInt64, stored: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.write(kind); w.write(codec); w.write(level); w.write(reserved); w.write(crc); w.write(raw); w.write(stored)
        return w.bytes
    }

    public func fnvFingerprint() -> UInt64 {
        var h = FNV1a64()
        withUnsafeBytes(of: tensorCount.littleEndian) { h.combine($0) }
        h.combine(table)
        return h.value
    }

    public func build() -> [UInt8] {
        var header = ByteWriter()
        header.write(fingerprint ?? fnvFingerprint())
        header.write(round); header.write(samples); header.write(parameterCount)
        header.write(tensorCount); header.write(sectionCountOverride ?? UInt32(sections.count))
        header.write(UInt16(descriptor.count)); header.write(bytes: descriptor)
        if flags & 1 != 0 { header.write(bytes: table) }
        for s in sections { header.write(bytes: s) }
        var w = ByteWriter()
        w.write(bytes: FrameFormat.magic); w.write(version); w.write(flags); w.write(UInt32(header.count))
        w.write(bytes: header.bytes)
        w.write(CRC32C.checksum(w.bytes))
        w.write(bytes: payload)
        return w.bytes
    }
}

extension Array where Element == Float {
    /// Little-endian float32 bytes.
    public var float32LE: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * 4)
        for v in self { Swift.withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }
}

/// A temporary directory for one test, removed when the value goes away.
public final class ScratchDirectory {
    public let url: URL

    public init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `bytes` to `name` (creating its folders) and returns its path.
    @discardableResult public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = path(name)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Writes `text` as UTF-8 to `name` and returns its path.
    @discardableResult public func write(_ name: String, _ text: String) throws -> String { try write(name, Array(text.utf8)) }

    public func read(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url.appendingPathComponent(name))) }
}

/// What a finished program printed and its exit status.
public struct ToolResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` with `arguments` in `directory` to completion, capturing its output.
public func runTool(_ executable: URL, _ arguments: [String], in directory: URL) throws -> ToolResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.currentDirectoryURL = directory
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ToolResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
