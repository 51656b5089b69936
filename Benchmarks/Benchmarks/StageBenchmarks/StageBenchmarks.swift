import Benchmark
import UplinkCodec

/// A heavy-tailed update with exact zeros, like real client deltas, from a fixed seed.
func syntheticUpdate(count: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in
        let r = rng.next()
        if r % 10 < 3 { return 0 }
        let u = Float(r >> 40) / Float(1 << 24) - 0.5
        return u * u * u * 0.05
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 30)

    let bytes = [UInt8](repeating: 0xA5, count: 4 << 20)
    Benchmark("crc32c 4 MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(bytes.withUnsafeBytes { CRC32C.checksum($0) })
        }
    }

    for n in [1_000_000, 10_000_000] {
        let label = n == 1_000_000 ? "1M" : "10M"
        let layout = try! ModelLayout(name: "update", count: n)
        let update = syntheticUpdate(count: n, seed: 1)
        let specs = ["ef | topk 1% | int8 | lz4", "ef | topk 0.1% | int4 | lz4", "topk 1% | fp32 | stored", "ef | sign block=1024 | lz4", "int8 | stored"]
            + (n == 1_000_000 ? ["fp32 | stored", "fp32 | lz4", "fp32 | zlib level=1", "fp16 | lz4"] : [])
        for spec in specs {
            var encoder = FrameEncoder(layout: layout, pipeline: try! Pipeline(parsing: spec))
            Benchmark("encode \(label) \(spec)") { benchmark in
                for _ in benchmark.scaledIterations {
                    blackHole(try encoder.encode(update))
                }
            }
            let frame = try! encoder.encode(update)
            var sum = [Float](repeating: 0, count: n)
            Benchmark("accumulate \(label) \(spec)") { benchmark in
                for _ in benchmark.scaledIterations {
                    try sum.withUnsafeMutableBufferPointer { dest in
                        try frame.withUnsafeBytes { _ = try FrameDecoder().accumulate($0, into: dest, weight: 0.5, layout: layout) }
                    }
                }
            }
        }
        for density in [0.01, 0.001] {
            let k = Int(Double(n) * density)
            var rng = SplitMix64(seed: 3)
            var chosen = Set<Int>()
            while chosen.count < k { chosen.insert(Int(rng.below(UInt64(n)))) }
            let indices = chosen.sorted()
            Benchmark("index encode \(label) density \(density)") { benchmark in
                for _ in benchmark.scaledIterations {
                    blackHole(indices.withUnsafeBufferPointer { IndexCoding.encode($0, n: n) })
                }
            }
            let coded = indices.withUnsafeBufferPointer { IndexCoding.encode($0, n: n) }
            Benchmark("index decode \(label) density \(density)") { benchmark in
                for _ in benchmark.scaledIterations {
                    blackHole(try coded.withUnsafeBytes { try IndexCoding.decode($0, n: n) })
                }
            }
        }
    }
}
