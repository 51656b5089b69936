import Foundation
import Testing
@testable import UplinkServer
import UplinkCodec

@Suite struct TokenTests {
    let secret = [UInt8](repeating: 7, count: 32)

    @Test func mintedTokensVerifyUntilTheyExpire() throws {
        let authority = try TokenAuthority(secret: secret)
        let token = try authority.mint(client: "phone-17", ttl: 60, now: 1_000_000)
        #expect(authority.verify(token, now: 1_000_000) == .success("phone-17"))
        #expect(authority.verify(token, now: 1_000_059) == .success("phone-17"))
        #expect(authority.verify(token, now: 1_000_060) == .failure(.expired))
    }

    @Test func aTokenIsAStandardHS256JWT() throws {
        let token = try TokenAuthority(secret: secret).mint(client: "a", ttl: 10, now: 100)
        let parts = token.split(separator: ".")
        #expect(parts.count == 3)
        let header = try JSONSerialization.jsonObject(with: Data(TokenAuthority.unbase64url(parts[0])!)) as! [String: Any]
        #expect(header["alg"] as? String == "HS256")
        let claims = try JSONSerialization.jsonObject(with: Data(TokenAuthority.unbase64url(parts[1])!)) as! [String: Any]
        #expect(claims["sub"] as? String == "a" && claims["exp"] as? Int == 110 && claims["iat"] as? Int == 100)
        // RFC 4231 test case 2 through the same HMAC: key "Jefe".
        let mac = UplinkServerHMAC.hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func forgedOrTamperedTokensAreRefused() throws {
        let authority = try TokenAuthority(secret: secret)
        let other = try TokenAuthority(secret: [UInt8](repeating: 8, count: 32))
        let token = try authority.mint(client: "alice", ttl: 60, now: 0)
        #expect(authority.verify(try other.mint(client: "alice", ttl: 60, now: 0), now: 1) != .success("alice"))
        // Changing the subject breaks the signature.
        let parts = token.split(separator: ".").map(String.init)
        let bob = TokenAuthority.base64url(Array(#"{"exp":60,"iat":0,"sub":"bob"}"#.utf8))
        #expect(authority.verify([parts[0], bob, parts[2]].joined(separator: "."), now: 1) != .success("bob"))
        // alg none, wrong part counts, garbage, huge.
        let none = TokenAuthority.base64url(Array(#"{"alg":"none"}"#.utf8))
        #expect(authority.verify(none + "." + parts[1] + ".", now: 1) != .success("alice"))
        for junk in ["", ".", "a.b", "a.b.c.d", "!!!.???.***", String(repeating: "a", count: 5000)] {
            if case .success = authority.verify(junk, now: 1) { Issue.record("accepted \(junk.prefix(20))") }
        }
    }

    @Test func shortSecretsAndBadClientIdsAreRefused() throws {
        #expect(throws: UplinkError.self) { try TokenAuthority(secret: [UInt8](repeating: 1, count: 31)) }
        let authority = try TokenAuthority(secret: secret)
        for bad in ["", "a b", "ü", "../x", String(repeating: "x", count: 129)] {
            #expect(throws: UplinkError.self, "\(bad)") { try authority.mint(client: bad, ttl: 10) }
        }
        #expect(throws: UplinkError.self) { try authority.mint(client: "a", ttl: 0) }
        #expect(throws: UplinkError.self) { try authority.mint(client: "a", ttl: .nan) }
    }

    @Test func byteRangesFollowRFC9110() {
        #expect(HTTPAPI.byteRange("bytes=0-9", size: 100)! == (0, 10))
        #expect(HTTPAPI.byteRange("bytes=90-", size: 100)! == (90, 100))
        #expect(HTTPAPI.byteRange("bytes=-10", size: 100)! == (90, 100))
        #expect(HTTPAPI.byteRange("bytes=-1000", size: 100)! == (0, 100))
        #expect(HTTPAPI.byteRange("bytes=50-5000", size: 100)! == (50, 100))
        for bad in ["bytes=100-", "bytes=5-4", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes=-0", "bytes=99999999999999999999-"] {
            #expect(HTTPAPI.byteRange(bad, size: 100) == nil, "\(bad)")
        }
    }

    @Test func structuredFieldsAreStrict() {
        #expect(HTTPAPI.sfInteger("0") == 0 && HTTPAPI.sfInteger("4112") == 4112)
        #expect(HTTPAPI.sfInteger("999999999999999") == 999_999_999_999_999)
        for bad in ["", "-1", "1.5", "0x10", "1e3", "1000000000000000", " ", "+1"] { #expect(HTTPAPI.sfInteger(bad) == nil, "\(bad)") }
        #expect(HTTPAPI.sfBoolean("?1") == true && HTTPAPI.sfBoolean("?0") == false)
        for bad in ["1", "true", "?2", "", "?"] { #expect(HTTPAPI.sfBoolean(bad) == nil, "\(bad)") }
    }
}

