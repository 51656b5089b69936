import Foundation
import Testing
import UplinkAggregation
@testable import UplinkClient
import UplinkCodec
import UplinkServer
import UplinkTestSupport

/// The client's pieces that need no server: SHA-256, URL rules, token claims, header parsing, backoff.
struct ClientUnitTests {
    @Test func sha256MatchesLibcrypto() {
        var rng = SplitMix64(seed: 11)
        var sizes = Array(0...130) + [1000, 4095, 4096, 65_537]
        sizes.append(1 << 20)
        for n in sizes {
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(SHA256.hash(bytes) == MessageAuthentication.sha256(bytes), "size \(n)")
            // Fed in uneven pieces, the same digest.
            var h = SHA256()
            var i = 0
            while i < n {
                let take = min(n - i, Int(rng.below(97)) + 1)
                bytes[i..<(i + take)].withUnsafeBytes { h.update($0) }
                i += take
            }
            #expect(h.finalize() == MessageAuthentication.sha256(bytes), "pieces of size \(n)")
        }
        #expect(SHA256.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func httpsByDefaultAndPlainHTTPOnlyToLoopback() throws {
        #expect(try ServerEndpoint("fl.example.org:8443").base.absoluteString == "https://fl.example.org:8443")
        #expect(try ServerEndpoint("https://fl.example.org/").isHTTPS)
        for ok in ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080", "http://127.1.2.3"] {
            #expect(throws: Never.self) { try ServerEndpoint(ok) }
        }
        for refused in ["http://10.0.0.1:8080", "http://fl.example.org", "http://127.0.0.1.example.org", "ftp://127.0.0.1", "https://", "https://h/?q=1", "https://u@h"] {
            #expect(throws: UplinkClientError.self, "\(refused)") { try ServerEndpoint(refused) }
        }
        #expect(try ServerEndpoint("http://10.0.0.1:8080", allowInsecureHTTP: true).base.host == "10.0.0.1")
        // A Location on another origin is not followed.
        let e = try ServerEndpoint("http://127.0.0.1:8080")
        #expect(try e.url("/v1/uploads/ab").absoluteString == "http://127.0.0.1:8080/v1/uploads/ab")
        #expect(try e.url("http://127.0.0.1:8080/v1/uploads/ab").path == "/v1/uploads/ab")
        #expect(throws: UplinkClientError.self) { try e.url("http://evil.example:8080/v1/uploads/ab") }
        #expect(throws: UplinkClientError.self) { try e.url("http://127.0.0.1:9999/v1/uploads/ab") }
    }

    @Test func tokenClaimsAreReadWithoutTheSecret() throws {
        let authority = try TokenAuthority(secret: [UInt8](repeating: 7, count: 32))
        let now = Date().timeIntervalSince1970
        let t = try authority.mint(client: "device-7", ttl: 60, now: now)
        let claims = TokenClaims(token: t)
        #expect(claims.subject == "device-7")
        #expect(abs(claims.expiresAt!.timeIntervalSince1970 - (now + 60)) < 1.01)
        #expect(TokenClaims(token: "not a jwt").expiresAt == nil)
        #expect(TokenClaims(token: "a.%%%.c").subject == nil)
    }

    @Test func headerParsing() throws {
        let head = TransportResponseHead(status: 204, headers: [("upload-offset", "17"), ("Upload-Limit", "max-size=100, max-append-size=4096, max-age=60")])
        #expect(try ResumableUploader.offset(head, length: 20) == 17)
        #expect(throws: UplinkClientError.self) { try ResumableUploader.offset(head, length: 10) }
        #expect(throws: UplinkClientError.self) { try ResumableUploader.offset(TransportResponseHead(status: 204, headers: [("Upload-Offset", "-1")]), length: 10) }
        #expect(throws: UplinkClientError.self) { try ResumableUploader.offset(TransportResponseHead(status: 204, headers: [("Upload-Offset", "99999999999999999999999")]), length: 10) }
        #expect(ResumableUploader.maxAppend(head) == 4096)
        #expect(ModelDownloader.contentRange("bytes 10-19/20")! == (10, 20))
        #expect(ModelDownloader.contentRange("bytes 10-20/20") == nil)
        #expect(ModelDownloader.contentRange("bytes */20") == nil)
        #expect(ModelDownloader.sha256Tag("\"" + String(repeating: "a", count: 64) + "\"") == String(repeating: "a", count: 64))
        #expect(ModelDownloader.sha256Tag("W/\"" + String(repeating: "a", count: 64) + "\"") == nil)
        let p = ServerProblem(status: 409, body: Array(#"{"type":"urn:uplink:problem:frame-rejected","code":900,"title":"t","status":409}"#.utf8))
        #expect(p.name == "frame-rejected" && p.code == 900)
        #expect(ServerProblem(status: 502, body: Array("<html>bad gateway</html>".utf8)).type == "")
    }

    @Test func backoffIsCappedExponentialWithJitter() {
        let p = RetryPolicy(initialDelay: 0.5, maxDelay: 8)
        for failures in 1...40 {
            let cap = min(8, 0.5 * pow(2, Double(failures - 1)))
            let samples = (0..<200).map { _ in p.delay(failures: failures, retryAfter: nil) }
            #expect(samples.allSatisfy { $0 >= 0 && $0 <= cap }, "failure \(failures)")
            // Jittered: not all the same.
            #expect(Set(samples).count > 100)
        }
        // Retry-After is a floor, still capped.
        #expect(p.delay(failures: 1, retryAfter: 5) >= 5)
        #expect(p.delay(failures: 1, retryAfter: 500) == 8)
    }
}
