import Benchmark
import Dispatch
import UplinkAggregation
import UplinkCodec

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .peakMemoryResident],
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(5),
        maxIterations: 20)

    let n = 1_000_000
    let layout = try! ModelLayout(name: "w", count: n)
    // 100 clients' frames of a 1M-parameter model, EF + top-1% + int8 + LZ4.
    let frames: [[UInt8]] = (0..<100).map { c in
        var rng = SplitMix64(seed: UInt64(c))
        let update = (0..<n).map { _ in Float(Int64(bitPattern: rng.next() >> 8)) * 0x1p-70 }
        var encoder = FrameEncoder(layout: layout, pipeline: try! Pipeline(parsing: "ef | topk 1% | int8 | lz4"))
        return try! encoder.encode(update, round: 1, sampleCount: UInt64(c + 1))
    }
    for threads in [1, 2] {
        Benchmark("fedavg round of 100 sparse frames, 1M params, \(threads) thread(s)") { benchmark in
            for _ in benchmark.scaledIterations {
                let round = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1), shards: threads)
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    for i in stride(from: t, to: frames.count, by: threads) { _ = try? round.submit(frames[i], clientID: "c\(i)") }
                }
                blackHole(try round.close())
            }
        }
    }
}
