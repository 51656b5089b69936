import Foundation
import UplinkCodec

/// One header field, as sent or received (names compare case-insensitively in lookups).
public struct HTTPHeader: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name): \(value)" }
}

extension [HTTPHeader] {
    /// The value of the first field named `name` (case-insensitive).
    func first(named name: String) -> String? {
        first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The values of every field named `name` (case-insensitive), in order.
    func all(named name: String) -> [String] {
        filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }
}

/// A transport or framing failure, so a test can tell a cut connection from a server's answer.
public enum HTTPTestError: Error, Equatable, CustomStringConvertible {
    /// Nothing listens on 127.0.0.1:`port`.
    case connectionRefused(port: Int)
    /// The deadline passed while waiting in `phase` (`connect`, `send`, `response`, …).
    case timedOut(String)
    /// The peer reset the connection (RST), or it was already gone when we wrote.
    case reset
    /// The peer closed (FIN) before a whole message arrived; `receivedBytes` of it had come
    /// (0: the peer hung up without answering).
    case closed(receivedBytes: Int)
    /// The bytes are not HTTP/1.1 as RFC 9112 frames it.
    case malformed(String)
    /// This connection was closed or reset by the test itself.
    case closedLocally
    /// Another system call failed.
    case system(call: String, errno: Int32)

    /// True for failures of the connection (a cut), false for a malformed answer.
    public var isTransport: Bool {
        if case .malformed = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .connectionRefused(let port): "connection refused on 127.0.0.1:\(port)"
        case .timedOut(let phase): "timed out in \(phase)"
        case .reset: "connection reset by peer"
        case .closed(let n): n == 0 ? "peer closed without answering" : "peer closed after \(n) bytes of a message"
        case .malformed(let why): "malformed HTTP message: \(why)"
        case .closedLocally: "connection already closed by the test"
        case .system(let call, let e): "\(call) failed: \(String(cString: strerror(e))) (errno \(e))"
        }
    }
}

/// An HTTP response as received: interim (1xx) responses that came before it are in `interim`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var reason: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// The 1xx responses received before this final one, in order.
    public var interim: [HTTPResponse] = []

    public init(status: Int, reason: String = "", headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    /// The value of the first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers.first(named: name) }

    /// The values of every header named `name` (case-insensitive), in order.
    public func headers(_ name: String) -> [String] { headers.all(named: name) }

    /// The body as UTF-8 (invalid sequences replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object, or nil when it is not one.
    public func json() -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }
}

/// An HTTP/1.1 request: built by a test to send, or parsed by ``RawConnection/readRequest(timeout:)``
/// in a scripted server.
public struct HTTPTestRequest: Sendable {
    public var method: String
    public var path: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]?

    public init(method: String, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) {
        self.method = method
        self.path = path
        self.headers = headers.map { HTTPHeader($0.0, $0.1) }
        self.body = body
    }

    public init(method: String, path: String, headers: [HTTPHeader], body: [UInt8]?) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    /// The value of the first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers.first(named: name) }

    /// The request on the wire. `Host`, `Connection: close` and (when there is a body)
    /// `Content-Length` are added unless the headers already name them, so a hostile test can
    /// send a wrong length or keep the connection open.
    public func serialized(port: Int) -> [UInt8] {
        var fields = headers
        if fields.first(named: "Host") == nil { fields.insert(HTTPHeader("Host", "127.0.0.1:\(port)"), at: 0) }
        if let body, fields.first(named: "Content-Length") == nil, fields.first(named: "Transfer-Encoding") == nil {
            fields.append(HTTPHeader("Content-Length", "\(body.count)"))
        }
        if fields.first(named: "Connection") == nil { fields.append(HTTPHeader("Connection", "close")) }
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for f in fields { text += "\(f.name): \(f.value)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }
}

/// Parsing of HTTP/1.1 message heads (RFC 9112 §2–§6), strict enough to catch a server that
/// frames its answers wrongly.
enum HTTPHead {
    static let maxHeadBytes = 64 << 10
    static let maxBodyBytes = 1 << 30

    /// Splits a head (without its final empty line) into the start line and the fields.
    static func parse(_ head: ArraySlice<UInt8>) throws(HTTPTestError) -> (startLine: String, fields: [HTTPHeader]) {
        guard let text = String(validatingUTF8Bytes: head) else { throw .malformed("head is not UTF-8") }
        let lines = text.components(separatedBy: "\r\n")
        var fields: [HTTPHeader] = []
        for line in lines.dropFirst() {
            if line.first == " " || line.first == "\t" { throw .malformed("obsolete line folding") }
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("header line without a colon: \(line.prefix(80))") }
            let name = String(line[..<colon])
            guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else { throw .malformed("bad header name: \(name.prefix(80))") }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
            if value.contains("\n") || value.contains("\r") { throw .malformed("bare CR or LF in a header") }
            fields.append(HTTPHeader(name, value))
        }
        return (lines[0], fields)
    }

    static func isTokenCharacter(_ c: Character) -> Bool {
        guard c.isASCII, let v = c.asciiValue else { return false }
        return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || "!#$%&'*+-.^_`|~".contains(c)
    }

    /// `HTTP/1.x SP status SP reason`.
    static func statusLine(_ line: String) throws(HTTPTestError) -> (status: Int, reason: String) {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0",
              parts[1].count == 3, let status = Int(parts[1]), status >= 100
        else { throw .malformed("bad status line: \(line.prefix(80))") }
        return (status, parts.count == 3 ? String(parts[2]) : "")
    }

    /// `METHOD SP target SP HTTP/1.x`.
    static func requestLine(_ line: String) throws(HTTPTestError) -> (method: String, target: String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenCharacter), !parts[1].isEmpty,
              parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0"
        else { throw .malformed("bad request line: \(line.prefix(80))") }
        return (String(parts[0]), String(parts[1]))
    }

    enum Framing: Equatable {
        case none, length(Int), chunked, untilClose
    }

    /// How the body of a message with these fields is delimited (RFC 9112 §6.3). A request
    /// without a length has no body; a response without one runs to the end of the connection.
    static func framing(_ fields: [HTTPHeader], isRequest: Bool) throws(HTTPTestError) -> Framing {
        let codings = fields.all(named: "Transfer-Encoding")
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if !codings.isEmpty {
            if fields.first(named: "Content-Length") != nil { throw .malformed("both Transfer-Encoding and Content-Length") }
            if codings.last == "chunked" { return .chunked }
            if isRequest { throw .malformed("request body without chunked framing") }
            return .untilClose
        }
        let lengths = fields.all(named: "Content-Length")
            .flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  first.count <= 12, let n = Int(first)
            else { throw .malformed("bad Content-Length: \(lengths.joined(separator: ","))") }
            guard n <= maxBodyBytes else { throw .malformed("Content-Length \(n) exceeds the test limit \(maxBodyBytes)") }
            return .length(n)
        }
        return isRequest ? .none : .untilClose
    }
}
