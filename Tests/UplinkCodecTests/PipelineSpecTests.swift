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
        ("ef | topk 1% | int8 block=256 | lz4", "ef | topk 1% scope=global | int8 block=256 sym | lz4"),
        ("ef | randk 1% seed=7 | int4 | zlib", "ef | randk 1% seed=7 | int4 block=256 sym | zlib level=6"),
        ("ef | sign block=1024 | lz4", "ef | sign block=1024 | lz4"),
        ("ef | topk 0.1% | ternary | stored", "ef | topk 0.1% scope=global | ternary block=0 | stored"),
        ("topk k=0.05 scope=tensor | fp16", "topk 5% scope=tensor | fp16 | stored"),
        ("topk 1000 | int2 asym", "topk 1000 scope=global | int2 block=256 asym | stored"),
        ("topk-sampled 1% sample=0.5%", "topk-sampled 1% scope=global sample=0.5% | fp32 | stored"),
        ("threshold 1e-3 | bf16", "threshold 0.001 | bf16 | stored"),
        ("ef decay=0.9 | int8 stochastic seed=4 block=32", "ef decay=0.9 | int8 block=32 sym stochastic seed=4 | stored"),
        ("sign", "sign block=1024 | stored"),
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
        ("int8 | topk 1%", .pipelineBadOrder),
        ("topk 1% | ef | int8", .pipelineBadOrder),
        ("topk 1% | randk 1% | int8", .pipelineBadOrder),
        ("ternary | lz4", .pipelineBadOrder),
        ("topk", .pipelineBadParameter),
        ("topk 0%", .pipelineBadParameter),
        ("topk 150%", .pipelineBadParameter),
        ("topk 1.5", .pipelineBadParameter),
        ("topk -3", .pipelineBadParameter),
        ("topk 1% scope=layer", .pipelineBadParameter),
        ("randk 1% seed=-1", .pipelineBadParameter),
        ("threshold 0", .pipelineBadParameter),
        ("int8 block=0", .pipelineBadParameter),
        ("int8 sym asym", .pipelineBadParameter),
        ("int8 seed=3", .pipelineBadParameter),
        ("int3", .pipelineUnknownStage),
        ("sign block=-1", .pipelineBadParameter),
        ("ef decay=2", .pipelineBadParameter),
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
