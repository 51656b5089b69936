import Foundation
import UplinkCodec

/// Durable, atomic file replacement, as a database commits a page: the new content goes to a
/// temporary file in the target's directory, which is fsynced, renamed over the target, and the
/// directory fsynced, so after a crash at any point the target holds the old content or the
/// new, never a mix or nothing.
///
/// Temporary files are named `.<name>.uplink-tmp.<pid>.<random>`. A process killed mid-write
/// cannot remove its own, so every writer first removes the temporary files of its target left
/// by processes that no longer run: a kill leaves at most one stray file, until the next write.
public enum DurableFile {
    /// Replaces the file at `path` with `bytes` (write, fsync, rename, fsync the directory).
    public static func replace(_ path: String, with bytes: [UInt8]) throws(UplinkError) {
        let writer = try Writer(path: path)
        try writer.write(bytes)
        try writer.commit()
    }

    /// A new version of one file, written to a temporary file until ``commit()`` moves it into
    /// place. Dropped without a commit, it removes its temporary file.
    public final class Writer {
        /// The file this writer replaces.
        public let path: String
        /// The temporary file the data goes to.
        let temporary: String
        private var fd: Int32
        private var committed = false

        /// Starts a new version of `path`.
        /// - Throws: ``UplinkError/Code/io`` when `path` is a directory or its directory is not writable.
        public init(path: String) throws(UplinkError) {
            var st = stat()
            if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                throw UplinkError(.io, "cannot write \(path): it is a directory")
            }
            let (dir, name) = DurableFile.split(path)
            DurableFile.removeStale(directory: dir, name: name)
            self.path = path
            self.temporary = dir + "/" + DurableFile.temporaryPrefix(name) + "\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw UplinkError(.io, "cannot write \(path): \(DurableFile.lastError())") }
        }

        /// Appends `bytes`.
        public func write(_ bytes: UnsafeRawBufferPointer) throws(UplinkError) {
            precondition(fd >= 0, "write after commit")
            var done = 0
            while done < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw UplinkError(.io, "cannot write \(path): \(DurableFile.lastError())") }
                done += n
            }
        }

        /// Appends `bytes`.
        public func write(_ bytes: [UInt8]) throws(UplinkError) {
            try bytes.withUnsafeBufferPointer { (p) throws(UplinkError) in try write(UnsafeRawBufferPointer(p)) }
        }

        /// Flushes the data to stable storage and closes the temporary file (step one of a commit).
        func sync() throws(UplinkError) {
            guard fd >= 0 else { return }
            defer { close(fd); fd = -1 }
            guard fsync(fd) == 0 else { throw UplinkError(.io, "cannot write \(path): fsync: \(DurableFile.lastError())") }
        }

        /// Makes the written data the content of ``path``: fsync, rename, fsync the directory.
        public func commit() throws(UplinkError) {
            try sync()
            try DurableFile.rename(temporary, path)
            committed = true
        }

        deinit {
            if fd >= 0 { close(fd) }
            if !committed { unlink(temporary) }
        }
    }

    /// Removes the temporary files of `path` left by processes that no longer run (every
    /// ``Writer`` does this for its own target first).
    public static func removeStaleTemporaries(of path: String) {
        let (dir, name) = split(path)
        removeStale(directory: dir, name: name)
    }

    /// Renames `from` over `to` and fsyncs the directory.
    static func rename(_ from: String, _ to: String) throws(UplinkError) {
        guard Foundation.rename(from, to) == 0 else { throw UplinkError(.io, "cannot write \(to): rename: \(lastError())") }
        try syncDirectory(of: to)
    }

    static func syncDirectory(of path: String) throws(UplinkError) {
        let dir = split(path).directory
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw UplinkError(.io, "cannot sync directory \(dir): \(lastError())") }
        defer { close(d) }
        guard fsync(d) == 0 else { throw UplinkError(.io, "cannot sync directory \(dir): \(lastError())") }
    }

    static func split(_ path: String) -> (directory: String, name: String) {
        let url = URL(fileURLWithPath: path)
        return (url.deletingLastPathComponent().path, url.lastPathComponent)
    }

    static func temporaryPrefix(_ name: String) -> String { ".\(name).uplink-tmp." }

    /// Removes `directory`'s temporary files for `name` whose writing process no longer runs.
    static func removeStale(directory: String, name: String) {
        let prefix = temporaryPrefix(name)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count)
            guard let pid = rest.split(separator: ".").first.flatMap({ Int32($0) }), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(directory + "/" + entry) }
        }
    }

    static func lastError() -> String { String(cString: strerror(errno)) }
}

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

extension DurableFile.Writer {
    func markCommitted() { committed = true }
}
