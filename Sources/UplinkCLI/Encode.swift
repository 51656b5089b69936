import ArgumentParser
import Foundation
import UplinkCodec
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink encode`: tensor file in, frame out.
    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode an update (.npy or .safetensors) into a frame.",
            discussion: """
                Example: uplink encode --pipeline "fp16 | lz4" --in update.npy --out frame.upl --json
                """)

        @Option(help: "The pipeline spec, for example \"fp16 | lz4\" (see docs/pipeline.md).")
        var pipeline: String

        @Option(name: .customLong("in"), help: "The update: a float .npy array or a .safetensors file.")
        var input: String

        @Option(name: .customLong("out"), help: "Where to write the frame.")
        var output: String

        @Option(help: "Client state file for stateful stages (error feedback); read if present, written after encoding.")
        var state: String?

        @Option(help: "The training round id written into the frame.")
        var round: UInt64 = 0

        @Option(help: "The number of local training samples behind the update (the aggregation weight).")
        var samples: UInt64 = 1

        @Flag(help: "Leave the tensor table out of the frame; decoding then needs --layout.")
        var omitLayout = false

        @Option(help: "Uncompressed bytes per section (1 to 67108864); smaller sections cost 24 bytes each but can be checked and decompressed independently.")
        var sectionBytes: Int = FrameFormat.defaultChunkLength

        @Flag(help: "Print a JSON summary instead of text.")
        var json = false

        @Flag(help: "Leave tensors that are not floating point (int64 counters, bool masks) out of the update (decode with the same flag on --layout) instead of refusing the file.")
        var skipNonFloat = false

        func run() throws {
            try reportingErrors(json: json) {
                let spec = try Pipeline(parsing: pipeline)
                let (update, report) = try TensorFiles.loadReporting(path: input, nonFloat: skipNonFloat ? .skip : .refuse)
                for line in report.lines { note(line) }
                guard (1...FrameFormat.maxSectionRawLength).contains(sectionBytes) else {
                    throw UplinkError(.invalidArgument, "--section-bytes \(sectionBytes) is outside 1…\(FrameFormat.maxSectionRawLength)")
                }
                var encoder = FrameEncoder(
                    layout: update.layout, pipeline: spec, includeTensorTable: !omitLayout,
                    writer: FrameWriter(chunkLength: sectionBytes))
                if let state {
                    if spec.errorFeedback == nil {
                        note("pipeline \"\(spec)\" has no error-feedback stage; --state \(state) is not read or written")
                    } else if FileManager.default.fileExists(atPath: state) {
                        do throws(UplinkError) {
                            try encoder.restoreState(try TensorFiles.readFile(state))
                        } catch {
                            throw UplinkError(error.code, "\(state): \(error.message)")
                        }
                    }
                }
                let frame = try encoder.encode(update.values, round: round, sampleCount: samples)
                // Decode what was written: it proves the frame and measures the error.
                let decoded = try FrameDecoder(limits: .forModel(update.layout)).decode(frame, layout: update.layout)
                // Frame first, then state: a crash in between re-sends rather than loses an update.
                try TensorFiles.writeFile(output, frame)
                if let state, let ef = encoder.errorFeedback {
                    try TensorFiles.writeFile(state, ef.serialized())
                }
                let summary = EncodeSummary(update: update.values, decoded: decoded)
                if json {
                    printJSON(summary.json(input: input, output: output))
                } else {
                    print(summary.text(output: output))
                }
            }
        }
    }
}

/// What `uplink encode` reports about one frame.
struct EncodeSummary {
    var header: FrameHeader
    var decoded: DecodedFrame
    var relativeL2Error: Double
    var maxAbsError: Double

    init(update: [Float], decoded: DecodedFrame) {
        self.header = decoded.header
        self.decoded = decoded
        var diff = 0.0, norm = 0.0, maxAbs = 0.0
        for i in 0..<update.count {
            let d = Double(update[i]) - Double(decoded.values[i])
            diff += d * d
            norm += Double(update[i]) * Double(update[i])
            maxAbs = max(maxAbs, abs(d))
        }
        relativeL2Error = norm > 0 ? (diff / norm).squareRoot() : (diff > 0 ? .infinity : 0)
        maxAbsError = maxAbs
    }

    var k: Int { decoded.transmittedCount }
    func streamBytes(_ kind: StreamKind) -> Int { header.streamBytes(kind) }
    /// Wire bits per transmitted position (index stream), when the frame has one.
    var bitsPerPosition: Double? { decoded.indexSummary == nil || k == 0 ? nil : Double(streamBytes(.indices) * 8) / Double(k) }
    var bitsPerPositionBound: Double { IndexCoding.entropyBoundBitsPerPosition(n: header.parameterCount, k: k) }
    /// Wire bits per transmitted value (values and scales streams).
    var bitsPerValue: Double { k == 0 ? 0 : Double((streamBytes(.values) + streamBytes(.scales)) * 8) / Double(k) }
    /// Frame bits per model parameter.
    var bitsPerParameter: Double { Double(header.frameLength * 8) / Double(header.parameterCount) }

    func json(input: String, output: String) -> [String: Any] {
        var out: [String: Any] = [
            "input": input, "output": output, "pipeline": header.pipeline.description,
            "parameters": header.parameterCount, "tensors": header.tensorCount,
            "round": header.round, "samples": header.sampleCount,
            "bytes": header.frameLength, "float32_bytes": header.float32Bytes,
            "ratio_to_float32": header.compressionRatio, "bits_per_value": bitsPerValue,
            "bits_per_parameter": bitsPerParameter, "transmitted": k, "density": Double(k) / Double(header.parameterCount),
            "relative_l2_error": relativeL2Error, "max_abs_error": maxAbsError,
            "sections": header.sections.count, "fingerprint": header.fingerprintHex,
            "index_bytes": streamBytes(.indices), "scale_bytes": streamBytes(.scales), "value_bytes": streamBytes(.values),
        ]
        if let bitsPerPosition, let s = decoded.indexSummary {
            out["bits_per_position"] = bitsPerPosition
            out["bits_per_position_bound"] = bitsPerPositionBound
            out["bits_per_position_over_bound"] = bitsPerPositionBound > 0 ? bitsPerPosition / bitsPerPositionBound - 1 : 0
            out["index_method"] = s.method.description
            if s.method == .rice { out["rice_parameter"] = s.riceParameter }
        }
        return out
    }

    func text(output: String) -> String {
        var lines = [
            "wrote \(output): \(header.frameLength) bytes (\(humanBytes(header.frameLength))) for \(header.parameterCount) parameters",
            "  pipeline          \(header.pipeline)",
            "  ratio to float32  \(String(format: "%.2f", header.compressionRatio))× (\(humanBytes(header.float32Bytes)) dense)",
            "  transmitted       \(k) values (\(String(format: "%.4g", 100 * Double(k) / Double(header.parameterCount)))%), \(String(format: "%.3f", bitsPerValue)) bits per value",
        ]
        if let bitsPerPosition, let s = decoded.indexSummary {
            lines.append(
                "  positions         \(String(format: "%.3f", bitsPerPosition)) bits each (\(s.method)), bound log2 C(n,k)/k = \(String(format: "%.3f", bitsPerPositionBound)) (\(String(format: "%+.2f", 100 * (bitsPerPosition / bitsPerPositionBound - 1)))%)")
        }
        lines.append("  bits per param    \(String(format: "%.4f", bitsPerParameter))")
        lines.append("  relative L2 error \(String(format: "%.3g", relativeL2Error)) (max abs \(String(format: "%.3g", maxAbsError)))")
        return lines.joined(separator: "\n")
    }
}
