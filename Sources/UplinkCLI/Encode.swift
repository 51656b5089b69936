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

        func run() throws {
            try reportingErrors(json: json) {
                let spec = try Pipeline(parsing: pipeline)
                let update = try TensorFiles.load(path: input)
                if state != nil {
                    note("pipeline \"\(spec)\" has no stateful stage; --state \(state!) is not read or written")
                }
                guard (1...FrameFormat.maxSectionRawLength).contains(sectionBytes) else {
                    throw UplinkError(.invalidArgument, "--section-bytes \(sectionBytes) is outside 1…\(FrameFormat.maxSectionRawLength)")
                }
                let encoder = FrameEncoder(
                    layout: update.layout, pipeline: spec, includeTensorTable: !omitLayout,
                    writer: FrameWriter(chunkLength: sectionBytes))
                let frame = try encoder.encode(update.values, round: round, sampleCount: samples)
                // Decode what was written: it proves the frame and measures the error.
                let decoded = try FrameDecoder(limits: .forModel(update.layout)).decode(frame, layout: update.layout)
                try TensorFiles.writeFile(output, frame)
                let summary = EncodeSummary(update: update.values, decoded: decoded.values, header: decoded.header)
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
    var relativeL2Error: Double
    var maxAbsError: Double

    init(update: [Float], decoded: [Float], header: FrameHeader) {
        self.header = header
        var diff = 0.0, norm = 0.0, maxAbs = 0.0
        for i in 0..<update.count {
            let d = Double(update[i]) - Double(decoded[i])
            diff += d * d
            norm += Double(update[i]) * Double(update[i])
            maxAbs = max(maxAbs, abs(d))
        }
        relativeL2Error = norm > 0 ? (diff / norm).squareRoot() : (diff > 0 ? .infinity : 0)
        maxAbsError = maxAbs
    }

    var bitsPerValue: Double { Double(header.frameLength * 8) / Double(header.parameterCount) }

    func json(input: String, output: String) -> [String: Any] {
        [
            "input": input, "output": output, "pipeline": header.pipeline.description,
            "parameters": header.parameterCount, "tensors": header.tensorCount,
            "round": header.round, "samples": header.sampleCount,
            "bytes": header.frameLength, "float32_bytes": header.float32Bytes,
            "ratio_to_float32": header.compressionRatio, "bits_per_value": bitsPerValue,
            "relative_l2_error": relativeL2Error, "max_abs_error": maxAbsError,
            "sections": header.sections.count, "fingerprint": header.fingerprintHex,
        ]
    }

    func text(output: String) -> String {
        """
        wrote \(output): \(header.frameLength) bytes (\(humanBytes(header.frameLength))) for \(header.parameterCount) parameters
          pipeline          \(header.pipeline)
          ratio to float32  \(String(format: "%.2f", header.compressionRatio))× (\(humanBytes(header.float32Bytes)) dense)
          bits per value    \(String(format: "%.3f", bitsPerValue))
          relative L2 error \(String(format: "%.3g", relativeL2Error)) (max abs \(String(format: "%.3g", maxAbsError)))
        """
    }
}
