import Foundation
import Testing
import UplinkCodec
@testable import UplinkTensorIO
import UplinkTestSupport

/// One case of `fixtures/tensor-files/safetensors-rules.json`, the header rules of
/// `docs/wire-format.md` §6.1 that the Python interop reader (`scripts/interop-check`) runs too.
struct SafetensorsRuleCase: Sendable, CustomTestStringConvertible {
    var label: String
    var file: [UInt8]
    /// The layout (name, shape) it must be read as, sorted by name bytes, or nil when refused.
    var tensors: [(name: String, shape: [Int])]?
    var code: UInt16?

    var testDescription: String { label }

    static let all: [SafetensorsRuleCase] = {
        let doc = try! JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("tensor-files/safetensors-rules.json"))) as! [String: Any]
        return (doc["cases"] as! [[String: Any]]).map { c in
            let header = Array((c["header"] as! String).utf8)
            let length = (c["length_override"] as? NSNumber)?.uint64Value ?? UInt64(header.count)
            var file: [UInt8] = []
            withUnsafeBytes(of: length.littleEndian) { file += $0 }
            file += header + [UInt8](repeating: 0, count: (c["data_bytes"] as! NSNumber).intValue)
            let tensors = (c["tensors"] as? [[Any]])?.map { ($0[0] as! String, ($0[1] as! [NSNumber]).map(\.intValue)) }
            return SafetensorsRuleCase(
                label: c["label"] as! String, file: file, tensors: tensors, code: (c["code"] as? NSNumber)?.uint16Value)
        }
    }()
}

@Suite struct SafetensorsRulesTests {
    /// Every reading path gives the case's outcome: the whole-file reader, the header-only layout
    /// reader and the streaming reader (`aggregate --model`) agree on every rule.
    @Test(arguments: SafetensorsRuleCase.all)
    func everyReaderFollowsTheRule(_ c: SafetensorsRuleCase) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-rule-\(UUID()).safetensors").path
        try Data(c.file).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let readers: [(String, () throws(UplinkError) -> ModelLayout)] = [
            ("read", { () throws(UplinkError) in try Safetensors.read(c.file).layout }),
            ("load", { () throws(UplinkError) in try TensorFiles.load(path: path).layout }),
            ("loadLayout", { () throws(UplinkError) in try TensorFiles.loadLayout(path: path) }),
            ("TensorFileReader", { () throws(UplinkError) in try TensorFileReader(path: path).layout }),
        ]
        for (reader, read) in readers {
            let outcome: Result<ModelLayout, UplinkError>
            do throws(UplinkError) { outcome = .success(try read()) } catch { outcome = .failure(error) }
            switch (outcome, c.tensors) {
            case (.success(let layout), let want?):
                #expect(layout.tensors.map { Array($0.name.utf8) } == want.map { Array($0.name.utf8) }, "\(reader)")
                #expect(layout.tensors.map(\.shape) == want.map(\.shape), "\(reader)")
            case (.failure(let e), nil):
                #expect(e.code.rawValue == c.code, "\(reader): \(e)")
                #expect(e.message.count < 500, "\(reader): message of \(e.message.count) characters")
            case (.success, nil):
                Issue.record("\(reader) accepted it, expected error \(c.code!)")
            case (.failure(let e), _?):
                Issue.record("\(reader) refused it: \(e)")
            }
        }
    }

    /// The tensor count is checked as each tensor is reached, with the limit of the frame reader.
    @Test func tensorCountIsBoundedWhileParsing() throws {
        #expect(Safetensors.maxTensors == FrameLimits.default.maxTensors)
        let entries = (0..<4).map { #""t\#($0)":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}"# }
        let json = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        let three = try json.withUnsafeBytes { raw in
            try SafetensorsHeaderParser.entries(raw, maxTensors: 4)
        }
        #expect(three.count == 4)
        #expect { try json.withUnsafeBytes { try SafetensorsHeaderParser.entries($0, maxTensors: 3) } } throws: {
            ($0 as? UplinkError)?.code == .tooManyTensors
        }
    }

    /// A shape of 100,000 entries is refused at its 65th, with a short message (it used to
    /// be parsed whole, and a product overflow printed every entry: 75 MB for 25M entries).
    @Test func longShapesAreRefusedAtTheRankLimitWithAShortMessage() {
        for dim in ["1", "2", "1.5"] {
            let shape = Array(repeating: dim, count: 100_000).joined(separator: ",")
            let file = Self.file(#"{"w":{"dtype":"F32","shape":["# + shape + #"],"data_offsets":[0,4]}}"#, data: 4)
            #expect { try Safetensors.read(file) } throws: { e in
                let e = e as! UplinkError
                return e.code == (dim == "1.5" ? .malformedSafetensors : .fieldTooLong) && e.message.count < 300
            }
        }
    }

    /// Untrusted text quoted in an error message (a name, a dtype, a JSON excerpt) is cut to
    /// about 200 characters.
    @Test func quotedInputIsCutInMessages() {
        let long = String(repeating: "x", count: 5000)
        let files = [
            #"{"w":{"dtype":""# + long + #"","shape":[1],"data_offsets":[0,4]}}"#,        // dtype
            #"{"w":{"dtype":"F32","shape":["# + long + #"],"data_offsets":[0,4]}}"#,      // not a number
            #"{"# + String(repeating: "n", count: 1000) + #"":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#,  // name, offsets
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        ]
        for (i, json) in files.enumerated() {
            #expect(throws: UplinkError.self, "\(i)") { try Safetensors.read(Self.file(json, data: 8)) }
            do { _ = try Safetensors.read(Self.file(json, data: 8)) } catch {
                #expect(error.message.count <= 2 * UplinkError.maxQuotedLength + 100, "\(i): \(error.message.count)")
            }
        }
    }

    /// Names that are canonically equivalent but differ in bytes are two tensors when written
    /// and read back (a dictionary keyed by String used to merge them into one JSON key).
    @Test func canonicallyEquivalentNamesStayTwoTensors() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        #expect(nfc == nfd)  // Swift's String ==, which the layout must not use
        let layout = try ModelLayout([TensorSpec(name: nfc, shape: [2]), TensorSpec(name: nfd, shape: [1])])
        let set = try TensorSet(layout: layout, values: [1, 2, 3])
        let back = try Safetensors.read(try Safetensors.write(set))
        #expect(back.layout.tensors.map { Array($0.name.utf8) } == [Array(nfd.utf8), Array(nfc.utf8)])
        #expect(back.values == [3, 1, 2])
    }

    /// A tensor named `__metadata__` is legal in a frame but cannot be written to .safetensors:
    /// every path that writes one refuses it [303] instead of writing a file no reader accepts.
    @Test func aTensorNamedMetadataIsRefusedWhenWritingSafetensors() throws {
        let layout = try ModelLayout([TensorSpec(name: "__metadata__", shape: [2]), TensorSpec(name: "w", shape: [1])])
        let set = try TensorSet(layout: layout, values: [1, 2, 3])
        #expect { try Safetensors.write(set) } throws: { ($0 as? UplinkError)?.code == .invalidLayout }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-meta-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        #expect { try TensorFiles.save(set, path: path) } throws: { ($0 as? UplinkError)?.code == .invalidLayout }
        #expect { try TensorFileWriter(path: path, layout: layout) } throws: { ($0 as? UplinkError)?.code == .invalidLayout }
        #expect(!FileManager.default.fileExists(atPath: path))
        // .npy carries no names, so the same tensors can be written there.
        try TensorFiles.save(set, path: dir.appendingPathComponent("m.npy").path)
    }

    /// Metadata is written first and read back as metadata, never as a tensor.
    @Test func writtenMetadataIsNotATensor() throws {
        let layout = try ModelLayout([TensorSpec(name: "a\"b\\c\n", shape: [1])])
        let bytes = try Safetensors.write(try TensorSet(layout: layout, values: [7]), metadata: ["format": "pt", "note": "\"quoted\""])
        let back = try Safetensors.read(bytes)
        #expect(back.layout == layout && back.values == [7])
        let n = Int(bytes[0]) | Int(bytes[1]) << 8
        #expect(n % 8 == 0)
        #expect(String(decoding: bytes[8..<(8 + n)], as: UTF8.self).hasPrefix(#"{"__metadata__":{"format":"pt","note":"\"quoted\""},"#))
    }

    /// A header above the format's 100 MB is refused when writing [401], so no file is written
    /// that no reader accepts (checked here with a small limit; the real one needs 100 MB).
    @Test func oversizedHeadersAreRefusedWhenWriting() throws {
        let layout = try ModelLayout((0..<10).map { TensorSpec(name: "t\($0)", shape: [1]) })
        let size = try Safetensors.headerBytes(layout: layout).count - 8
        #expect(throws: Never.self) { try Safetensors.headerBytes(layout: layout, maxLength: size) }
        #expect { try Safetensors.headerBytes(layout: layout, maxLength: size - 1) } throws: {
            ($0 as? UplinkError)?.code == .headerTooLarge
        }
    }

    static func file(_ json: String, data: Int) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { out += $0 }
        return out + Array(json.utf8) + [UInt8](repeating: 0, count: data)
    }
}
