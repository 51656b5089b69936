import Foundation
import UplinkCodec
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The client's state directory (`docs/client.md`, "State directory"):
///
/// | path | what |
/// |---|---|
/// | `residual.upls` | the committed error-feedback state (`UPLS`, as `uplink encode --state` writes) |
/// | `reported.json` | the last round whose update the server holds |
/// | `pending/` | the update in flight: `round.json`, `frame.upl`, `frame.upl.upload.json` (the upload session), `residual.upls` (the state to commit on acceptance), `carry.upls` (the state to commit if the server never takes the frame), `verdict.json` once known |
/// | `models/model-<round>.upl` | the last global model downloaded (`.part` and `.etag` while a download is cut) |
///
/// `pending/` appears whole (written in a temporary directory, fsynced, renamed), and every file
/// replaced later is replaced atomically, so a kill at any point leaves a state the next run resumes.
struct ClientState {
    let root: String

    init(root: String) throws(UplinkClientError) {
        self.root = root
        do {
            try FileManager.default.createDirectory(atPath: root + "/models", withIntermediateDirectories: true)
        } catch {
            throw .local(UplinkError(.io, "cannot create the state directory \(root): \(error.localizedDescription)"))
        }
        // Half-written pending directories of killed runs.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where name.hasPrefix(".pending.") {
            try? FileManager.default.removeItem(atPath: root + "/" + name)
        }
    }

    var residualPath: String { root + "/residual.upls" }
    var pendingPath: String { root + "/pending" }
    var framePath: String { pendingPath + "/frame.upl" }
    func modelPath(round: UInt64) -> String { root + "/models/model-\(round).upl" }

    /// What `pending/round.json` records.
    struct PendingRound: Codable, Equatable {
        var round: UInt64
        var pipeline: String
        var samples: UInt64
        /// The creation URL path.
        var creation: String
        var deadline: Date
        /// Whether `residual.upls` and `carry.upls` are present (the pipeline has error feedback).
        var errorFeedback: Bool
    }

    /// The server's verdict once known (`pending/verdict.json`), so a kill between the verdict
    /// and the state commit does not ask again.
    struct Verdict: Codable, Equatable {
        var accepted: Bool
        var detail: String
    }

    func readJSON<T: Decodable>(_ path: String, as: T.Type) throws(UplinkClientError) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do { return try JSONDecoder.session.decode(T.self, from: data) } catch {
            throw .local(UplinkError(.malformedState, "\(path) is not valid: \(error)"))
        }
    }

    func writeJSON<T: Encodable>(_ value: T, to path: String) throws(UplinkClientError) {
        let data: Data
        do { data = try JSONEncoder.session.encode(value) } catch { throw .local(UplinkError(.io, "cannot encode \(path): \(error)")) }
        do { try DurableFile.replace(path, with: [UInt8](data)) } catch { throw .local(error) }
    }

    var lastReportedRound: UInt64? {
        struct R: Codable { var round: UInt64 }
        return (try? readJSON(root + "/reported.json", as: R.self))??.round
    }

    func setLastReported(_ round: UInt64) throws(UplinkClientError) {
        struct R: Codable { var round: UInt64 }
        try writeJSON(R(round: round), to: root + "/reported.json")
    }

    var pending: PendingRound? {
        get throws(UplinkClientError) { try readJSON(pendingPath + "/round.json", as: PendingRound.self) }
    }

    /// Writes `pending/` whole: the files go to a temporary directory, each fsynced, which is
    /// renamed into place and the state directory fsynced.
    func createPending(_ meta: PendingRound, frame: [UInt8], residual: [UInt8]?, carry: [UInt8]?) throws(UplinkClientError) {
        guard !FileManager.default.fileExists(atPath: pendingPath) else {
            throw .local(UplinkError(.io, "an update is already pending in \(pendingPath); upload or discard it first"))
        }
        let temp = root + "/.pending.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: false)
        } catch {
            throw .local(UplinkError(.io, "cannot create \(temp): \(error.localizedDescription)"))
        }
        do {
            try DurableFile.replace(temp + "/frame.upl", with: frame)
            if let residual { try DurableFile.replace(temp + "/residual.upls", with: residual) }
            if let carry { try DurableFile.replace(temp + "/carry.upls", with: carry) }
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw .local(error)
        }
        try writeJSON(meta, to: temp + "/round.json")
        do { try DurableFile.rename(temp, pendingPath) } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw .local(error)
        }
    }

    /// Ends the pending update: `committed` (the file in `pending/` to make the committed
    /// residual, or nil) replaces `residual.upls`, then `pending/` is removed.
    func resolvePending(committing committed: String?) throws(UplinkClientError) {
        if let committed {
            guard let data = FileManager.default.contents(atPath: pendingPath + "/" + committed) else {
                throw .local(UplinkError(.malformedState, "\(pendingPath)/\(committed) is missing"))
            }
            do { try DurableFile.replace(residualPath, with: [UInt8](data)) } catch { throw .local(error) }
        }
        // Renamed away first, so a kill mid-removal never leaves a partial `pending/`.
        let doomed = root + "/.pending.done.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do { try DurableFile.rename(pendingPath, doomed) } catch { throw .local(error) }
        try? FileManager.default.removeItem(atPath: doomed)
    }

    /// Removes the models of other rounds than `keep`.
    func pruneModels(keep round: UInt64) {
        let dir = root + "/models"
        let keepName = "model-\(round).upl"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where !name.hasPrefix(keepName) {
            unlink(dir + "/" + name)
        }
    }
}
