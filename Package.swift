// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Uplink",
    // The floor every dependency allows (swift-prometheus: macOS 13, iOS 16). Nothing in the
    // package uses a newer API without `@available`; shared state uses `Locked` (UplinkCodec),
    // not `Synchronization.Mutex` (macOS 15).
    platforms: [.macOS(.v13), .iOS(.v16)],
    products: [
        .library(name: "UplinkCodec", targets: ["UplinkCodec"]),
        .library(name: "UplinkTensorIO", targets: ["UplinkTensorIO"]),
        .library(name: "UplinkAggregation", targets: ["UplinkAggregation"]),
        .library(name: "UplinkSimulation", targets: ["UplinkSimulation"]),
        .library(name: "UplinkPrivacy", targets: ["UplinkPrivacy"]),
        .library(name: "UplinkServer", targets: ["UplinkServer"]),
        .library(name: "UplinkClient", targets: ["UplinkClient"]),
        .executable(name: "uplink", targets: ["uplink"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
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
        .systemLibrary(
            name: "CUplinkSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        // Kernels for the CPU's own instructions, detected at run time (C for the target
        // attributes): CRC-32C, float16 conversion, top-k's add-and-select and the CNN's convolutions with AVX2.
        .target(name: "CUplinkCRC"),
        .target(
            name: "UplinkCodec",
            dependencies: [
                "CUplinkCRC",
                // Apple platforms (and WASI) have no system liblz4: there UplinkCodec uses its own
                // Swift LZ4 codec, which every platform compiles (`UPLINK_LZ4=swift` selects it
                // where liblz4 is linked; docs/pipeline.md).
                .target(name: "CUplinkLZ4", condition: .when(platforms: [.linux, .android, .windows, .openbsd])),
                "CUplinkZlib",
            ]
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
            dependencies: ["UplinkCodec", "UplinkAggregation", "UplinkPrivacy", "CUplinkZlib", "CUplinkCRC"]
        ),
        .target(
            name: "UplinkServer",
            dependencies: [
                "UplinkCodec",
                "UplinkAggregation",
                "UplinkTensorIO",
                "CUplinkSQLite",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        // The upload client an app links: UplinkCodec plus a transport. On Linux the default
        // transport is async-http-client; Apple platforms use URLSession (Foundation).
        .target(
            name: "UplinkClient",
            dependencies: [
                "UplinkCodec",
                .product(name: "AsyncHTTPClient", package: "async-http-client", condition: .when(platforms: [.linux, .android])),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(platforms: [.linux, .android])),
                .product(name: "NIOCore", package: "swift-nio", condition: .when(platforms: [.linux, .android])),
                .product(name: "NIOHTTP1", package: "swift-nio", condition: .when(platforms: [.linux, .android])),
            ]
        ),
        .target(
            name: "UplinkCLI",
            dependencies: [
                "UplinkCodec",
                "UplinkTensorIO",
                "UplinkAggregation",
                "UplinkSimulation",
                "UplinkPrivacy",
                "UplinkServer",
                "UplinkClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "uplink",
            dependencies: ["UplinkCLI"]
        ),
        .target(
            name: "UplinkTestSupport",
            dependencies: ["UplinkCodec", "UplinkServer", "UplinkTensorIO"],
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
            name: "UplinkServerTests",
            dependencies: ["UplinkServer", "UplinkCodec", "UplinkAggregation", "UplinkTensorIO", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkClientTests",
            dependencies: ["UplinkClient", "UplinkCodec", "UplinkAggregation", "UplinkServer", "UplinkTensorIO", "UplinkTestSupport"]
        ),
        .testTarget(
            name: "UplinkCLITests",
            dependencies: ["UplinkCLI", "UplinkTensorIO", "UplinkSimulation", "UplinkPrivacy", "UplinkTestSupport"]
        ),
    ]
)
