import Foundation
import UplinkCodec

/// The coordinator's files under `--data DIR`:
///
/// - `uplink.sqlite` (+ `-wal`): the round ledger (``Ledger``), unless `--database` names a
///   PostgreSQL server (then this directory is the replicas' shared store).
/// - `rounds/<round>/partial-<replica>.uplp`: a replica's partial sum of the round
///   (``PartialAggregate``), left for the replica that closes it.
/// - `uploads/<id>.part`: the bytes of an upload in progress; its durable length is the
///   ledger's offset (bytes past it, written but not yet recorded, are cut off on restart).
/// - `rounds/<round>/<seq>-<upload>.upl`: accepted frames, in acceptance order.
/// - `models/global-<round>.upl`: the exact float32 global model clients of `<round>` start
///   from (`fp32 | lz4`); `models/downlink-<round>.upl`: the same in the downlink pipeline;
///   `models/optimizer-<round>.upla`: the server optimizer's state before `<round>`.
struct DataDirectory: Sendable {
    let root: String

    init(_ root: String) throws(UplinkError) {
        self.root = root
        for dir in [root, uploads, root + "/rounds", models] {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw UplinkError(.io, "cannot create \(dir): \(error.localizedDescription)")
            }
        }
    }

    var database: String { root + "/uplink.sqlite" }
    var uploads: String { root + "/uploads" }
    var models: String { root + "/models" }
    func part(_ id: String) -> String { uploads + "/\(id).part" }
    func roundDirectory(_ round: UInt64) -> String { root + "/rounds/\(round)" }
    func acceptedFile(round: UInt64, sequence: Int, upload: String) -> String {
        roundDirectory(round) + "/" + String(repeating: "0", count: max(0, 6 - String(sequence).count)) + "\(sequence)-\(upload).upl"
    }
    /// A replica's partial sum of `round`, left for the replica that closes it (`docs/scaling.md`).
    func partialAggregate(round: UInt64, replica: String) -> String { roundDirectory(round) + "/partial-\(replica).uplp" }
    func globalModel(_ round: UInt64) -> String { models + "/global-\(round).upl" }
    func downlinkModel(_ round: UInt64) -> String { models + "/downlink-\(round).upl" }
    func optimizerState(_ round: UInt64) -> String { models + "/optimizer-\(round).upla" }
}

/// POSIX file operations with the durability the ledger relies on.
enum Durable {
    static func lastError() -> String { String(cString: strerror(errno)) }

    /// fsyncs the directory `path` (a rename or create in it is then durable).
    static func syncDirectory(_ path: String) throws(UplinkError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw UplinkError(.io, "cannot open directory \(path): \(lastError())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw UplinkError(.io, "cannot fsync directory \(path): \(lastError())") }
    }

    /// Creates `path` (and its parents) if missing, durably.
    static func makeDirectory(_ path: String) throws(UplinkError) {
        var st = stat()
        if stat(path, &st) == 0 { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw UplinkError(.io, "cannot create \(path): \(error.localizedDescription)")
        }
        try syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Renames `from` to `to` and fsyncs the target's directory (and the source's, if another).
    static func rename(_ from: String, to: String) throws(UplinkError) {
        guard Foundation.rename(from, to) == 0 else { throw UplinkError(.io, "cannot rename \(from) to \(to): \(lastError())") }
        let a = (from as NSString).deletingLastPathComponent, b = (to as NSString).deletingLastPathComponent
        try syncDirectory(b)
        if a != b { try syncDirectory(a) }
    }

    /// Renames `from` to `to` durably unless another process already did (`from` gone and
    /// `to` there): replicas may both finish moving a recorded frame.
    static func renameIfPresent(_ from: String, to: String) throws(UplinkError) {
        if Foundation.rename(from, to) == 0 {
            let a = (from as NSString).deletingLastPathComponent, b = (to as NSString).deletingLastPathComponent
            try syncDirectory(b)
            if a != b { try syncDirectory(a) }
            return
        }
        let failure = errno
        if failure == ENOENT, fileSize(to) != nil { return }
        throw UplinkError(.io, "cannot rename \(from) to \(to): \(String(cString: strerror(failure)))")
    }

    static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    /// Reads `count` bytes at `offset` of `path`.
    static func read(_ path: String, at offset: Int, count: Int) throws(UplinkError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UplinkError(.io, "cannot read \(path): \(lastError())") }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw UplinkError(.io, "cannot read \(path): \(n == 0 ? "file shrank" : lastError())") }
            done += n
        }
        return out
    }

    /// Reads a whole file of at most `maxBytes`.
    static func read(_ path: String, maxBytes: Int64) throws(UplinkError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UplinkError(.io, "cannot read \(path): \(lastError())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw UplinkError(.io, "cannot stat \(path): \(lastError())") }
        guard Int64(st.st_size) <= maxBytes else { throw UplinkError(.frameTooLarge, "\(path) has \(st.st_size) bytes, more than \(maxBytes)") }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < out.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw UplinkError(.io, "cannot read \(path): \(n == 0 ? "file shrank" : lastError())") }
            done += n
        }
        return out
    }
}

/// The file of one upload in progress, open for appending at known offsets.
final class PartialFile: @unchecked Sendable {
    // One append at a time per upload (``UploadSlot`` serializes them), so no lock here.
    let path: String
    private let fd: Int32

    /// Opens (creating if asked) the part file and cuts it to `durableOffset`: bytes a crash
    /// left past the recorded offset were never acknowledged.
    init(path: String, durableOffset: Int64, create: Bool) throws(UplinkError) {
        self.path = path
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw UplinkError(.io, "cannot open upload file \(path): \(Durable.lastError())") }
        self.fd = fd
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw UplinkError(.io, "cannot stat \(path): \(Durable.lastError())") }
        guard Int64(st.st_size) >= durableOffset else {
            close(fd)
            throw UplinkError(.io, "upload file \(path) has \(st.st_size) bytes, fewer than its recorded offset \(durableOffset): it was damaged outside the server")
        }
        // Only a creator cuts here: an upload another request may be appending to (on another
        // replica) is cut by ``Coordinator/claim`` under its lease, never by merely opening it.
        if create && Int64(st.st_size) > durableOffset { _ = ftruncate(fd, off_t(durableOffset)) }
        if create {
            guard fsync(fd) == 0 else { close(fd); throw UplinkError(.io, "cannot fsync \(path): \(Durable.lastError())") }
            try Durable.syncDirectory((path as NSString).deletingLastPathComponent)
        }
    }

    deinit { close(fd) }

    /// Writes `bytes` at `offset` (page cache only; ``sync()`` makes it durable).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(UplinkError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw UplinkError(.io, "cannot write upload file \(path): \(Durable.lastError())") }
            done += n
        }
    }

    /// Cuts the file to `length` bytes (what a previous holder wrote past the recorded offset).
    func truncate(to length: Int64) throws(UplinkError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw UplinkError(.io, "cannot truncate upload file \(path): \(Durable.lastError())") }
    }

    /// fsyncs the data written so far.
    func sync() throws(UplinkError) {
        guard fdatasync(fd) == 0 else { throw UplinkError(.io, "cannot fsync upload file \(path): \(Durable.lastError())") }
    }
}
