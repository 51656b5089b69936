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
        .executableTarget(
            name: "FrameBenchmarks",
            dependencies: [
                .product(name: "UplinkCodec", package: uplinkPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FrameBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "StageBenchmarks",
            dependencies: [
                .product(name: "UplinkCodec", package: uplinkPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/StageBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "AggregationBenchmarks",
            dependencies: [
                .product(name: "UplinkAggregation", package: uplinkPackage),
                .product(name: "UplinkCodec", package: uplinkPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/AggregationBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
