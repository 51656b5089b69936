/// The parts of HTTP Structured Field Values (RFC 8941) the resumable upload headers use:
/// booleans (`Upload-Complete: ?1`) and dictionaries (`Upload-Limit: max-size=100, max-age=60`).
public enum StructuredField {
    /// A bare item. Byte sequences keep their base64 text.
    public enum Item: Sendable, Equatable {
        case integer(Int64), decimal(Double), string(String), token(String), byteSequence(String), boolean(Bool)
        case innerList([Item])
    }

    /// `?1` → true, `?0` → false (surrounding spaces allowed), anything else → nil.
    public static func boolean(_ text: String) -> Bool? {
        var p = Parser(text)
        p.skipSpaces()
        guard case .boolean(let b)? = try? p.bareItem(), (try? p.skipParameters()) != nil else { return nil }
        p.skipSpaces()
        return p.atEnd ? b : nil
    }

    /// The members of a dictionary in order (a repeated key keeps its last value, in the place
    /// of its first); parameters are parsed and dropped. Nil when `text` is not a dictionary.
    public static func dictionary(_ text: String) -> [(key: String, value: Item)]? {
        var p = Parser(text)
        var members: [(key: String, value: Item)] = []
        do {
            p.skipSpaces()
            while !p.atEnd {
                let key = try p.key()
                let value: Item
                if p.peek == UInt8(ascii: "=") {
                    p.advance()
                    value = p.peek == UInt8(ascii: "(") ? try p.innerList() : try p.bareItem()
                } else {
                    value = .boolean(true)
                }
                try p.skipParameters()
                if let i = members.firstIndex(where: { $0.key == key }) { members[i].value = value } else { members.append((key, value)) }
                p.skipOWS()
                if p.atEnd { break }
                guard p.peek == UInt8(ascii: ",") else { return nil }
                p.advance()
                p.skipOWS()
                if p.atEnd { return nil }
            }
        } catch {
            return nil
        }
        return members
    }

    struct Invalid: Error {}

    struct Parser {
        let bytes: [UInt8]
        var i = 0

        init(_ text: String) { bytes = Array(text.utf8) }

        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { atEnd ? nil : bytes[i] }
        mutating func advance() { i += 1 }

        mutating func skipSpaces() { while peek == 0x20 { advance() } }
        mutating func skipOWS() { while peek == 0x20 || peek == 0x09 { advance() } }

        static func isLowerAlpha(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7A }
        static func isAlpha(_ c: UInt8) -> Bool { isLowerAlpha(c) || (c >= 0x41 && c <= 0x5A) }
        static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        static func isTChar(_ c: UInt8) -> Bool { isAlpha(c) || isDigit(c) || Array("!#$%&'*+-.^_`|~".utf8).contains(c) }

        mutating func key() throws(Invalid) -> String {
            guard let c = peek, Self.isLowerAlpha(c) || c == UInt8(ascii: "*") else { throw Invalid() }
            let start = i
            while let c = peek, Self.isLowerAlpha(c) || Self.isDigit(c) || "_-.*".utf8.contains(c) { advance() }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        mutating func skipParameters() throws(Invalid) {
            while peek == UInt8(ascii: ";") {
                advance()
                skipSpaces()
                _ = try key()
                if peek == UInt8(ascii: "=") { advance(); _ = try bareItem() }
            }
        }

        mutating func innerList() throws(Invalid) -> Item {
            advance()
            var items: [Item] = []
            while true {
                skipSpaces()
                if peek == UInt8(ascii: ")") { advance(); try skipParameters(); return .innerList(items) }
                items.append(try bareItem())
                try skipParameters()
                guard peek == 0x20 || peek == UInt8(ascii: ")") else { throw Invalid() }
            }
        }

        mutating func bareItem() throws(Invalid) -> Item {
            guard let c = peek else { throw Invalid() }
            if c == UInt8(ascii: "-") || Self.isDigit(c) { return try number() }
            if c == UInt8(ascii: "\"") { return try string() }
            if c == UInt8(ascii: "?") {
                advance()
                guard let b = peek, b == UInt8(ascii: "0") || b == UInt8(ascii: "1") else { throw Invalid() }
                advance()
                return .boolean(b == UInt8(ascii: "1"))
            }
            if c == UInt8(ascii: ":") {
                advance()
                let start = i
                while let b = peek, b != UInt8(ascii: ":") {
                    guard Self.isAlpha(b) || Self.isDigit(b) || "+/=".utf8.contains(b) else { throw Invalid() }
                    advance()
                }
                guard peek == UInt8(ascii: ":") else { throw Invalid() }
                defer { advance() }
                return .byteSequence(String(decoding: bytes[start..<i], as: UTF8.self))
            }
            if Self.isAlpha(c) || c == UInt8(ascii: "*") {
                let start = i
                while let b = peek, Self.isTChar(b) || b == UInt8(ascii: ":") || b == UInt8(ascii: "/") { advance() }
                return .token(String(decoding: bytes[start..<i], as: UTF8.self))
            }
            throw Invalid()
        }

        /// RFC 8941 §4.2.4: at most 15 integer digits, or 12 + 3 for a decimal.
        mutating func number() throws(Invalid) -> Item {
            var negative = false
            if peek == UInt8(ascii: "-") { negative = true; advance() }
            guard let first = peek, Self.isDigit(first) else { throw Invalid() }
            let start = i
            var dot: Int?
            while let c = peek {
                if Self.isDigit(c) {
                    advance()
                } else if c == UInt8(ascii: "."), dot == nil {
                    guard i - start <= 12 else { throw Invalid() }
                    dot = i
                    advance()
                } else {
                    break
                }
                if dot == nil && i - start > 15 { throw Invalid() }
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if let dot {
                let fraction = i - dot - 1
                guard fraction >= 1 && fraction <= 3, let v = Double(text) else { throw Invalid() }
                return .decimal(negative ? -v : v)
            }
            guard let v = Int64(text) else { throw Invalid() }
            return .integer(negative ? -v : v)
        }

        mutating func string() throws(Invalid) -> Item {
            advance()
            var out: [UInt8] = []
            while let c = peek {
                advance()
                if c == UInt8(ascii: "\\") {
                    guard let e = peek, e == UInt8(ascii: "\"") || e == UInt8(ascii: "\\") else { throw Invalid() }
                    out.append(e)
                    advance()
                } else if c == UInt8(ascii: "\"") {
                    return .string(String(decoding: out, as: UTF8.self))
                } else {
                    guard c >= 0x20 && c <= 0x7E else { throw Invalid() }
                    out.append(c)
                }
            }
            throw Invalid()
        }
    }
}

/// The server's `Upload-Limit` header (resumable uploads draft, interop version 8): each limit
/// nil when absent; sizes in bytes, `maxAge` in seconds.
public struct UploadLimit: Sendable, Equatable {
    public var maxSize: Int?
    public var minSize: Int?
    public var maxAppendSize: Int?
    public var minAppendSize: Int?
    public var maxAge: Int?

    public init(maxSize: Int? = nil, minSize: Int? = nil, maxAppendSize: Int? = nil, minAppendSize: Int? = nil, maxAge: Int? = nil) {
        self.maxSize = maxSize
        self.minSize = minSize
        self.maxAppendSize = maxAppendSize
        self.minAppendSize = minAppendSize
        self.maxAge = maxAge
    }

    /// Parses the header value. Unknown keys are ignored, as the draft says; nil when the value
    /// is not a structured dictionary or a known limit is not a non-negative integer.
    public init?(headerValue: String) {
        guard let members = StructuredField.dictionary(headerValue) else { return nil }
        for (key, value) in members {
            let path: WritableKeyPath<UploadLimit, Int?>
            switch key {
            case "max-size": path = \.maxSize
            case "min-size": path = \.minSize
            case "max-append-size": path = \.maxAppendSize
            case "min-append-size": path = \.minAppendSize
            case "max-age": path = \.maxAge
            default: continue
            }
            guard case .integer(let n) = value, n >= 0 else { return nil }
            self[keyPath: path] = Int(n)
        }
    }
}
