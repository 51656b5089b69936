import ArgumentParser
import Foundation
import UplinkCodec

/// The `uplink` command-line tool.
public struct UplinkCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "uplink",
        abstract: "Compress federated-learning model updates for mobile uplinks, and inspect the frames.",
        discussion: """
            Pipelines are written as stages joined by '|', for example "fp16 | lz4" or \
            "fp32 | zlib level=9". See docs/pipeline.md for every stage and docs/wire-format.md \
            for the frame format.
            """,
        subcommands: [Encode.self, Decode.self, Inspect.self, Compare.self, Aggregate.self, Train.self, Simulate.self, Bench.self, Privacy.self, Serve.self, Token.self, Participate.self, Upload.self]
    )

    public init() {}
}

/// Runs `body`, turning an ``UplinkError`` into one line on standard error (and, with `json`,
/// a JSON error object on standard output) and exit status 1.
func reportingErrors(json: Bool, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as UplinkError {
        FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
        if json {
            printJSON(["error": ["code": Int(error.code.rawValue), "category": error.category.rawValue, "message": error.message]])
        }
        throw ExitCode(1)
    }
}

/// Prints `object` as pretty JSON with sorted keys.
func printJSON(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
    print(String(decoding: data, as: UTF8.self))
}

/// A note for the user on standard error.
func note(_ text: String) {
    FileHandle.standardError.write(Data("uplink: note: \(text)\n".utf8))
}

/// `decode` and `inspect` accept frames of at most 2^28 parameters (1 GiB of float32) unless
/// `--max-params` or `--layout` says otherwise.
let defaultMaxParams = 1 << 28

/// The limits `decode` and `inspect` read a frame with: at most `maxParams` parameters (or the
/// given layout's count, if larger) and a frame at most twice their float32 size plus 1 MiB.
/// A frame for another model is still reported as exactly that (error 300).
func decodeLimits(maxParams: Int, layout: ModelLayout?) throws(UplinkError) -> FrameLimits {
    guard maxParams >= 1, maxParams <= 1 << 40 else {
        throw UplinkError(.invalidArgument, "--max-params \(maxParams) is outside 1…2^40")
    }
    let n = max(maxParams, layout?.parameterCount ?? 0)
    var limits = FrameLimits.default
    limits.maxParameters = n
    limits.maxFrameBytes = 8 * n + (1 << 20)
    return limits
}

/// `"214.00× smaller than float32"`, or `"1.03× larger than float32"` for a frame that did not shrink.
func ratioToFloat32(float32Bytes: Int, frameBytes: Int) -> String {
    let r = Double(float32Bytes) / Double(max(1, frameBytes))
    return r >= 1 ? String(format: "%.2f× smaller than float32", r) : String(format: "%.2f× larger than float32", 1 / r)
}

/// `12345678` → `"12.3 MB"`.
func humanBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(n)
    var u = 0
    while v >= 1000, u < units.count - 1 { v /= 1000; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// Entry point of the `uplink` executable.
public func runUplink() async {
    await UplinkCommand.main()
}
