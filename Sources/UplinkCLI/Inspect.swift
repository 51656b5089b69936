import ArgumentParser
import Foundation
import UplinkCodec
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink inspect`: what a frame holds, without decoding the values.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a frame's header and sections, and verify its checksums.",
            discussion: "Example: uplink inspect frame.upl --json")

        @Argument(help: "The frame.")
        var frame: String

        @Option(help: "The model layout (.safetensors or .npy), for frames encoded with --omit-layout; with it the frame is decoded and checked in full.")
        var layout: String?

        @Option(parsing: .unconditional, help: "Most parameters a frame may declare when no --layout is given (a frame claiming more is refused before anything is allocated; error 403).")
        var maxParams: Int = defaultMaxParams

        @Flag(help: "Print JSON instead of text.")
        var json = false

        @Flag(help: "Leave tensors that are not floating point (int64 counters, bool masks) out of the --layout file instead of refusing the file.")
        var skipNonFloat = false

        func run() throws {
            try reportingErrors(json: json) {
                let expected = try layout.map { (p) throws(UplinkError) in try TensorFiles.loadLayout(path: p, nonFloat: skipNonFloat ? .skip : .refuse) }
                let limits = try decodeLimits(maxParams: maxParams, layout: expected)
                let bytes = try TensorFiles.readFile(frame, maxBytes: limits.maxFrameBytes)
                let header: FrameHeader
                var prepared: PreparedFrame?
                do {
                    header = try bytes.withUnsafeBytes { raw -> FrameHeader in
                        let h = try FrameReader.readHeader(raw, limits: limits)
                        try FrameReader.verifySectionChecksums(raw, h)
                        return h
                    }
                    // Decode in full when the layout is known: checks every stream and gives k.
                    if header.tensors != nil || expected != nil {
                        prepared = try FrameDecoder(limits: limits).prepare(bytes, layout: expected)
                    }
                } catch let error as UplinkError {
                    throw UplinkError(error.code, "\(frame): \(error.message)")
                }
                if json { printJSON(inspectJSON(header, prepared)) } else { print(inspectText(header, prepared)) }
            }
        }

        func inspectJSON(_ h: FrameHeader, _ p: PreparedFrame?) -> [String: Any] {
            var out: [String: Any] = [
                "file": frame, "format_version": Int(h.version), "flags": Int(h.flags.rawValue),
                "fingerprint": h.fingerprintHex, "round": h.round, "samples": h.sampleCount,
                "parameters": h.parameterCount, "tensor_count": h.tensorCount,
                "pipeline": h.pipeline.description, "header_bytes": h.headerLength,
                "bytes": h.frameLength, "float32_bytes": h.float32Bytes, "ratio_to_float32": h.compressionRatio,
                "checksums_verified": true,
                "sections": h.sections.enumerated().map { i, s -> [String: Any] in
                    [
                        "index": i, "stream": s.stream.description, "codec": s.codec.description,
                        "level": Int(s.level), "raw_bytes": s.rawLength, "stored_bytes": s.storedLength,
                        "offset": s.offset, "crc32c": String(format: "%08x", s.checksum),
                    ]
                },
            ]
            if let tensors = h.tensors {
                out["tensors"] = tensors.map { ["name": $0.name, "shape": $0.shape] as [String: Any] }
            }
            out["decoded_and_verified"] = p != nil
            if let p {
                out["transmitted"] = p.transmittedCount
                out["density"] = Double(p.transmittedCount) / Double(h.parameterCount)
                if let s = p.indexSummary {
                    let bits = Double(h.streamBytes(.indices) * 8) / Double(max(1, s.count))
                    let bound = IndexCoding.entropyBoundBitsPerPosition(n: h.parameterCount, k: s.count)
                    out["index_method"] = s.method.description
                    if s.method == .rice { out["rice_parameter"] = s.riceParameter }
                    out["bits_per_position"] = bits
                    out["bits_per_position_bound"] = bound
                }
            }
            return out
        }

        func inspectText(_ h: FrameHeader, _ p: PreparedFrame?) -> String {
            var lines = [
                "\(frame): Uplink frame v\(h.version), \(h.frameLength) bytes (\(humanBytes(h.frameLength)))",
                "  pipeline     \(h.pipeline)",
                "  model        \(h.fingerprintHex): \(h.tensorCount) tensor(s), \(h.parameterCount) parameters",
                "  round        \(h.round), samples \(h.sampleCount)",
                "  ratio        \(ratioToFloat32(float32Bytes: h.float32Bytes, frameBytes: h.frameLength)) (\(humanBytes(h.float32Bytes)))",
                "  header       \(h.headerLength) bytes, checksums verified",
            ]
            if let p {
                var line = "  transmitted  \(p.transmittedCount) of \(h.parameterCount) values (\(String(format: "%.4g", 100 * Double(p.transmittedCount) / Double(h.parameterCount)))%)"
                if let s = p.indexSummary {
                    let bits = Double(h.streamBytes(.indices) * 8) / Double(max(1, s.count))
                    let bound = IndexCoding.entropyBoundBitsPerPosition(n: h.parameterCount, k: s.count)
                    line += ", positions \(s.method)\(s.method == .rice ? " r=\(s.riceParameter)" : ""): \(String(format: "%.3f", bits)) bits each (bound \(String(format: "%.3f", bound)))"
                }
                lines.append(line)
            } else {
                lines.append("  values       not decoded (pass --layout to check the streams)")
            }
            if let tensors = h.tensors {
                for t in tensors.prefix(20) { lines.append("  tensor       \(t)") }
                if tensors.count > 20 { lines.append("  …            \(tensors.count - 20) more tensors") }
            } else {
                lines.append("  tensor table omitted (decode with --layout)")
            }
            lines.append("  sections     #  stream   codec    raw bytes  stored bytes")
            for (i, s) in h.sections.enumerated() {
                lines.append(
                    "               " + pad(String(i), 3) + pad(s.stream.description, 9) + pad(s.codec.description, 7)
                        + pad(String(s.rawLength), 11, left: true) + pad(String(s.storedLength), 14, left: true))
            }
            return lines.joined(separator: "\n")
        }

        private func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, width - s.count))
            return left ? fill + s : s + fill
        }
    }
}
