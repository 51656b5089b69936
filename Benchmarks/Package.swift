// swift-tools-version: 6.1
// Benchmarks live in their own package so that `swift test` on the main package stays fast and
// does not build package-benchmark. Run: cd Benchmarks && swift package benchmark
import Foundation
import PackageDescription

// A path dependency's identity is its directory name, which differs between checkouts
// (`main`, a CI clone, …); derive it instead of hard-coding it.
let uplinkPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "UplinkBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        ("StageBenchmarks", ["UplinkCodec"]),
        ("AggregationBenchmarks", ["UplinkCodec", "UplinkAggregation"]),
    ].map { name, products in
        .executableTarget(
            name: name,
            dependencies: products.map { .product(name: $0, package: uplinkPackage) }
                + [.product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/\(name)",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    } + [
        // Swift LZ4 codec against liblz4, speed as ratios (docs/benchmarks.md); not a benchmark suite.
        .executableTarget(
            name: "LZ4Compare",
            dependencies: [.product(name: "UplinkCodec", package: uplinkPackage)],
            path: "Tools/LZ4Compare"
        ),
    ]
)
