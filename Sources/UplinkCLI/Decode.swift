import ArgumentParser
import Foundation
import UplinkCodec
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink decode`: frame in, tensor file out.
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a frame into an update (.npy or .safetensors).",
            discussion: "Example: uplink decode --in frame.upl --out update.npy")

        @Option(name: .customLong("in"), help: "The frame.")
        var input: String

        @Option(name: .customLong("out"), help: "Where to write the update (.npy or .safetensors).")
        var output: String

        @Option(help: "The model layout (.safetensors or .npy); required for frames encoded with --omit-layout, checked against the frame otherwise.")
        var layout: String?

        @Option(parsing: .unconditional, help: "Most parameters a frame may declare when no --layout is given (a frame claiming more is refused before anything is allocated; error 403).")
        var maxParams: Int = defaultMaxParams

        @Flag(help: "Print a JSON summary instead of text.")
        var json = false

        @Flag(help: "Leave tensors that are not floating point (int64 counters, bool masks) out of the --layout file instead of refusing the file.")
        var skipNonFloat = false

        func run() throws {
            try reportingErrors(json: json) {
                let expected = try layout.map { (p) throws(UplinkError) in try TensorFiles.loadLayout(path: p, nonFloat: skipNonFloat ? .skip : .refuse) }
                let limits = try decodeLimits(maxParams: maxParams, layout: expected)
                let frame = try TensorFiles.readFile(input, maxBytes: limits.maxFrameBytes)
                let prepared: PreparedFrame
                do {
                    prepared = try FrameDecoder(limits: limits).prepare(frame, layout: expected)
                } catch let error as UplinkError {
                    throw UplinkError(error.code, "\(input): \(error.message)")
                }
                // Streamed out block by block: memory is the frame's decoded streams plus one
                // block, not the dense update and a file-sized buffer besides.
                let h = prepared.header
                let n = h.parameterCount
                if TensorFiles.fileExtension(output) == "npy", prepared.layout.tensors.count > 1 {
                    note("\(prepared.layout.tensors.count) tensors written to \(output) as one flat vector of \(n) values; use .safetensors to keep names and shapes")
                }
                let writer = try TensorFileWriter(path: output, layout: prepared.layout)
                var block = [Float](repeating: 0, count: min(n, 1 << 16))
                var start = 0
                while start < n {
                    let end = min(n, start + block.count)
                    try block.withUnsafeMutableBufferPointer { (b) throws(UplinkError) in
                        let part = UnsafeMutableBufferPointer(rebasing: b[0..<(end - start)])
                        prepared.decode(parameters: start..<end, into: part)
                        try writer.write(UnsafeBufferPointer(part))
                    }
                    start = end
                }
                try writer.finish()
                if json {
                    printJSON([
                        "input": input, "output": output, "pipeline": h.pipeline.description,
                        "parameters": h.parameterCount, "tensors": h.tensorCount, "round": h.round,
                        "samples": h.sampleCount, "bytes": h.frameLength, "fingerprint": h.fingerprintHex,
                    ])
                } else {
                    print("wrote \(output): \(h.parameterCount) parameters in \(h.tensorCount) tensor(s) from \(h.frameLength) bytes (\(h.pipeline))")
                }
            }
        }
    }
}
