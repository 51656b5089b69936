import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport

/// HTTPS with a certificate made in the test (openssl), checked by curl against it as the CA.
@Suite(.serialized) struct ServerTLSTests {
    static func run(_ tool: String, _ arguments: [String], in directory: URL) throws -> ToolResult {
        try runTool(URL(fileURLWithPath: "/usr/bin/env"), [tool] + arguments, in: directory)
    }

    @Test func servesHTTPSWithAGivenCertificate() throws {
        let s = try ScratchDirectory()
        let made = try Self.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem",
        ], in: s.url)
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let c = try TestCoordinator(["--tls-cert", s.path("cert.pem"), "--tls-key", s.path("key.pem")], scratch: s)
        #expect(c.server.scheme == "https")
        let token = c.token("tls-client")
        let ok = try Self.run("curl", ["-sS", "--max-time", "10", "--cacert", "cert.pem", "-X", "POST", "-H", "Authorization: Bearer \(token)", "https://127.0.0.1:\(c.port)/v1/checkin"], in: s.url)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("\"status\":\"selected\""), "\(ok.stdout)")
        // Without the CA, curl refuses the self-signed server: the certificate is really checked.
        let untrusted = try Self.run("curl", ["-sS", "--max-time", "10", "https://127.0.0.1:\(c.port)/healthz"], in: s.url)
        #expect(untrusted.status != 0)
        // Plain HTTP to the TLS port gets no answer.
        #expect((try? httpRequest(port: c.port, method: "GET", path: "/healthz", timeout: 3))?.status != 200)
    }
}
