import Testing
import UplinkCodec
import UplinkTestSupport

/// Untrusted input in error messages: quoted, escaped to one line, and cut to about 200
/// characters whatever its length.
@Suite struct ErrorQuotingTests {
    @Test func shortTextIsQuotedAsIs() {
        #expect(UplinkError.quoted("fc1.weight") == #""fc1.weight""#)
        #expect(UplinkError.quoted("caf\u{E9}") == "\"caf\u{E9}\"")
        #expect(UplinkError.quoted("") == #""""#)
    }

    @Test func quotesControlAndFormatCharactersAreEscaped() {
        #expect(UplinkError.quoted("a\"b\\c") == #""a\"b\\c""#)
        #expect(UplinkError.quoted("line\nbreak\r\t") == #""line\nbreak\r\t""#)
        #expect(UplinkError.quoted("\u{1}\u{7F}\u{202E}\u{2028}") == #""\u{1}\u{7f}\u{202e}\u{2028}""#)
    }

    @Test func longTextIsCutAfter200ScalarsWithItsLength() {
        let cut = UplinkError.quoted(String(repeating: "a", count: 7_500_000))
        #expect(cut == "\"" + String(repeating: "a", count: 200) + "…\" (7500000 bytes)")
        #expect(UplinkError.quoted(String(repeating: "a", count: 200)) == "\"" + String(repeating: "a", count: 200) + "\"")
        let wide = UplinkError.quoted(String(repeating: "\u{E9}", count: 300))
        #expect(wide == "\"" + String(repeating: "\u{E9}", count: 200) + "…\" (600 bytes)")
    }

    @Test func bytesThatAreNotUTF8AreShownWithReplacementCharacters() {
        #expect(UplinkError.quoted(bytes: [0x61, 0xFF, 0x62]) == "\"a\u{FFFD}b\"")
        let long = UplinkError.quoted(bytes: [UInt8](repeating: 0x41, count: 1_000_000))
        #expect(long == "\"" + String(repeating: "A", count: 200) + "…\" (1000000 bytes)")
    }

    /// A list is formatted only as far as it is printed: 25 million entries cost 200 characters.
    @Test func listsAreCutWithTheirCount() {
        #expect(UplinkError.excerpt(list: [2, 3, 4]) == "[2, 3, 4]")
        #expect(UplinkError.excerpt(list: [Int]()) == "[]")
        let long = UplinkError.excerpt(list: repeatElement(2, count: 25_000_000))
        #expect(long.hasPrefix("[2, 2, ") && long.hasSuffix(", …] (25000000 entries)"))
        #expect(long.count <= UplinkError.maxQuotedLength + 40)
    }

    /// Names from a frame's tensor table (up to 1024 bytes) are cut in messages.
    @Test func namesInLayoutErrorsAreCut() {
        let name = String(repeating: "n", count: 1024)
        #expect { try ModelLayout([TensorSpec(name: name, shape: [1]), TensorSpec(name: name, shape: [1])]) } throws: {
            ($0 as! UplinkError).message.count < 300
        }
        #expect { try ModelLayout.elementCount(Array(repeating: 1 << 20, count: 60), name: name) } throws: {
            let e = $0 as! UplinkError
            return e.code == .shapeOverflow && e.message.count < 600
        }
    }
}
