import Foundation
import UplinkCodec

/// Several files replaced as one unit: all of them or none, even across a crash.
///
/// The staged writers are fsynced; a journal naming each temporary file and its target is then
/// written durably (itself by atomic replacement); the temporary files are renamed into place
/// and the journal removed. A crash before the journal exists leaves every target old; after,
/// ``recover(journal:)`` (run before the next use of the files) finishes the renames, so every
/// target is new. `uplink aggregate` commits the model and the server-optimizer state this way.
public enum DurableCommit {
    /// Commits `writers` together, journalled at `journal`.
    public static func commit(_ writers: [DurableFile.Writer], journal: String) throws(UplinkError) {
        for w in writers { try w.sync() }
        var text = "uplink-commit 1\n"
        for w in writers { text += "\(w.temporary)\t\(w.path)\n" }
        try DurableFile.replace(journal, with: Array(text.utf8))
        try replay(writers.map { ($0.temporary, $0.path) })
        for w in writers { w.markCommitted() }
        unlink(journal)
        try DurableFile.syncDirectory(of: journal)
    }

    /// Finishes a commit a crash interrupted: renames the journal's remaining temporary files
    /// into place and removes the journal. Returns whether there was one to finish.
    /// - Throws: ``UplinkError/Code/malformedState`` for a journal that is not one.
    @discardableResult
    public static func recover(journal: String) throws(UplinkError) -> Bool {
        guard FileManager.default.fileExists(atPath: journal) else { return false }
        let bytes = try TensorFiles.readFile(journal, maxBytes: 1 << 20, overLimit: .malformedState)
        guard let text = String(validatingUTF8Bytes: bytes) else {
            throw UplinkError(.malformedState, "\(journal) is not an Uplink commit journal")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard lines.first == "uplink-commit 1" else { throw UplinkError(.malformedState, "\(journal) is not an Uplink commit journal") }
        lines.removeFirst()
        var pairs: [(String, String)] = []
        for line in lines {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            // Only temporary files of this scheme, beside their targets, are ever renamed.
            guard parts.count == 2, DurableFile.split(parts[0]).directory == DurableFile.split(parts[1]).directory,
                  DurableFile.split(parts[0]).name.hasPrefix(DurableFile.temporaryPrefix(DurableFile.split(parts[1]).name))
            else { throw UplinkError(.malformedState, "\(journal) has a malformed entry") }
            pairs.append((parts[0], parts[1]))
        }
        try replay(pairs.filter { FileManager.default.fileExists(atPath: $0.0) })
        unlink(journal)
        try DurableFile.syncDirectory(of: journal)
        return true
    }

    private static func replay(_ pairs: [(String, String)]) throws(UplinkError) {
        for (from, to) in pairs { try DurableFile.rename(from, to) }
    }
}
