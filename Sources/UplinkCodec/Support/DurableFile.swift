import Foundation


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
        package let temporary: String
        private var fd: Int32
        fileprivate(set) var committed = false

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
        package func sync() throws(UplinkError) {
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
    package static func rename(_ from: String, _ to: String) throws(UplinkError) {
        guard Foundation.rename(from, to) == 0 else { throw UplinkError(.io, "cannot write \(to): rename: \(lastError())") }
        try syncDirectory(of: to)
    }

    package static func syncDirectory(of path: String) throws(UplinkError) {
        let dir = split(path).directory
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw UplinkError(.io, "cannot sync directory \(dir): \(lastError())") }
        defer { close(d) }
        guard fsync(d) == 0 else { throw UplinkError(.io, "cannot sync directory \(dir): \(lastError())") }
    }

    package static func split(_ path: String) -> (directory: String, name: String) {
        let url = URL(fileURLWithPath: path)
        return (url.deletingLastPathComponent().path, url.lastPathComponent)
    }

    package static func temporaryPrefix(_ name: String) -> String { ".\(name).uplink-tmp." }

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

extension DurableFile.Writer {
    /// Marks the temporary file as moved into place by a ``DurableCommit`` (not removed on drop).
    package func markCommitted() { committed = true }
}
