import UplinkCodec

/// The server side of a strategy: its state between rounds (momentum, Adam moments) and the
/// step that turns the round's aggregate update Δ into the next model.
///
/// The step works on coordinate blocks (`step(model:delta:range:)`), so the model can stream
/// through it from a file; state is a value saved and restored as a versioned, checksummed
/// blob (``serialized()``), tied to one model and one strategy.
public struct ServerOptimizer: Sendable, Equatable {
    /// The strategy.
    public let strategy: Strategy
    /// The model's fingerprint.
    public let fingerprint: UInt64
    /// The model's parameter count.
    public let parameterCount: Int
    /// Rounds applied so far.
    public private(set) var rounds: UInt64 = 0
    /// The id of the last round applied, when the caller gave it (``finishRound(round:)``).
    public private(set) var lastRound: UInt64?
    /// First moment (FedAvgM velocity, Adam-family m); empty when unused.
    public private(set) var m: [Float]
    /// Second moment (Adam-family v); empty when unused.
    public private(set) var v: [Float]

    /// A fresh optimizer: zero momentum, and `v = τ²` for the adaptive methods (Reddi et al.
    /// 2021, Algorithm 2, `v₋₁ ≥ τ²`).
    public init(strategy: Strategy, layout: ModelLayout) {
        self.strategy = strategy
        self.fingerprint = layout.fingerprint
        self.parameterCount = layout.parameterCount
        let n = layout.parameterCount
        switch strategy {
        case .fedAvgM:
            m = [Float](repeating: 0, count: n)
            v = []
        case .fedAdam(_, _, _, let tau), .fedYogi(_, _, _, let tau), .fedAdagrad(_, _, let tau):
            m = [Float](repeating: 0, count: n)
            v = [Float](repeating: Float(tau * tau), count: n)
        default:
            m = []
            v = []
        }
    }

    /// Applies Δ (`delta`, the aggregate update for parameters `range`) to the model values
    /// `model` of that range, in place, updating the state of that range.
    ///
    /// Computed in double precision (squares of large Δ overflow float32) and committed only if
    /// every new model value and moment is finite: on an error neither `model` nor the state
    /// changed.
    /// - Throws: ``UplinkError/Code/invalidArgument`` for a range outside the model or buffers of
    ///   another size, ``UplinkError/Code/nonFiniteResult`` when the step would produce a
    ///   non-finite or float32-overflowing model value or moment.
    public mutating func step(model: UnsafeMutableBufferPointer<Float>, delta: UnsafeBufferPointer<Float>, range: Range<Int>) throws(UplinkError) {
        let n = parameterCount
        guard range.lowerBound >= 0, range.upperBound <= n, model.count == range.count, delta.count == range.count else {
            throw UplinkError(.invalidArgument, "optimizer step over parameters \(range) with \(model.count) model and \(delta.count) delta values; the model has \(n)")
        }
        let base = range.lowerBound
        let count = range.count
        var newModel = [Float](repeating: 0, count: count)
        var newM = [Float](repeating: 0, count: m.isEmpty ? 0 : count)
        var newV = [Float](repeating: 0, count: v.isEmpty ? 0 : count)
        var bad = -1
        func put(_ i: Int, _ x: Double, _ mi: Double = 0, _ vi: Double = 0) {
            let fx = Float(x), fm = Float(mi), fv = Float(vi)
            if !(fx.isFinite && fm.isFinite && fv.isFinite), bad < 0 { bad = i }
            newModel[i] = fx
            if !newM.isEmpty { newM[i] = fm }
            if !newV.isEmpty { newV[i] = fv }
        }
        for i in 0..<count {
            let x = Double(model[i]), d = Double(delta[i])
            switch strategy {
            case .fedAvg(let lr), .normBounded(_, let lr):
                put(i, x + lr * d)
            case .median, .trimmedMean:
                put(i, x + d)
            case .fedAvgM(let lr, let beta):
                let mi = beta * Double(m[base + i]) + d
                put(i, x + lr * mi, mi)
            case .fedAdam(let lr, let b1, let b2, let tau), .fedYogi(let lr, let b1, let b2, let tau):
                let d2 = d * d
                let mi = b1 * Double(m[base + i]) + (1 - b1) * d
                let old = Double(v[base + i])
                let vi: Double
                if case .fedYogi = strategy {
                    let sgn: Double = old > d2 ? 1 : old < d2 ? -1 : 0
                    vi = old - (1 - b2) * d2 * sgn
                } else {
                    vi = b2 * old + (1 - b2) * d2
                }
                put(i, x + lr * mi / (vi.squareRoot() + tau), mi, vi)
            case .fedAdagrad(let lr, let b1, let tau):
                let mi = b1 * Double(m[base + i]) + (1 - b1) * d
                let vi = Double(v[base + i]) + d * d
                put(i, x + lr * mi / (vi.squareRoot() + tau), mi, vi)
            }
        }
        guard bad < 0 else {
            throw UplinkError(
                .nonFiniteResult,
                "\(strategy) would make parameter \(base + bad) or its optimizer state non-finite (model \(model[bad]), update \(delta[bad])); the round is refused and nothing changed")
        }
        for i in 0..<count { model[i] = newModel[i] }
        if !newM.isEmpty { for i in 0..<count { m[base + i] = newM[i] } }
        if !newV.isEmpty { for i in 0..<count { v[base + i] = newV[i] } }
    }

    /// Marks a round as applied (after every block of it went through ``step(model:delta:range:)``),
    /// remembering its id so that applying the same round again can be recognized.
    /// - Throws: ``UplinkError/Code/malformedState`` when the round counter is at 2^64 − 1.
    public mutating func finishRound(round: UInt64? = nil) throws(UplinkError) {
        guard rounds < .max else { throw UplinkError(.malformedState, "server state has applied 2^64 − 1 rounds; it cannot count another") }
        rounds += 1
        if let round { lastRound = round }
    }

    static let magic: [UInt8] = [0x55, 0x50, 0x4C, 0x41]  // "UPLA"

    /// `"UPLA", u16 version 2, u16 flags (bit 0: last round present; others 0), u64 fingerprint,
    /// u64 rounds, u64 last round (0 when absent), u16 L, strategy text (L bytes), u64 |m|, m,
    /// u64 |v|, v, u32 CRC-32C`. Version 1 (no flags, no last round) is still read.
    public func serialized() -> [UInt8] {
        var w = ByteWriter(capacity: 72 + 4 * (m.count + v.count))
        w.write(bytes: Self.magic)
        w.write(UInt16(2))
        w.write(UInt16(lastRound == nil ? 0 : 1))
        w.write(fingerprint)
        w.write(rounds)
        w.write(lastRound ?? 0)
        let text = Array(strategy.description.utf8)
        w.write(UInt16(text.count))
        w.write(bytes: text)
        for array in [m, v] {
            w.write(UInt64(array.count))
            for x in array { w.write(x.bitPattern) }
        }
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// Restores a state saved by ``serialized()`` for `strategy` and `layout`.
    /// - Throws: ``UplinkError/Code/malformedState`` for a damaged or unknown blob (including
    ///   non-zero reserved bits and non-finite or negative moments), ``UplinkError/Code/stateMismatch``
    ///   for a state of another model or strategy.
    public init(serialized bytes: [UInt8], strategy: Strategy, layout: ModelLayout) throws(UplinkError) {
        func malformed(_ why: String) -> UplinkError { UplinkError(.malformedState, "server state \(why)") }
        guard bytes.count >= 36, Array(bytes[0..<4]) == Self.magic else { throw malformed("is not an Uplink server state file") }
        let stored = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)) }
        guard CRC32C.checksum(bytes[0..<(bytes.count - 4)]) == stored else { throw malformed("is corrupted (checksum mismatch)") }
        var fresh = ServerOptimizer(strategy: strategy, layout: layout)
        typealias Parsed = (fp: UInt64, rounds: UInt64, last: UInt64?, text: String, m: [Float], v: [Float])
        let parsed: Result<Parsed, UplinkError> = bytes.withUnsafeBytes { raw in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)]), offset: 4, what: "server state")
            guard let version = try? r.read(UInt16.self, "version"), version == 1 || version == 2 else {
                return .failure(malformed("has an unknown version"))
            }
            guard let flags = try? r.read(UInt16.self, "flags") else { return .failure(malformed("is truncated")) }
            guard flags & (version == 1 ? 0xFFFF : 0xFFFE) == 0 else { return .failure(malformed("has reserved bits set (\(flags))")) }
            guard let fp = try? r.read(UInt64.self, "fingerprint"), let rounds = try? r.read(UInt64.self, "rounds") else {
                return .failure(malformed("is truncated"))
            }
            var last: UInt64?
            if version == 2 {
                guard let l = try? r.read(UInt64.self, "last round") else { return .failure(malformed("is truncated")) }
                last = flags & 1 == 1 ? l : nil
                if last == nil, l != 0 { return .failure(malformed("has a last round without its flag")) }
            }
            guard let l = try? r.read(UInt16.self, "length"), let t = try? r.bytes(Int(l), "strategy"),
                  let text = String(validatingUTF8Bytes: t)
            else { return .failure(malformed("is truncated or malformed")) }
            var arrays: [[Float]] = []
            for _ in 0..<2 {
                guard let count = try? r.read(UInt64.self, "count"), count <= UInt64(r.remaining / 4),
                      let data = try? r.bytes(Int(count) * 4, "values") else { return .failure(malformed("is truncated or malformed")) }
                arrays.append((0..<Int(count)).map { Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) })
            }
            guard r.remaining == 0 else { return .failure(malformed("has trailing bytes")) }
            return .success((fp, rounds, last, text, arrays[0], arrays[1]))
        }
        let p = try parsed.get()
        guard p.fp == layout.fingerprint else {
            throw UplinkError(.stateMismatch, "server state is for model \(String(p.fp, radix: 16)), not \(layout.fingerprintHex)")
        }
        guard p.text == strategy.description else {
            throw UplinkError(.stateMismatch, "server state is for strategy \(UplinkError.quoted(p.text)), not \"\(strategy)\"")
        }
        guard p.m.count == fresh.m.count, p.v.count == fresh.v.count,
              p.m.allSatisfy(\.isFinite), p.v.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw malformed("has moments of the wrong size or non-finite values")
        }
        fresh.rounds = p.rounds
        fresh.lastRound = p.last
        fresh.m = p.m
        fresh.v = p.v
        self = fresh
    }
}
