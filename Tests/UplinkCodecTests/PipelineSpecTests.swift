import Testing
import UplinkCodec

@Suite struct PipelineSpecTests {
    @Test(arguments: [
        ("fp32 | stored", "fp32 | stored"),
        ("fp32 | lz4", "fp32 | lz4"),
        ("fp32 | zlib", "fp32 | zlib level=6"),
        ("fp32 | zlib level=9", "fp32 | zlib level=9"),
        ("fp32|zlib 9", "fp32 | zlib level=9"),
        ("fp16 | lz4", "fp16 | lz4"),
        ("  FP16   |  LZ4 level=12 ", "fp16 | lz4 level=12"),
        ("lz4", "fp32 | lz4"),
        ("fp16", "fp16 | stored"),
    ])
    func parsesToCanonicalText(spec: String, canonical: String) throws {
        let p = try Pipeline(parsing: spec)
        #expect(p.description == canonical)
        #expect(try Pipeline(parsing: p.description) == p)
    }

    @Test func descriptorRoundTrips() throws {
        for spec in ["fp32 | stored", "fp32 | lz4 level=3", "fp16 | zlib level=1"] {
            let p = try Pipeline(parsing: spec)
            let back = try p.descriptor.withUnsafeBytes { try Pipeline(descriptor: $0) }
            #expect(back == p)
        }
    }

    @Test(arguments: [
        ("", UplinkError.Code.pipelineSyntax),
        ("fp32 |", .pipelineSyntax),
        ("fp32 || lz4", .pipelineSyntax),
        ("fp32 | lz4 level=", .pipelineSyntax),
        ("fp32 | lz4 level=1 level=2", .pipelineSyntax),
        ("brotli", .pipelineUnknownStage),
        ("fp32 | zlib level=10", .pipelineBadParameter),
        ("fp32 | zlib level=fast", .pipelineBadParameter),
        ("fp32 | lz4 speed=1", .pipelineBadParameter),
        ("fp32 extra | lz4", .pipelineBadParameter),
        ("lz4 | fp32", .pipelineBadOrder),
        ("fp32 | fp16", .pipelineBadOrder),
        ("fp32 | lz4 | zlib", .pipelineBadOrder),
    ])
    func rejectsBadSpecs(spec: String, code: UplinkError.Code) {
        #expect { try Pipeline(parsing: spec) } throws: { ($0 as? UplinkError)?.code == code }
    }

    @Test func unknownStageErrorListsKnownStages() {
        #expect { try Pipeline(parsing: "fp32 | brotli") } throws: { error in
            let message = (error as? UplinkError)?.message ?? ""
            return message.contains("brotli") && message.contains("lz4") && message.contains("zlib")
        }
    }
}
