import UplinkCodec

/// A mergeable partial sum of one round (hierarchical aggregation across coordinator
/// replicas, `docs/scaling.md`): Σ wᵢ·sᵢ·uᵢ in double precision, Σ wᵢ, and the ledger sequence
/// numbers (with their weights) of the frames it holds. Partial sums of disjoint sets of frames
/// add up to the round's sum; ``RoundAggregator/absorb(_:clients:)`` merges one.
///
/// Only the mean-based strategies have one (median and trimmed mean need every update).
///
/// Serialized (all little-endian), as `docs/scaling.md` specifies:
///
/// | bytes | field |
/// |---|---|
/// | 4 | magic `UPLP` |
/// | 1 | version, 1 |
/// | 3 | zero |
/// | 8 | round |
/// | 8 | model fingerprint |
/// | 8 | parameter count n |
/// | 8 | total weight (float64) |
/// | 8 | entry count m |
/// | 2 + r | replica name: length r (≤ 255), UTF-8 |
/// | 16·m | entries: ledger sequence number (u64), weight (float64) |
/// | 8·n | the sum (float64) |
/// | 4 | CRC-32C of everything before |
package struct PartialAggregate: Sendable, Hashable {
    package var round: UInt64
    package var fingerprint: UInt64
    package var replica: String
    package var weight: Double
    package var entries: [(sequence: UInt64, weight: Double)]
    package var sum: [Double]

    package init(round: UInt64, fingerprint: UInt64, replica: String, weight: Double, entries: [(sequence: UInt64, weight: Double)], sum: [Double]) {
        self.round = round
        self.fingerprint = fingerprint
        self.replica = replica
        self.weight = weight
        self.entries = entries
        self.sum = sum
    }

    package static func == (a: Self, b: Self) -> Bool {
        a.round == b.round && a.fingerprint == b.fingerprint && a.replica == b.replica && a.weight == b.weight && a.sum == b.sum
            && a.entries.map(\.sequence) == b.entries.map(\.sequence) && a.entries.map(\.weight) == b.entries.map(\.weight)
    }

    package func hash(into h: inout Hasher) {
        h.combine(round)
        h.combine(replica)
        h.combine(entries.count)
    }

    static let magic: [UInt8] = Array("UPLP".utf8)

    /// The bytes of the format above.
    package func serialized() -> [UInt8] {
        var out: [UInt8] = []
        let name = Array(replica.utf8.prefix(255))
        out.reserveCapacity(50 + name.count + 16 * entries.count + 8 * sum.count + 4)
        out += Self.magic
        out += [1, 0, 0, 0]
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        u64(round)
        u64(fingerprint)
        u64(UInt64(sum.count))
        u64(weight.bitPattern)
        u64(UInt64(entries.count))
        out += [UInt8(name.count & 0xFF), UInt8(name.count >> 8)]
        out += name
        for e in entries {
            u64(e.sequence)
            u64(e.weight.bitPattern)
        }
        let start = out.count
        out += [UInt8](repeating: 0, count: 8 * sum.count)
        out.withUnsafeMutableBytes { raw in
            for (i, v) in sum.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: start + 8 * i, as: UInt64.self) }
        }
        let crc = CRC32C.checksum(out)
        withUnsafeBytes(of: crc.littleEndian) { out += $0 }
        return out
    }

    /// Reads a partial aggregate for a model of `parameterCount` values and `fingerprint`.
    /// - Throws: ``UplinkError/Code/malformedHeader`` for a damaged or foreign file (a wrong
    ///   magic, version, size or checksum), ``UplinkError/Code/fingerprintMismatch`` for another model.
    package init(serialized bytes: [UInt8], fingerprint expected: UInt64, parameterCount: Int) throws(UplinkError) {
        func bad(_ why: String) -> UplinkError { UplinkError(.malformedHeader, "partial aggregate: \(why)") }
        guard bytes.count >= 54 else { throw bad("\(bytes.count) bytes, too short") }
        guard Array(bytes[0..<4]) == Self.magic else { throw bad("not a partial aggregate (magic)") }
        guard bytes[4] == 1 else { throw bad("version \(bytes[4]); this build reads 1") }
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self).littleEndian }
        let actual = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(bytes.count - 4)])) }
        guard stored == actual else { throw bad("checksum mismatch") }
        func u64(_ at: Int) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian } }
        round = u64(8)
        fingerprint = u64(16)
        guard fingerprint == expected else { throw UplinkError(.fingerprintMismatch, "partial aggregate is for model \(String(fingerprint, radix: 16)), not \(String(expected, radix: 16))") }
        let n = u64(24)
        guard n == UInt64(parameterCount) else { throw bad("\(n) values, the model has \(parameterCount)") }
        weight = Double(bitPattern: u64(32))
        let m = u64(40)
        let nameLength = Int(bytes[48]) | Int(bytes[49]) << 8
        // Every size is checked against the bytes there are before anything is allocated.
        let rest = UInt64(bytes.count - 54 - nameLength)
        guard nameLength <= 255, bytes.count >= 54 + nameLength, m <= rest / 16, rest == 16 * m + 8 * n else { throw bad("sizes do not match the file's \(bytes.count) bytes") }
        replica = String(decoding: bytes[50..<(50 + nameLength)], as: UTF8.self)
        var at = 50 + nameLength
        var entries: [(sequence: UInt64, weight: Double)] = []
        entries.reserveCapacity(Int(m))
        for _ in 0..<Int(m) {
            entries.append((u64(at), Double(bitPattern: u64(at + 8))))
            at += 16
        }
        self.entries = entries
        var sum = [Double](repeating: 0, count: Int(n))
        let base = at
        bytes.withUnsafeBytes { raw in
            for i in 0..<Int(n) { sum[i] = Double(bitPattern: raw.loadUnaligned(fromByteOffset: base + 8 * i, as: UInt64.self).littleEndian) }
        }
        guard weight.isFinite, sum.allSatisfy(\.isFinite) else { throw UplinkError(.nonFiniteValue, "partial aggregate holds a non-finite sum or weight") }
        self.sum = sum
    }
}

extension RoundAggregator {
    /// The sum, total weight and accepted updates so far, without closing the round (a
    /// replica's partial aggregate). Mean-based strategies only: the robust ones keep no sum.
    package func snapshot() throws(UplinkError) -> (sum: [Double], weight: Double, accepted: [AcceptedUpdate]) {
        guard !strategy.needsAllUpdates else { throw UplinkError(.invalidArgument, "\(strategy) needs every update at once: it has no partial sum") }
        var sum = [Double](repeating: 0, count: layout.parameterCount)
        var weight = 0.0
        var tagged: [(sequence: Int, update: AcceptedUpdate)] = []
        for box in shardBoxes {
            box.state.withLock { s in
                if !s.sum.isEmpty { for i in 0..<sum.count { sum[i] += s.sum[i] } }
                weight += s.weight
                tagged += s.accepted
            }
        }
        return (sum, weight, tagged.sorted { $0.sequence < $1.sequence }.map(\.update))
    }
}
