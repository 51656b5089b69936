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
    /// Rounds applied so far.
    public private(set) var rounds: UInt64 = 0
    /// First moment (FedAvgM velocity, Adam-family m); empty when unused.
    public private(set) var m: [Float]
    /// Second moment (Adam-family v); empty when unused.
    public private(set) var v: [Float]

    /// A fresh optimizer: zero momentum, and `v = τ²` for the adaptive methods (Reddi et al.
    /// 2021, Algorithm 2, `v₋₁ ≥ τ²`).
    public init(strategy: Strategy, layout: ModelLayout) {
        self.strategy = strategy
        self.fingerprint = layout.fingerprint
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
    public mutating func step(model: UnsafeMutableBufferPointer<Float>, delta: UnsafeBufferPointer<Float>, range: Range<Int>) {
        precondition(model.count == range.count && delta.count == range.count)
        let base = range.lowerBound
        switch strategy {
        case .fedAvg(let lr), .normBounded(_, let lr):
            let eta = Float(lr)
            for i in 0..<model.count { model[i] += eta * delta[i] }
        case .median, .trimmedMean:
            for i in 0..<model.count { model[i] += delta[i] }
        case .fedAvgM(let lr, let beta):
            let eta = Float(lr), b = Float(beta)
            m.withUnsafeMutableBufferPointer { m in
                for i in 0..<model.count {
                    m[base + i] = b * m[base + i] + delta[i]
                    model[i] += eta * m[base + i]
                }
            }
        case .fedAdam(let lr, let b1, let b2, let tau), .fedYogi(let lr, let b1, let b2, let tau):
            let yogi = if case .fedYogi = strategy { true } else { false }
            let eta = Float(lr), beta1 = Float(b1), beta2 = Float(b2), t = Float(tau)
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    for i in 0..<model.count {
                        let d = delta[i], d2 = d * d
                        m[base + i] = beta1 * m[base + i] + (1 - beta1) * d
                        let old = v[base + i]
                        if yogi {
                            let s: Float = old > d2 ? 1 : old < d2 ? -1 : 0
                            v[base + i] = old - (1 - beta2) * d2 * s
                        } else {
                            v[base + i] = beta2 * old + (1 - beta2) * d2
                        }
                        model[i] += eta * m[base + i] / (v[base + i].squareRoot() + t)
                    }
                }
            }
        case .fedAdagrad(let lr, let b1, let tau):
            let eta = Float(lr), beta1 = Float(b1), t = Float(tau)
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    for i in 0..<model.count {
                        let d = delta[i]
                        m[base + i] = beta1 * m[base + i] + (1 - beta1) * d
                        v[base + i] += d * d
                        model[i] += eta * m[base + i] / (v[base + i].squareRoot() + t)
                    }
                }
            }
        }
    }

    /// Marks a round as applied (after every block of it went through ``step(model:delta:range:)``).
    public mutating func finishRound() { rounds += 1 }

    static let magic: [UInt8] = [0x55, 0x50, 0x4C, 0x41]  // "UPLA"

    /// `"UPLA", u16 version 1, u16 0, u64 fingerprint, u64 rounds, u16 L, strategy text (L bytes),
    /// u64 |m|, m, u64 |v|, v, u32 CRC-32C`.
    public func serialized() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + 4 * (m.count + v.count))
        w.write(bytes: Self.magic)
        w.write(UInt16(1))
        w.write(UInt16(0))
        w.write(fingerprint)
        w.write(rounds)
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
    public init(serialized bytes: [UInt8], strategy: Strategy, layout: ModelLayout) throws(UplinkError) {
        func malformed(_ why: String) -> UplinkError { UplinkError(.malformedState, "server state \(why)") }
        guard bytes.count >= 36, Array(bytes[0..<4]) == Self.magic else { throw malformed("is not an Uplink server state file") }
        let stored = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)) }
        guard CRC32C.checksum(bytes[0..<(bytes.count - 4)]) == stored else { throw malformed("is corrupted (checksum mismatch)") }
        var fresh = ServerOptimizer(strategy: strategy, layout: layout)
        let parsed: (UInt64, UInt64, String, [Float], [Float])? = bytes.withUnsafeBytes { raw in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)]), offset: 4, what: "server state")
            guard (try? r.read(UInt16.self, "version")) == 1, (try? r.read(UInt16.self, "reserved")) == 0,
                  let fp = try? r.read(UInt64.self, "fingerprint"), let rounds = try? r.read(UInt64.self, "rounds"),
                  let l = try? r.read(UInt16.self, "length"), let t = try? r.bytes(Int(l), "strategy"),
                  let text = String(validating: t, as: UTF8.self)
            else { return nil }
            var arrays: [[Float]] = []
            for _ in 0..<2 {
                guard let count = try? r.read(UInt64.self, "count"), count <= UInt64(r.remaining / 4),
                      let data = try? r.bytes(Int(count) * 4, "values") else { return nil }
                arrays.append((0..<Int(count)).map { Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) })
            }
            guard r.remaining == 0 else { return nil }
            return (fp, rounds, text, arrays[0], arrays[1])
        }
        guard let (fp, rounds, text, m, v) = parsed else { throw malformed("is truncated or malformed") }
        guard fp == layout.fingerprint else {
            throw UplinkError(.stateMismatch, "server state is for model \(String(fp, radix: 16)), not \(layout.fingerprintHex)")
        }
        guard text == strategy.description else {
            throw UplinkError(.stateMismatch, "server state is for strategy \(UplinkError.quoted(text)), not \"\(strategy)\"")
        }
        guard m.count == fresh.m.count, v.count == fresh.v.count,
              m.allSatisfy(\.isFinite), v.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw malformed("has moments of the wrong size or non-finite values")
        }
        fresh.rounds = rounds
        fresh.m = m
        fresh.v = v
        self = fresh
    }
}
