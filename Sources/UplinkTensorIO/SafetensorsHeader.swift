import UplinkCodec

/// The JSON header of a `.safetensors` file, parsed in one pass over its bytes with every limit
/// checked as the bytes are read: the tensor count (``Safetensors/maxTensors``) when each
/// tensor's key is reached, a shape's rank when each dimension is, a name's length as its bytes
/// are. A hostile header therefore costs time and memory in proportion to what is allowed, not
/// to what it declares, and an error message quotes at most a short excerpt of it.
///
/// The rules (the same as `scripts/interop/uplink_decode.py`'s, stated in `docs/wire-format.md`
/// §6.1): strict JSON (RFC 8259) with one top-level object whose `{` is the first byte (spaces
/// may pad the end, as writers align the data to 8 bytes); keys unique by their UTF-8 bytes
/// after unescaping; `__metadata__` is never a tensor, and is `null` or an object of string
/// values; every other key is a tensor whose value is an object with a string `dtype`, a `shape`
/// of at most 64 non-negative integers and a `data_offsets` pair of non-negative integers, all
/// written as integer literals (`3`, never `3.0` or `3e0`); other keys in a tensor's object are
/// ignored, as the reference implementation ignores them.
struct SafetensorsHeaderParser {
    /// Objects and arrays nested deeper than this inside ignored values are refused.
    static let maxDepth = 64

    private let json: UnsafeRawBufferPointer
    private let maxTensors: Int
    private var i = 0

    private init(_ json: UnsafeRawBufferPointer, maxTensors: Int) {
        self.json = json
        self.maxTensors = maxTensors
    }

    /// The tensors of the header `json`, in file order; more than `maxTensors` is
    /// ``UplinkError/Code/tooManyTensors``.
    static func entries(
        _ json: UnsafeRawBufferPointer, maxTensors: Int = Safetensors.maxTensors
    ) throws(UplinkError) -> [Safetensors.Entry] {
        var p = SafetensorsHeaderParser(json, maxTensors: maxTensors)
        return try p.header()
    }

    // MARK: Structure

    private mutating func header() throws(UplinkError) -> [Safetensors.Entry] {
        // The reference implementation requires '{' as the very first byte (no leading space).
        guard peek == UInt8(ascii: "{") else { throw syntax("the header does not start with '{'") }
        i += 1
        var entries: [Safetensors.Entry] = []
        var sawMetadata = false
        skipSpace()
        if peek == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipSpace()
                let keyStart = i
                let key = try string(maxBytes: ModelLayout.maxNameBytes, what: "a tensor name")
                try colon()
                if Self.equal(key, "__metadata__") {
                    guard !sawMetadata else { throw malformed("the header has two \"__metadata__\" keys") }
                    sawMetadata = true
                    try metadata()
                } else {
                    guard entries.count < maxTensors else {
                        throw UplinkError(.tooManyTensors, "the header holds more than \(maxTensors) tensors (at byte \(keyStart))")
                    }
                    entries.append(try tensor(named: key))
                }
                skipSpace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                guard peek == UInt8(ascii: "}") else { throw syntax("expected ',' or '}' after a member") }
                i += 1
                break
            }
        }
        skipSpace()
        guard i == json.count else { throw syntax("bytes follow the header's object") }
        return entries
    }

    /// `__metadata__`: `null`, or an object whose values are all strings.
    private mutating func metadata() throws(UplinkError) {
        skipSpace()
        if literal("null") { return }
        guard peek == UInt8(ascii: "{") else { throw malformed("\"__metadata__\" is not an object of strings") }
        i += 1
        var keys = Set<[UInt8]>()
        skipSpace()
        if peek == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipSpace()
            let key = try string(maxBytes: .max, what: "a metadata key")
            guard keys.insert(Array(key.utf8)).inserted else {
                throw malformed("\"__metadata__\" has the key \(UplinkError.quoted(key)) twice")
            }
            try colon()
            skipSpace()
            guard peek == UInt8(ascii: "\"") else {
                throw malformed("\"__metadata__\" value of \(UplinkError.quoted(key)) is not a string")
            }
            _ = try string(maxBytes: .max, what: "a metadata value")
            skipSpace()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            guard peek == UInt8(ascii: "}") else { throw syntax("expected ',' or '}' in \"__metadata__\"") }
            i += 1
            return
        }
    }

    /// One tensor's object: `{"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}`.
    private mutating func tensor(named name: String) throws(UplinkError) -> Safetensors.Entry {
        // Quoted only when a message needs it: a header of a million tensors that parses pays nothing.
        var q: String { UplinkError.quoted(name) }
        skipSpace()
        guard peek == UInt8(ascii: "{") else { throw malformed("tensor \(q) is not an object") }
        i += 1
        var dtypeName: String?
        var shape: [Int]?
        var offsets: [Int]?
        skipSpace()
        if peek == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipSpace()
                let key = try string(maxBytes: .max, what: "a key of tensor \(q)")
                try colon()
                skipSpace()
                var twice: UplinkError { malformed("tensor \(q) has the key \(UplinkError.quoted(key)) twice") }
                if Self.equal(key, "dtype") {
                    guard dtypeName == nil else { throw twice }
                    guard peek == UInt8(ascii: "\"") else { throw malformed("tensor \(q): dtype is not a string") }
                    dtypeName = try string(maxBytes: .max, what: "the dtype of tensor \(q)")
                } else if Self.equal(key, "shape") {
                    guard shape == nil else { throw twice }
                    shape = try integers(maxCount: ModelLayout.maxRank, what: "shape of \(q)")
                } else if Self.equal(key, "data_offsets") {
                    guard offsets == nil else { throw twice }
                    let pair = try integers(maxCount: 2, what: "data_offsets of \(q)")
                    guard pair.count == 2 else { throw malformed("data_offsets of \(q) holds \(pair.count) numbers, not 2") }
                    offsets = pair
                } else {
                    try skipValue(depth: 0)
                }
                skipSpace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                guard peek == UInt8(ascii: "}") else { throw syntax("expected ',' or '}' in tensor \(q)") }
                i += 1
                break
            }
        }
        guard let dtypeName, let shape, let offsets else {
            throw malformed("tensor \(q) lacks dtype, shape or data_offsets")
        }
        let dtype: TensorDType?
        let size: Int
        if Self.equal(dtypeName, "F32") {
            (dtype, size) = (.float32, 4)
        } else if Self.equal(dtypeName, "F16") {
            (dtype, size) = (.float16, 2)
        } else if Self.equal(dtypeName, "BF16") {
            (dtype, size) = (.bfloat16, 2)
        } else if Self.equal(dtypeName, "F64") {
            (dtype, size) = (.float64, 8)
        } else if let other = Safetensors.nonFloatDtypes.first(where: { dtypeName.utf8.elementsEqual($0.name.utf8) }) {
            (dtype, size) = (nil, other.size)
        } else {
            throw UplinkError(.unsupportedDtype, "tensor \(q) has dtype \(UplinkError.quoted(dtypeName)), which is not a safetensors dtype Uplink knows; it reads F32, F16, BF16 and F64, and skips or refuses \(Safetensors.nonFloatDtypes.map(\.name).joined(separator: ", "))")
        }
        return Safetensors.Entry(name: name, dtype: dtype, dtypeName: dtypeName, elementSize: size, shape: shape, begin: offsets[0], end: offsets[1])
    }

    /// An array of at most `maxCount` non-negative integer literals. A value above 2^62 reads
    /// as 2^62 (beyond every limit, so the caller's range check rejects it).
    private mutating func integers(maxCount: Int, what: @autoclosure () -> String) throws(UplinkError) -> [Int] {
        guard peek == UInt8(ascii: "[") else { throw malformed("\(what()) is not an array") }
        i += 1
        var out: [Int] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { i += 1; return out }
        while true {
            skipSpace()
            guard out.count < maxCount else {
                if maxCount == ModelLayout.maxRank {
                    throw UplinkError(.fieldTooLong, "\(what()) has more than \(ModelLayout.maxRank) dimensions")
                }
                throw malformed("\(what()) holds more than \(maxCount) numbers")
            }
            out.append(try integer(what: what()))
            skipSpace()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            guard peek == UInt8(ascii: "]") else { throw syntax("expected ',' or ']' in \(what())") }
            i += 1
            return out
        }
    }

    private mutating func integer(what: @autoclosure () -> String) throws(UplinkError) -> Int {
        let start = i
        let end = try numberEnd()
        let cap = 1 << 62
        var value = 0
        var isInteger = true
        for j in start..<end {
            let c = json[j]
            guard c >= 0x30, c <= 0x39 else { isInteger = false; break }
            value = value > cap / 10 ? cap : min(value * 10 + Int(c - 0x30), cap)
        }
        guard isInteger else {
            throw malformed("\(what()) holds \(UplinkError.quoted(bytes: json[start..<end])), not a non-negative integer")
        }
        return value
    }

    // MARK: Tokens

    private var peek: UInt8? { i < json.count ? json[i] : nil }

    private mutating func skipSpace() {
        while i < json.count, json[i] == 0x20 || json[i] == 0x0A || json[i] == 0x09 || json[i] == 0x0D { i += 1 }
    }

    private mutating func colon() throws(UplinkError) {
        skipSpace()
        guard peek == UInt8(ascii: ":") else { throw syntax("expected ':' after a key") }
        i += 1
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= json.count else { return false }
        let match = word.withUTF8Buffer { w in (0..<n).allSatisfy { json[i + $0] == w[$0] } }
        if match { i += n }
        return match
    }

    /// The end of the JSON number at `i` (RFC 8259 grammar), which it checks; `i` moves past it.
    private mutating func numberEnd() throws(UplinkError) -> Int {
        let start = i
        func digits() -> Int {
            let s = i
            while i < json.count, json[i] >= 0x30, json[i] <= 0x39 { i += 1 }
            return i - s
        }
        if peek == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let n = digits()
        guard n > 0, n == 1 || json[intStart] != 0x30 else { i = start; throw syntax("expected a number") }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw syntax("a number has no digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw syntax("a number has no exponent digits") }
        }
        return i
    }

    /// A JSON string at `i`, unescaped; its UTF-8 length above `maxBytes` is
    /// ``UplinkError/Code/fieldTooLong``, found as soon as the bytes are.
    private mutating func string(maxBytes: Int, what: @autoclosure () -> String) throws(UplinkError) -> String {
        guard peek == UInt8(ascii: "\"") else { throw syntax("expected a string (\(what()))") }
        i += 1
        // Fast path, every name of a normal file: no escape or control character before the
        // closing quote, so the string is the bytes as they are (no copy to unescape).
        var j = i
        while j < json.count, json[j] != UInt8(ascii: "\""), json[j] != UInt8(ascii: "\\"), json[j] >= 0x20 { j += 1 }
        if j < json.count, json[j] == UInt8(ascii: "\"") {
            let bytes = UnsafeRawBufferPointer(rebasing: json[i..<j])
            guard bytes.count <= maxBytes else {
                throw UplinkError(.fieldTooLong, "\(what()) \(UplinkError.quoted(bytes: bytes)) is longer than \(maxBytes) bytes")
            }
            guard let s = String(validatingUTF8Bytes: bytes) else {
                throw malformed("\(what()) \(UplinkError.quoted(bytes: bytes)) is not valid UTF-8")
            }
            i = j + 1
            return s
        }
        var out: [UInt8] = []
        func append(_ b: UInt8) throws(UplinkError) {
            guard out.count < maxBytes else {
                throw UplinkError(.fieldTooLong, "\(what()) \(UplinkError.quoted(bytes: out)) is longer than \(maxBytes) bytes")
            }
            out.append(b)
        }
        while true {
            guard i < json.count else { throw syntax("a string does not end") }
            let c = json[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validatingUTF8Bytes: out) else {
                    throw malformed("\(what()) \(UplinkError.quoted(bytes: out)) is not valid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                guard i < json.count else { throw syntax("a string does not end") }
                let e = json[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): try append(e)
                case UInt8(ascii: "b"): try append(0x08)
                case UInt8(ascii: "f"): try append(0x0C)
                case UInt8(ascii: "n"): try append(0x0A)
                case UInt8(ascii: "r"): try append(0x0D)
                case UInt8(ascii: "t"): try append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard literal("\\u") else { throw malformed("\(what()) has an unpaired surrogate escape") }
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw malformed("\(what()) has an unpaired surrogate escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw malformed("\(what()) has an unpaired surrogate escape") }
                    for b in String(Character(u)).utf8 { try append(b) }
                default:
                    throw syntax("a string has the invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            case 0..<0x20:
                throw syntax("a string holds an unescaped control character")
            default:
                try append(c)
            }
        }
    }

    private mutating func hex4() throws(UplinkError) -> UInt32 {
        guard i + 4 <= json.count else { throw syntax("a \\u escape is cut short") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = json[i]
            i += 1
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw syntax("a \\u escape has a non-hex digit")
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Skips any JSON value, refusing nesting deeper than ``maxDepth``.
    private mutating func skipValue(depth: Int) throws(UplinkError) {
        guard depth < Self.maxDepth else { throw malformed("a value is nested more than \(Self.maxDepth) levels deep") }
        skipSpace()
        guard let c = peek else { throw syntax("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            _ = try string(maxBytes: .max, what: "a string")
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            i += 1
            skipSpace()
            if peek == close { i += 1; return }
            while true {
                if c == UInt8(ascii: "{") {
                    skipSpace()
                    _ = try string(maxBytes: .max, what: "a key")
                    try colon()
                }
                try skipValue(depth: depth + 1)
                skipSpace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                guard peek == close else { throw syntax("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
                i += 1
                return
            }
        case UInt8(ascii: "-"), 0x30...0x39:
            _ = try numberEnd()
        default:
            guard literal("true") || literal("false") || literal("null") else { throw syntax("expected a value") }
        }
    }

    /// Whether `s` is `word`, byte for byte.
    private static func equal(_ s: String, _ word: StaticString) -> Bool {
        word.withUTF8Buffer { s.utf8.elementsEqual($0) }
    }

    // MARK: Errors

    private func malformed(_ what: String) -> UplinkError {
        UplinkError(.malformedSafetensors, what)
    }

    /// Not JSON: names the byte offset and quotes a few bytes around it.
    private func syntax(_ what: String) -> UplinkError {
        let at = min(i, json.count)
        let window = json[max(0, at - 20)..<min(json.count, at + 20)]
        return UplinkError(.malformedSafetensors, "header is not valid JSON at byte \(at): \(what), near \(UplinkError.quoted(bytes: window))")
    }
}
