/// Stage ids of the binary pipeline descriptor. Never renumbered; see `docs/wire-format.md`.
enum StageID: UInt8 {
    case fp32 = 0x20
    case fp16 = 0x21
    case stored = 0x60
    case lz4 = 0x61
    case zlib = 0x62
}

extension Pipeline {
    /// The binary descriptor written into frame headers:
    /// `u8 stage count`, then per stage `u8 id, u8 parameter length, parameters`.
    public var descriptor: [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.write(UInt8(2))
        switch quantizer {
        case .fp32: w.write(StageID.fp32.rawValue); w.write(UInt8(0))
        case .fp16: w.write(StageID.fp16.rawValue); w.write(UInt8(0))
        }
        switch codec.codec {
        case .stored:
            w.write(StageID.stored.rawValue); w.write(UInt8(0))
        case .lz4:
            w.write(StageID.lz4.rawValue); w.write(UInt8(1)); w.write(UInt8(codec.level))
        case .zlib:
            w.write(StageID.zlib.rawValue); w.write(UInt8(1)); w.write(UInt8(codec.level))
        }
        return w.bytes
    }

    /// Parses a descriptor, checking ids, parameter lengths and ranges, and stage order.
    /// A descriptor that ends early is ``UplinkError/Code/malformedHeader``, like every other
    /// structural fault inside the (checksummed) header.
    public init(descriptor bytes: UnsafeRawBufferPointer) throws(UplinkError) {
        do {
            try self.init(parsing: bytes)
        } catch where error.code == .truncated {
            throw UplinkError(.malformedHeader, error.message)
        }
    }

    private init(parsing bytes: UnsafeRawBufferPointer) throws(UplinkError) {
        var r = ByteReader(bytes, what: "pipeline descriptor")
        let count = Int(try r.read(UInt8.self, "stage count"))
        var quantizer: Quantizer?
        var codec: CodecStage?
        for i in 0..<count {
            let rawID = try r.read(UInt8.self, "stage \(i) id")
            let length = Int(try r.read(UInt8.self, "stage \(i) parameter length"))
            var params = ByteReader(try r.bytes(length, "stage \(i) parameters"), what: "stage \(i) parameters")
            guard let id = StageID(rawValue: rawID) else {
                throw UplinkError(.unknownStage, "pipeline descriptor stage \(i) has unknown id 0x\(String(rawID, radix: 16))")
            }
            func expect(_ n: Int) throws(UplinkError) {
                guard length == n else {
                    throw UplinkError(.malformedHeader, "stage \(id) has \(length) parameter bytes, expected \(n)")
                }
            }
            switch id {
            case .fp32, .fp16:
                try expect(0)
                guard quantizer == nil, codec == nil else {
                    throw UplinkError(.malformedHeader, "pipeline descriptor has a quantizer out of place at stage \(i)")
                }
                quantizer = id == .fp32 ? .fp32 : .fp16
            case .stored, .lz4, .zlib:
                guard quantizer != nil, codec == nil else {
                    throw UplinkError(.malformedHeader, "pipeline descriptor has a codec out of place at stage \(i)")
                }
                var stage: CodecStage
                switch id {
                case .stored:
                    try expect(0)
                    stage = .stored
                case .lz4:
                    try expect(1)
                    stage = CodecStage(.lz4, level: Int(try params.read(UInt8.self, "level")))
                default:
                    try expect(1)
                    stage = CodecStage(.zlib, level: Int(try params.read(UInt8.self, "level")))
                }
                guard stage.levelRange.contains(stage.level) else {
                    throw UplinkError(.malformedHeader, "stage \(stage.codec) level \(stage.level) is outside \(stage.levelRange)")
                }
                codec = stage
            }
        }
        guard r.remaining == 0 else {
            throw UplinkError(.malformedHeader, "pipeline descriptor has \(r.remaining) bytes after its last stage")
        }
        guard let quantizer, let codec else {
            throw UplinkError(.malformedHeader, "pipeline descriptor lacks a \(quantizer == nil ? "quantizer" : "codec") stage")
        }
        self.init(quantizer: quantizer, codec: codec)
    }
}
