import Foundation
import UplinkCodec

/// A problem-details response (RFC 9457, `application/problem+json`). Upload-protocol
/// problems use the draft's IANA types; Uplink's own are `urn:uplink:problem:<name>`.
struct Problem: Error, Sendable {
    var status: Int
    var type: String
    var title: String
    var detail: String
    var extra: [String: any Sendable] = [:]
    /// Headers the response carries besides the content type.
    var headers: [(String, String)] = []

    /// The short name metrics count it under.
    var name: String { type.split(separator: ":").last.map(String.init)?.split(separator: "#").last.map(String.init) ?? type }

    static func uplink(_ status: Int, _ name: String, _ title: String, _ detail: String) -> Problem {
        Problem(status: status, type: "urn:uplink:problem:\(name)", title: title, detail: detail)
    }

    var json: String {
        var object: [String: Any] = ["type": type, "title": title, "status": status, "detail": detail]
        for (k, v) in extra { object[k] = v }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return #"{"type":"\#(type)","status":\#(status)}"#
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func unauthorized(_ detail: String) -> Problem {
        var p = uplink(401, "unauthorized", "a valid bearer token is needed", detail)
        p.headers = [("WWW-Authenticate", "Bearer realm=\"uplink\"")]
        return p
    }
    static func forbidden(_ detail: String) -> Problem { uplink(403, "forbidden", "this token may not touch that resource", detail) }
    static func notFound(_ detail: String) -> Problem { uplink(404, "not-found", "no such resource", detail) }
    static func badRequest(_ detail: String) -> Problem { uplink(400, "bad-request", "the request is malformed", detail) }
    static func interopVersion(_ got: String?) -> Problem {
        uplink(400, "unsupported-interop-version", "unsupported Upload-Draft-Interop-Version",
               got.map { "Upload-Draft-Interop-Version \($0) is not supported; send 8 (or 6)" } ?? "send Upload-Draft-Interop-Version: 8 (or 6)")
    }
    static func roundClosed(_ round: UInt64, _ detail: String) -> Problem {
        var p = uplink(409, "round-closed", "the round is closed", detail)
        p.extra["round"] = round
        return p
    }
    static func notSelected(_ round: UInt64) -> Problem {
        var p = uplink(403, "not-selected", "the client was not selected for this round", "check in first (POST /v1/checkin); round \(round) did not select this client")
        p.extra["code"] = Int(UplinkError.Code.notSelected.rawValue)
        return p
    }
    static func frameRejected(_ error: UplinkError, status: Int) -> Problem {
        var p = uplink(status, "frame-rejected", "the frame was refused", error.message)
        p.extra["code"] = Int(error.code.rawValue)
        return p
    }
    static func tooLarge(length: Int64, limit: Int64) -> Problem {
        var p = uplink(413, "upload-too-large", "the upload is larger than the server accepts", "\(length) bytes is more than max-size \(limit)")
        p.extra["max-size"] = limit
        return p
    }
    static func appendTooLarge(limit: Int) -> Problem {
        var p = uplink(413, "append-too-large", "the request body is larger than max-append-size", "send at most \(limit) bytes per request")
        p.extra["max-append-size"] = limit
        return p
    }
    static func tooManyUploads(_ limit: Int) -> Problem {
        uplink(429, "too-many-uploads", "too many open uploads for this client", "a client may have \(limit) uploads open at once; finish or DELETE one")
    }
    static func busy(retryAfter: Int) -> Problem {
        var p = uplink(503, "server-busy", "too many uploads in flight", "retry after \(retryAfter) s")
        p.headers = [("Retry-After", String(retryAfter))]
        return p
    }
    static func tooSlow(_ rate: Double, _ minimum: Double) -> Problem {
        uplink(408, "too-slow", "the upload is slower than the server accepts", String(format: "%.0f B/s is below the minimum of %.0f B/s; the bytes received are kept: resume from Upload-Offset", rate, minimum))
    }
    static func mismatchingOffset(expected: Int64, provided: Int64) -> Problem {
        var p = Problem(status: 409, type: "https://iana.org/assignments/http-problem-types#mismatching-upload-offset",
                        title: "offset from request does not match offset of resource", detail: "the upload is at offset \(expected), the request said \(provided)")
        p.extra["expected-offset"] = expected
        p.extra["provided-offset"] = provided
        return p
    }
    static func inconsistentLength(_ detail: String) -> Problem {
        Problem(status: 400, type: "https://iana.org/assignments/http-problem-types#inconsistent-upload-length", title: "inconsistent length values for upload", detail: detail)
    }
    static func completedUpload() -> Problem {
        Problem(status: 400, type: "https://iana.org/assignments/http-problem-types#completed-upload", title: "upload is already completed", detail: "no more data can be appended")
    }
    static func unsupportedMedia() -> Problem {
        uplink(415, "unsupported-media-type", "appends need Content-Type: application/partial-upload", "PATCH an upload with Content-Type: application/partial-upload")
    }
    static func internalError(_ detail: String) -> Problem { uplink(500, "internal", "the server failed", detail) }
}
