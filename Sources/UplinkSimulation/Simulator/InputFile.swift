import Foundation
import UplinkCodec

/// Reading a small input file (a scenario, a trace) with its size checked before it is read.
enum InputFile {
    /// The bytes of `path`, refusing a missing file, a folder and a file over `limit` bytes with
    /// one plain line each.
    static func read(_ path: String, what: String, limit: Int) throws(UplinkError) -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UplinkError(.io, "\(path): cannot read \(what): no such file")
        }
        guard !isDirectory.boolValue else { throw UplinkError(.io, "\(path): cannot read \(what): it is a folder") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw UplinkError(.io, "\(path): cannot open \(what)") }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: limit + 1) ?? Data()
        } catch {
            throw UplinkError(.io, "\(path): cannot read \(what)")
        }
        guard data.count <= limit else { throw UplinkError(.invalidArgument, "\(path): \(what) is larger than its limit of \(limit) bytes") }
        return [UInt8](data)
    }
}
