import Benchmark
import UplinkCodec

/// A heavy-tailed update with exact zeros, like real client deltas, from a fixed seed.
func syntheticUpdate(count: Int, seed: UInt64) -> [Float] {
    var state = seed
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    return (0..<count).map { _ in
        let r = next()
        if r % 10 < 3 { return 0 }
        let u = Float(r >> 40) / Float(1 << 24) - 0.5
        return u * u * u * 0.05
    }
}

let benchmarks: @Sendable () -> Void = {
    let n = 1_000_000
    let layout = try! ModelLayout(name: "update", count: n)
    let update = syntheticUpdate(count: n, seed: 1)

    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        warmupIterations: 2,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 50)

    for spec in ["fp32 | stored", "fp32 | lz4", "fp32 | zlib level=1", "fp16 | lz4"] {
        var encoder = FrameEncoder(layout: layout, pipeline: try! Pipeline(parsing: spec))
        Benchmark("encode 1M \(spec)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try encoder.encode(update))
            }
        }
        let frame = try! encoder.encode(update)
        var sum = [Float](repeating: 0, count: n)
        Benchmark("accumulate 1M \(spec)") { benchmark in
            for _ in benchmark.scaledIterations {
                try sum.withUnsafeMutableBufferPointer { dest in
                    try frame.withUnsafeBytes { _ = try FrameDecoder().accumulate($0, into: dest, weight: 0.5, layout: layout) }
                }
            }
        }
    }

    let bytes = [UInt8](repeating: 0xA5, count: 4 << 20)
    Benchmark("crc32c 4 MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(bytes.withUnsafeBytes { CRC32C.checksum($0) })
        }
    }
}
