/// One named float32 tensor of a model: a name and a shape (row-major, C order).
///
/// Names compare by their UTF-8 bytes, as the wire format does: `"é"` (U+00E9) and `"é"`
/// (`e` + U+0301) are two different names, although Swift's `String ==` calls them equal.
public struct TensorSpec: Hashable, Sendable, CustomStringConvertible {
    /// The tensor's name, for example `"fc1.weight"`. Non-empty UTF-8, at most
    /// ``ModelLayout/maxNameBytes`` bytes.
    public let name: String
    /// The dimensions; `[]` is a scalar (one element), and a zero dimension is an empty tensor.
    public let shape: [Int]

    /// A tensor spec. Validity is checked when it becomes part of a ``ModelLayout``.
    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }

    public var description: String {
        "\(name)[\(shape.map(String.init).joined(separator: "×"))]"
    }

    /// Equal names (byte for byte, not by Unicode canonical equivalence) and equal shapes.
    public static func == (a: TensorSpec, b: TensorSpec) -> Bool {
        a.shape == b.shape && a.name.utf8.elementsEqual(b.name.utf8)
    }

    public func hash(into h: inout Hasher) {
        h.combine(shape)
        h.combine(TensorNameKey(name))
    }
}

/// A tensor name as a set or dictionary key that compares and hashes its UTF-8 bytes (a
/// `Set<String>` would merge canonically equivalent names), without copying them.
struct TensorNameKey: Hashable {
    let name: String

    init(_ name: String) { self.name = name }

    static func == (a: TensorNameKey, b: TensorNameKey) -> Bool {
        a.name.utf8.elementsEqual(b.name.utf8)
    }

    func hash(into h: inout Hasher) {
        var s = name  // withUTF8 is mutating; a native string is not copied
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// The structure of a model: its named tensors in a fixed order, the total parameter count, and
/// a fingerprint of names and shapes.
///
/// An update is always a flat float32 vector: the tensors' elements concatenated in layout order,
/// each tensor in C order. Frames carry the fingerprint, so a frame made for another model is
/// rejected with ``UplinkError/Code/fingerprintMismatch`` before any payload is read.
public struct ModelLayout: Hashable, Sendable {
    /// The longest tensor name the wire format allows, in UTF-8 bytes.
    public static let maxNameBytes = 1024
    /// The highest rank the wire format allows (NumPy's own limit).
    public static let maxRank = 64
    /// The most parameters a layout may have (2^48): far above any model, far below overflow.
    public static let maxParameters = 1 << 48

    /// The tensors, in the order their elements appear in an update.
    public let tensors: [TensorSpec]
    /// The number of elements of each tensor.
    public let elementCounts: [Int]
    /// Where each tensor starts in the flat update vector.
    public let offsets: [Int]
    /// The total number of float32 parameters.
    public let parameterCount: Int
    /// FNV-1a 64 of the canonical tensor table (see `docs/wire-format.md`).
    public let fingerprint: UInt64

    /// A layout of `tensors` in the given order.
    ///
    /// Two names are duplicates when their UTF-8 bytes are equal (not when Swift's `String ==`,
    /// which compares canonical equivalents as equal, says so).
    ///
    /// - Throws: ``UplinkError/Code/invalidLayout`` for no tensors, an empty or duplicate name,
    ///   or a negative dimension; ``UplinkError/Code/shapeOverflow`` when an
    ///   element count or the total exceeds ``maxParameters``;
    ///   ``UplinkError/Code/fieldTooLong`` for a name or rank over the format's limit.
    public init(_ tensors: [TensorSpec]) throws(UplinkError) {
        guard !tensors.isEmpty else { throw UplinkError(.invalidLayout, "a model layout needs at least one tensor") }
        guard tensors.count <= Int(UInt32.max) else {
            throw UplinkError(.tooManyTensors, "\(tensors.count) tensors exceed the format's 2^32 − 1")
        }
        var seen = Set<TensorNameKey>(minimumCapacity: tensors.count)
        var counts: [Int] = []
        var offsets: [Int] = []
        counts.reserveCapacity(tensors.count)
        offsets.reserveCapacity(tensors.count)
        var total = 0
        for t in tensors {
            let nameBytes = t.name.utf8.count
            guard nameBytes > 0 else { throw UplinkError(.invalidLayout, "a tensor name is empty") }
            guard nameBytes <= Self.maxNameBytes else {
                throw UplinkError(.fieldTooLong, "tensor name \(UplinkError.quoted(t.name)) of \(nameBytes) bytes exceeds \(Self.maxNameBytes)")
            }
            guard seen.insert(TensorNameKey(t.name)).inserted else {
                throw UplinkError(.invalidLayout, "tensor name \(UplinkError.quoted(t.name)) appears twice")
            }
            guard t.shape.count <= Self.maxRank else {
                throw UplinkError(.fieldTooLong, "tensor \(UplinkError.quoted(t.name)) has rank \(t.shape.count), above \(Self.maxRank)")
            }
            let count = try Self.elementCount(t.shape, name: t.name)
            offsets.append(total)
            counts.append(count)
            let (sum, overflow) = total.addingReportingOverflow(count)
            guard !overflow, sum <= Self.maxParameters else {
                throw UplinkError(.shapeOverflow, "model has more than 2^48 parameters")
            }
            total = sum
        }
        self.tensors = tensors
        self.elementCounts = counts
        self.offsets = offsets
        self.parameterCount = total
        var table = ByteWriter()
        Self.writeTable(tensors, to: &table)
        self.fingerprint = Self.fingerprint(tensorCount: tensors.count, table: table.bytes)
    }

    /// A layout of one tensor of `count` elements, shape `[count]`.
    public init(name: String, count: Int) throws(UplinkError) {
        try self.init([TensorSpec(name: name, shape: [count])])
    }

    /// The number of elements of `shape`: each dimension must be in 0…2^48, and the product
    /// (0 when any dimension is 0) at most ``maxParameters``.
    public static func elementCount(_ shape: [Int], name: String) throws(UplinkError) -> Int {
        for d in shape {
            guard d >= 0 else { throw UplinkError(.invalidLayout, "tensor \(UplinkError.quoted(name)) has negative dimension \(d)") }
            guard d <= maxParameters else {
                throw UplinkError(.shapeOverflow, "tensor \(UplinkError.quoted(name)) dimension \(d) exceeds 2^48")
            }
        }
        if shape.contains(0) { return 0 }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maxParameters else {
                throw UplinkError(.shapeOverflow, "tensor \(UplinkError.quoted(name)) shape \(UplinkError.excerpt(list: shape)) has more than 2^48 elements")
            }
            count = p
        }
        return count
    }

    /// The index of the tensor named `name` (byte for byte, see ``TensorSpec``).
    public func index(of name: String) -> Int? {
        tensors.firstIndex { $0.name.utf8.elementsEqual(name.utf8) }
    }

    /// The fingerprint as 16 lowercase hex digits, as `uplink inspect` prints it.
    public var fingerprintHex: String { Self.hex(fingerprint) }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

extension ModelLayout {
    /// The length in bytes of the canonical tensor table (what a frame's table takes).
    package var tensorTableLength: Int {
        tensors.reduce(0) { $0 + 3 + $1.name.utf8.count + 8 * $1.shape.count }
    }

    /// Writes the canonical tensor table: per tensor `u16 name length, name, u8 rank, rank × u64 dims`.
    static func writeTable(_ tensors: [TensorSpec], to w: inout ByteWriter) {
        for t in tensors {
            let name = Array(t.name.utf8)
            w.write(UInt16(name.count))
            w.write(bytes: name)
            w.write(UInt8(t.shape.count))
            for d in t.shape { w.write(UInt64(d)) }
        }
    }

    /// FNV-1a 64 of `u32 tensorCount` followed by the tensor table bytes.
    static func fingerprint(tensorCount: Int, table: [UInt8]) -> UInt64 {
        var h = FNV1a64()
        withUnsafeBytes(of: UInt32(tensorCount).littleEndian) { h.combine($0) }
        h.combine(table)
        return h.value
    }

    /// Reads `count` tensor entries of the canonical table, checking every length before use.
    static func readTable(
        count: Int, from r: inout ByteReader, limits: FrameLimits
    ) throws(UplinkError) -> [TensorSpec] {
        var tensors: [TensorSpec] = []
        // Each entry takes at least 4 bytes, so `count` is already bounded by the header size.
        tensors.reserveCapacity(min(count, r.remaining / 4))
        var total = 0
        var names = Set<TensorNameKey>(minimumCapacity: min(count, r.remaining / 4))
        for i in 0..<count {
            let nameLength = Int(try r.read(UInt16.self, "tensor \(i) name length"))
            guard nameLength >= 1, nameLength <= maxNameBytes else {
                throw UplinkError(.malformedHeader, "tensor \(i) name length \(nameLength) is outside 1…\(maxNameBytes)")
            }
            let nameBytes = try r.bytes(nameLength, "tensor \(i) name")
            guard let name = String(validatingUTF8Bytes: nameBytes) else {
                throw UplinkError(.malformedHeader, "tensor \(i) name \(UplinkError.quoted(bytes: nameBytes)) is not valid UTF-8")
            }
            // Byte for byte: canonically equivalent names (NFC and NFD) are different names.
            guard names.insert(TensorNameKey(name)).inserted else {
                throw UplinkError(.malformedHeader, "tensor name \(UplinkError.quoted(name)) appears twice in the tensor table")
            }
            let rank = Int(try r.read(UInt8.self, "tensor \(i) rank"))
            guard rank <= maxRank else {
                throw UplinkError(.malformedHeader, "tensor \(UplinkError.quoted(name)) rank \(rank) exceeds \(maxRank)")
            }
            try r.require(rank * 8, for: "tensor \(i) dimensions")
            var shape: [Int] = []
            shape.reserveCapacity(rank)
            for _ in 0..<rank {
                let d = try r.read(UInt64.self, "dimension")
                shape.append(d <= UInt64(maxParameters) ? Int(d) : maxParameters + 1)
            }
            let n = try elementCount(shape, name: name)
            total += n
            guard total <= limits.maxParameters else {
                throw UplinkError(.tooManyParameters, "tensor table declares more than the limit of \(limits.maxParameters) parameters")
            }
            tensors.append(TensorSpec(name: name, shape: shape))
        }
        return tensors
    }
}
