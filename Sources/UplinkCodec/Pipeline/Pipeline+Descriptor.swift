/// Stage ids of the binary pipeline descriptor. Never renumbered; see `docs/wire-format.md` §5.
enum StageID: UInt8 {
    case clip = 0x02
    case noise = 0x03
    case errorFeedback = 0x01
    case topK = 0x10
    case sampledTopK = 0x11
    case randomK = 0x12
    case threshold = 0x13
    case fp32 = 0x20
    case fp16 = 0x21
    case bf16 = 0x22
    case int = 0x23
    case sign = 0x24
    case ternary = 0x25
    case stored = 0x60
    case lz4 = 0x61
    case zlib = 0x62

    /// The order stages must appear in: clip, noise, error feedback, sparsifier, quantizer, codec.
    var rank: Int {
        switch self {
        case .clip: 0
        case .noise: 1
        case .errorFeedback: 2
        case .topK, .sampledTopK, .randomK, .threshold: 3
        case .fp32, .fp16, .bf16, .int, .sign, .ternary: 4
        case .stored, .lz4, .zlib: 5
        }
    }
}

extension Pipeline {
    /// The binary descriptor written into frame headers:
    /// `u8 stage count`, then per stage `u8 id, u8 parameter length, parameters`.
    public var descriptor: [UInt8] {
        var stages: [(StageID, ByteWriter)] = []
        func stage(_ id: StageID, _ body: (inout ByteWriter) -> Void = { _ in }) {
            var w = ByteWriter()
            body(&w)
            stages.append((id, w))
        }
        func amount(_ a: SparsityAmount, _ w: inout ByteWriter) {
            switch a {
            case .fraction(let f): w.write(UInt8(0)); w.write(f.bitPattern)
            case .count(let c): w.write(UInt8(1)); w.write(UInt64(c))
            }
        }
        if let dp = localDP {
            stage(.clip) { $0.write(dp.clip.bitPattern) }
            if let z = dp.noiseMultiplier {
                stage(.noise) { $0.write(z.bitPattern); $0.write(UInt8(dp.seed == nil ? 0 : 1)); $0.write(dp.seed ?? 0) }
            }
        }
        if let ef = errorFeedback { stage(.errorFeedback) { $0.write(ef.decay.bitPattern) } }
        switch sparsifier {
        case nil: break
        case .topK(let a, let scope)?:
            stage(.topK) { $0.write(scope.rawValue); amount(a, &$0) }
        case .sampledTopK(let a, let scope, let sample)?:
            stage(.sampledTopK) { $0.write(scope.rawValue); amount(a, &$0); $0.write(sample.bitPattern) }
        case .randomK(let a, let seed)?:
            stage(.randomK) { amount(a, &$0); $0.write(seed) }
        case .threshold(let t)?:
            stage(.threshold) { $0.write(t.bitPattern) }
        }
        switch quantizer {
        case .fp32: stage(.fp32)
        case .fp16: stage(.fp16)
        case .bf16: stage(.bf16)
        case .int(let q):
            stage(.int) {
                $0.write(UInt8(q.bits))
                $0.write(UInt8((q.symmetric ? 0 : 1) | (q.stochastic ? 2 : 0)))
                $0.write(UInt32(q.block))
                // The seed means something only to stochastic rounding; without it the encoder
                // writes 0, as the spec grammar allows `seed=` only with `stochastic`.
                $0.write(q.stochastic ? q.seed : 0)
            }
        case .sign(let b): stage(.sign) { $0.write(UInt32(b)) }
        case .ternary(let b): stage(.ternary) { $0.write(UInt32(b)) }
        }
        switch codec.codec {
        case .stored: stage(.stored)
        case .lz4: stage(.lz4) { $0.write(UInt8(codec.level)) }
        case .zlib: stage(.zlib) { $0.write(UInt8(codec.level)) }
        }
        var w = ByteWriter(capacity: 64)
        w.write(UInt8(stages.count))
        for (id, params) in stages {
            w.write(id.rawValue)
            w.write(UInt8(params.count))
            w.write(bytes: params.bytes)
        }
        return w.bytes
    }

    /// The descriptor without its codec stage: what error-feedback state is tied to (a lossless
    /// codec does not change what the residual means).
    var lossyDescriptor: [UInt8] {
        var copy = self
        copy.codec = .stored
        return copy.descriptor
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
        var result = Pipeline()
        var lastRank = -1
        var sawQuantizer = false, sawCodec = false
        for i in 0..<count {
            let rawID = try r.read(UInt8.self, "stage \(i) id")
            let length = Int(try r.read(UInt8.self, "stage \(i) parameter length"))
            var p = ByteReader(try r.bytes(length, "stage \(i) parameters"), what: "stage \(i) parameters")
            guard let id = StageID(rawValue: rawID) else {
                throw UplinkError(.unknownStage, "pipeline descriptor stage \(i) has unknown id 0x\(String(rawID, radix: 16))")
            }
            guard id.rank > lastRank else {
                throw UplinkError(.malformedHeader, "pipeline descriptor stage \(i) (\(id)) is out of order")
            }
            lastRank = id.rank
            func bad(_ what: String) -> UplinkError {
                UplinkError(.malformedHeader, "pipeline descriptor stage \(id): \(what)")
            }
            func amount() throws(UplinkError) -> SparsityAmount {
                let kind = try p.read(UInt8.self, "amount kind")
                let raw = try p.read(UInt64.self, "amount")
                switch kind {
                case 0:
                    let f = Double(bitPattern: raw)
                    guard f > 0, f <= 1 else { throw bad("fraction \(f) outside (0, 1]") }
                    return .fraction(f)
                case 1:
                    guard raw >= 1, raw <= UInt64(ModelLayout.maxParameters) else { throw bad("count \(raw) outside 1…2^48") }
                    return .count(Int(raw))
                default: throw bad("amount kind \(kind)")
                }
            }
            func scope() throws(UplinkError) -> SparsityScope {
                let raw = try p.read(UInt8.self, "scope")
                guard let s = SparsityScope(rawValue: raw) else { throw bad("scope \(raw)") }
                return s
            }
            func block(allowZero: Bool) throws(UplinkError) -> Int {
                let b = Int(try p.read(UInt32.self, "block"))
                guard b <= 1 << 24, allowZero || b >= 1 else { throw bad("block \(b)") }
                return b
            }
            switch id {
            case .clip:
                let c = Double(bitPattern: try p.read(UInt64.self, "clip"))
                guard c > 0, c.isFinite else { throw bad("clip bound \(c) is not a finite positive number") }
                result.localDP = LocalDP(clip: c)
            case .noise:
                let z = Double(bitPattern: try p.read(UInt64.self, "z"))
                let seeded = try p.read(UInt8.self, "seeded")
                let seed = try p.read(UInt64.self, "seed")
                guard z > 0, z.isFinite, seeded <= 1, seeded == 1 || seed == 0 else { throw bad("noise parameters are out of range") }
                guard let dp = result.localDP else { throw bad("noise without a clip stage") }
                result.localDP = LocalDP(clip: dp.clip, noiseMultiplier: z, seed: seeded == 1 ? seed : nil)
            case .errorFeedback:
                let decay = Float(bitPattern: try p.read(UInt32.self, "decay"))
                guard decay >= 0, decay <= 1 else { throw bad("decay \(decay) outside 0…1") }
                result.errorFeedback = ErrorFeedbackConfig(decay: decay)
            case .topK:
                let s = try scope()
                result.sparsifier = .topK(try amount(), scope: s)
            case .sampledTopK:
                let s = try scope()
                let a = try amount()
                let sample = Double(bitPattern: try p.read(UInt64.self, "sample"))
                guard sample > 0, sample <= 1 else { throw bad("sample fraction \(sample) outside (0, 1]") }
                result.sparsifier = .sampledTopK(a, scope: s, sample: sample)
            case .randomK:
                let a = try amount()
                result.sparsifier = .randomK(a, seed: try p.read(UInt64.self, "seed"))
            case .threshold:
                let t = Double(bitPattern: try p.read(UInt64.self, "tau"))
                guard t > 0, t.isFinite else { throw bad("threshold \(t) is not a finite positive number") }
                result.sparsifier = .threshold(t)
            case .fp32, .fp16, .bf16:
                result.quantizer = id == .fp32 ? .fp32 : id == .fp16 ? .fp16 : .bf16
                sawQuantizer = true
            case .int:
                let bits = Int(try p.read(UInt8.self, "bits"))
                let flags = try p.read(UInt8.self, "flags")
                let b = try block(allowZero: false)
                let seed = try p.read(UInt64.self, "seed")
                guard [2, 4, 8].contains(bits) else { throw bad("bits \(bits) not 8, 4 or 2") }
                guard flags & ~3 == 0 else { throw bad("flags 0x\(String(flags, radix: 16))") }
                result.quantizer = .int(IntQuantizer(bits: bits, block: b, symmetric: flags & 1 == 0, stochastic: flags & 2 != 0, seed: seed))
                sawQuantizer = true
            case .sign:
                result.quantizer = .sign(block: try block(allowZero: true))
                sawQuantizer = true
            case .ternary:
                result.quantizer = .ternary(block: try block(allowZero: true))
                sawQuantizer = true
            case .stored, .lz4, .zlib:
                var stage = CodecStage.stored
                if id != .stored {
                    stage = CodecStage(id == .lz4 ? .lz4 : .zlib, level: Int(try p.read(UInt8.self, "level")))
                }
                guard stage.levelRange.contains(stage.level) else {
                    throw bad("level \(stage.level) is outside \(stage.levelRange)")
                }
                result.codec = stage
                sawCodec = true
            }
            guard p.remaining == 0 else { throw bad("\(length) parameter bytes, \(p.remaining) more than it takes") }
        }
        guard r.remaining == 0 else {
            throw UplinkError(.malformedHeader, "pipeline descriptor has \(r.remaining) bytes after its last stage")
        }
        guard sawQuantizer, sawCodec else {
            throw UplinkError(.malformedHeader, "pipeline descriptor lacks a \(sawQuantizer ? "codec" : "quantizer") stage")
        }
        do {
            try result.validate()
        } catch {
            throw UplinkError(.malformedHeader, error.message)
        }
        self = result
    }
}
