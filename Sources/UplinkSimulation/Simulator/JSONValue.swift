import UplinkCodec

/// A JSON document as written, for reading scenario files strictly.
///
/// Foundation's decoders lose what a strict reader needs: `JSONDecoder` reports `{"rounds": 1e300}`
/// as "not valid JSON" with no field, and both it and `JSONSerialization` keep the last of two
/// equal keys and read `null` as absent. This parser keeps numbers as their text (so `3`, `3.0`
/// and `1e300` stay distinct), objects in order with duplicate keys refused, and reports syntax
/// errors by line and column. Nesting depth and input size are bounded by the caller's limits.
enum JSONValue: Sendable {
    case null
    case bool(Bool)
    /// A number's text exactly as written (it matches the JSON number grammar).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in file order; keys are unique.
    case object([(key: String, value: JSONValue)])

    /// Deepest nesting of arrays and objects accepted.
    static let maximumDepth = 64

    /// What kind of value this is, for messages: "a number", "a string", …
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "true or false"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    /// Parses one JSON document (RFC 8259), optionally after a UTF-8 byte order mark.
    static func parse(_ bytes: [UInt8]) throws(UplinkError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.i = 3 }
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.i == bytes.count else { throw parser.error("unexpected text after the end of the document") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        func error(_ message: String) -> UplinkError {
            var line = 1, column = 1
            for b in bytes[..<min(i, bytes.count)] {
                if b == UInt8(ascii: "\n") { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
            }
            return UplinkError(.invalidArgument, "not valid JSON at line \(line), column \(column): \(message)")
        }

        static let expectedValue = "expected a value (an object, list, string, number, true, false or null)"

        var current: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while let b = current, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 }
        }

        mutating func expect(_ c: Character) throws(UplinkError) {
            guard current == c.asciiValue else { throw error(current == nil ? "the document ends; expected \"\(c)\"" : "expected \"\(c)\"") }
            i += 1
        }

        mutating func value(depth: Int) throws(UplinkError) -> JSONValue {
            guard let b = current else { throw error("the document ends where a value should be") }
            switch b {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error(Self.expectedValue)
            }
        }

        mutating func literal(_ word: String) throws(UplinkError) {
            let w = Array(word.utf8)
            guard bytes.count - i >= w.count, Array(bytes[i..<(i + w.count)]) == w else { throw error(Self.expectedValue) }
            i += w.count
        }

        mutating func object(depth: Int) throws(UplinkError) -> JSONValue {
            guard depth <= JSONValue.maximumDepth else { throw error("nested deeper than \(JSONValue.maximumDepth) levels") }
            i += 1
            var members: [(key: String, value: JSONValue)] = []
            var seen = Set<String>()
            skipSpace()
            if current == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a key in double quotes") }
                let keyStart = i
                let key = try string()
                guard seen.insert(key).inserted else {
                    i = keyStart
                    throw error("duplicate key \"\(JSONValue.quoted(key))\"")
                }
                skipSpace()
                try expect(":")
                skipSpace()
                members.append((key, try value(depth: depth)))
                skipSpace()
                if current == UInt8(ascii: ",") { i += 1; continue }
                guard current == UInt8(ascii: "}") else { throw error("expected \",\" or \"}\" after a member") }
                i += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(UplinkError) -> JSONValue {
            guard depth <= JSONValue.maximumDepth else { throw error("nested deeper than \(JSONValue.maximumDepth) levels") }
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if current == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth))
                skipSpace()
                if current == UInt8(ascii: ",") { i += 1; continue }
                guard current == UInt8(ascii: "]") else { throw error("expected \",\" or \"]\" after a list item") }
                i += 1
                return .array(items)
            }
        }

        mutating func number() throws(UplinkError) -> String {
            let start = i
            func digits(_ p: inout Parser) -> Int {
                let s = p.i
                while let b = p.current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { p.i += 1 }
                return p.i - s
            }
            if current == UInt8(ascii: "-") { i += 1 }
            if current == UInt8(ascii: "0") {
                i += 1
                if let b = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { throw error("a number cannot have a leading zero") }
            } else if digits(&self) == 0 {
                throw error("expected digits in a number")
            }
            if current == UInt8(ascii: ".") {
                i += 1
                guard digits(&self) > 0 else { throw error("expected digits after the decimal point") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                i += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { i += 1 }
                guard digits(&self) > 0 else { throw error("expected digits in the exponent") }
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        mutating func string() throws(UplinkError) -> String {
            i += 1  // the opening quote
            var out: [UInt8] = []
            while true {
                guard let b = current else { throw error("the document ends inside a string") }
                switch b {
                case UInt8(ascii: "\""):
                    i += 1
                    guard let s = String(validatingUTF8Bytes: out) else { throw error("a string is not valid UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    i += 1
                    guard let e = current else { throw error("the document ends inside a string") }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard current == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else { throw error("an unpaired surrogate \\u escape") }
                            i += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error("an unpaired surrogate \\u escape") }
                            scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                        }
                        guard let u = Unicode.Scalar(scalar) else { throw error("an unpaired surrogate \\u escape") }
                        out.append(contentsOf: Array(String(Character(u)).utf8))
                    default:
                        i -= 2
                        throw error("an unknown escape in a string")
                    }
                case 0..<0x20:
                    throw error("a control character inside a string (write it as an escape)")
                default:
                    out.append(b)
                    i += 1
                }
            }
        }

        mutating func hex4() throws(UplinkError) -> UInt32 {
            guard bytes.count - i >= 4 else { throw error("expected four hex digits after \\u") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let d = current.flatMap({ Character(Unicode.Scalar($0)).hexDigitValue }) else { throw error("expected four hex digits after \\u") }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }
    }

    /// Text quoted in a message, cut to 100 characters (a hostile file's key can be megabytes).
    static func quoted(_ s: String) -> String { s.count > 100 ? String(s.prefix(100)) + "…" : s }
}
