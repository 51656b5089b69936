// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Uplink",
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .library(name: "UplinkCodec", targets: ["UplinkCodec"]),
        .library(name: "UplinkTensorIO", targets: ["UplinkTensorIO"]),
        .library(name: "UplinkAggregation", targets: ["UplinkAggregation"]),
        .library(name: "UplinkSimulation", targets: ["UplinkSimulation"]),
        .library(name: "UplinkPrivacy", targets: ["UplinkPrivacy"]),
        .executable(name: "uplink", targets: ["uplink"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CUplinkLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
        ),
        .systemLibrary(
            name: "CUplinkZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        .systemLibrary(
            name: "CUplinkCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl"])]
        ),
        .target(
            name: "UplinkCodec",
            dependencies: ["CUplinkLZ4", "CUplinkZlib"]
        ),
        .target(
            name: "UplinkTensorIO",
            dependencies: ["UplinkCodec"]
        ),
        .target(
            name: "UplinkAggregation",
            dependencies: ["UplinkCodec", "CUplinkCrypto"]
        ),
        .target(
            name: "UplinkPrivacy",
            dependencies: ["UplinkCodec"]
        ),
        .target(
            name: "UplinkSimulation",
            dependencies: ["UplinkCodec", "UplinkAggregation", "UplinkPrivacy", "CUplinkZlib"]
        ),
        .target(
            name: "UplinkCLI",
            dependencies: [
                "UplinkCodec",
                "UplinkTensorIO",
                "UplinkAggregation",
                "UplinkSimulation",
                "UplinkPrivacy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "uplink",
            dependencies: ["UplinkCLI"]
        ),
        .target(
            name: "UplinkTestSupport",
            dependencies: ["UplinkCodec"],
            path: "Tests/UplinkTestSupport"
        ),
        .testTarget(
            name: "UplinkCodecTests",
            dependencies: ["UplinkCodec", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkTensorIOTests",
            dependencies: ["UplinkTensorIO", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkAggregationTests",
            dependencies: ["UplinkAggregation", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkPrivacyTests",
            dependencies: ["UplinkPrivacy", "UplinkAggregation", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkSimulationTests",
            dependencies: ["UplinkSimulation", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkCLITests",
            dependencies: ["UplinkCLI", "UplinkTensorIO", "UplinkSimulation", "UplinkPrivacy", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkServerTests",
            dependencies: ["UplinkCodec", "UplinkTestSupport"]
        ),
    ]
)
