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

        @Option(help: "Most parameters a frame may declare when no --layout is given (a frame claiming more is refused before anything is allocated; error 403).")
        var maxParams: Int = defaultMaxParams

        @Flag(help: "Print a JSON summary instead of text.")
        var json = false

        func run() throws {
            try reportingErrors(json: json) {
                let expected = try layout.map { (p) throws(UplinkError) in try TensorFiles.loadLayout(path: p) }
                let limits = try decodeLimits(maxParams: maxParams, layout: expected)
                let frame = try TensorFiles.readFile(input, maxBytes: limits.maxFrameBytes)
                let decoded: DecodedFrame
                do {
                    decoded = try FrameDecoder(limits: limits).decode(frame, layout: expected)
                } catch let error as UplinkError {
                    throw UplinkError(error.code, "\(input): \(error.message)")
                }
                let set = try TensorSet(layout: decoded.layout, values: decoded.values)
                try TensorFiles.save(set, path: output, note: note)
                let h = decoded.header
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
