import Foundation
import UplinkCodec

extension Scenario {
    /// The largest scenario file read (a scenario is a few hundred bytes; this bounds what a
    /// mistaken path, such as a data file, can cost).
    public static let maximumFileBytes = 1 << 20

    /// Reads a scenario file strictly: an unknown or misspelt key, a value of the wrong type, a
    /// number out of its range or a reference to nothing is refused with an error (code 707)
    /// that names the file and the field by its path (`population[1].availability`). Relative
    /// paths in the file (`trace`, `replayUpdate`) are read from the file's folder. A profile
    /// in `profiles` named like a built-in one overrides only the fields it gives.
    public static func load(path: String) throws(UplinkError) -> Scenario {
        let bytes = try InputFile.read(path, what: "the scenario", limit: maximumFileBytes)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            return try read(bytes, folder: folder)
        } catch {
            throw UplinkError(error.code, "\(path): \(error.message)")
        }
    }

    /// A scenario from JSON text; relative paths are resolved against `folder` (the working
    /// directory if nil), then the scenario is validated. Errors name the field, not the file.
    static func read(_ bytes: [UInt8], folder: String?) throws(UplinkError) -> Scenario {
        try read(value: try JSONValue.parse(bytes), folder: folder)
    }

    /// A scenario from a parsed JSON document, as ``read(_:folder:)``.
    static func read(value: JSONValue, folder: String?) throws(UplinkError) -> Scenario {
        let root = ScenarioField(value: value, path: "")
        let m = try root.members(CodingKeys.self)
        var s = Scenario()
        if let f = m[.name] { s.name = try f.string() }
        if let f = m[.seed] { s.seed = try f.uint64() }
        if let f = m[.rounds] { s.rounds = try f.int() }
        if let f = m[.clients] { s.clients = try f.int() }
        if let f = m[.reportsPerRound] { s.reportsPerRound = try f.int() }
        if let f = m[.overSelection] { s.overSelection = try f.double() }
        if let f = m[.deadlineSeconds] { s.deadlineSeconds = try f.double() }
        if let f = m[.minimumReportFraction] { s.minimumReportFraction = try f.double() }
        if let f = m[.interruptions] {
            let text = try f.string()
            guard let mode = InterruptionMode(rawValue: text) else { throw f.error("must be \"resume\" or \"restart\", got \"\(JSONValue.quoted(text))\"") }
            s.interruptions = mode
        }
        if let f = m[.population] { s.population = try f.list().map { g throws(UplinkError) in try group(g, folder: folder) } }
        if let f = m[.profiles] { s.profiles = try f.list().map { p throws(UplinkError) in try profile(p) } }
        if let f = m[.pipelines] { s.pipelines = try f.list().map { p throws(UplinkError) in try p.string() } }
        if let f = m[.downlink] { s.downlink = try f.string() }
        if let f = m[.train] { s.train = try f.bool() }
        if let f = m[.replayUpdate] { s.replayUpdate = resolve(try f.string(), in: folder) }
        if let f = m[.updates] {
            s.updates = try f.list().map { u throws(UplinkError) in resolve(try u.string(), in: folder) }
            if m[.train] == nil, !s.updates.isEmpty { s.train = false }  // updates are replayed
        }
        if let f = m[.model] { s.model = try f.optional { f throws(UplinkError) in resolve(try f.string(), in: folder) } }
        if let f = m[.skipNonFloat] { s.skipNonFloat = try f.bool() }
        if let f = m[.samplesPerClient] { s.samplesPerClient = try f.int() }
        if let f = m[.traceOffsets] {
            let text = try f.string()
            guard let mode = TraceOffsets(rawValue: text) else { throw f.error("must be \"random\" or \"none\", got \"\(JSONValue.quoted(text))\"") }
            s.traceOffsets = mode
        }
        if let f = m[.partition] { s.partition = try f.string() }
        if let f = m[.localEpochs] { s.localEpochs = try f.int() }
        if let f = m[.batchSize] { s.batchSize = try f.int() }
        if let f = m[.learningRate] { s.learningRate = try f.float() }
        if let f = m[.momentum] { s.momentum = try f.float() }
        if let f = m[.weightDecay] { s.weightDecay = try f.float() }
        if let f = m[.width] { s.width = try f.int() }
        if let f = m[.budgetFitting] { s.budgetFitting = try f.bool() }
        if let f = m[.dpClip] { s.dpClip = try f.optional { f throws(UplinkError) in try f.double() } }
        if let f = m[.dpNoise] { s.dpNoise = try f.optional { f throws(UplinkError) in try f.double() } }
        if let f = m[.dpAdaptiveQuantile] { s.dpAdaptiveQuantile = try f.optional { f throws(UplinkError) in try f.double() } }
        if let f = m[.dpDelta] { s.dpDelta = try f.double() }
        if let f = m[.dpEpsilonBudget] { s.dpEpsilonBudget = try f.optional { f throws(UplinkError) in try f.double() } }
        if let f = m[.dpSeed] { s.dpSeed = try f.optional { f throws(UplinkError) in try f.uint64() } }
        try s.validate()
        // Files the run will read, checked here so the message names the field and the folder.
        for (i, g) in s.population.enumerated() {
            if let t = g.trace, let f = m[.population]?.item(i)?.member("trace") { try mustExist(t, f, folder) }
            if let t = g.downlinkTrace, let f = m[.population]?.item(i)?.member("downlinkTrace") { try mustExist(t, f, folder) }
        }
        if !s.train, s.updates.isEmpty, let f = m[.replayUpdate] { try mustExist(s.replayUpdate, f, folder) }
        for (i, u) in s.updates.enumerated() { if let f = m[.updates]?.item(i) { try mustExist(u, f, folder) } }
        if let model = s.model, let f = m[.model] { try mustExist(model, f, folder) }
        return s
    }

    private static func group(_ f: ScenarioField, folder: String?) throws(UplinkError) -> Group {
        let m = try f.members(Group.CodingKeys.self)
        guard let profile = m[.profile] else { throw f.error("a group needs a \"profile\"") }
        guard let share = m[.share] else { throw f.error("a group needs a \"share\"") }
        var g = Group(profile: try profile.string(), share: try share.double())
        if let v = m[.msPerSample] { g.msPerSample = try v.list().map { x throws(UplinkError) in try x.double() } }
        if let v = m[.availability] { g.availability = try v.double() }
        if let v = m[.dropout] { g.dropout = try v.double() }
        if let v = m[.trace] { g.trace = try v.optional { v throws(UplinkError) in resolve(try v.string(), in: folder) } }
        if let v = m[.downlinkTrace] { g.downlinkTrace = try v.optional { v throws(UplinkError) in resolve(try v.string(), in: folder) } }
        if let v = m[.name] { g.name = try v.optional { v throws(UplinkError) in try v.string() } }
        return g
    }

    private enum ProfileKeys: String, CodingKey, CaseIterable {
        case name, uplinkMbps, downlinkMbps, spread, rttMs, variability, outagesPerHour, meanOutageSeconds, loss
    }

    /// A profile entry: one named like a built-in profile starts from it, so `{"name": "3G",
    /// "uplinkMbps": 0.5}` changes only the 3G uplink; a new one needs its rates and RTT.
    private static func profile(_ f: ScenarioField) throws(UplinkError) -> LinkProfile {
        let m = try f.members(ProfileKeys.self)
        guard let nameField = m[.name] else { throw f.error("a profile needs a \"name\"") }
        let name = try nameField.string()
        var p: LinkProfile
        if var base = LinkProfile.named(name) {
            base.name = name
            p = base
        } else {
            let missing = [ProfileKeys.uplinkMbps, .downlinkMbps, .rttMs].filter { m[$0] == nil }.map(\.rawValue)
            guard missing.isEmpty else {
                let builtIn = LinkProfile.builtIn.map(\.name).joined(separator: ", ")
                throw f.error("\"\(JSONValue.quoted(name))\" is not a built-in profile (\(builtIn)), so it needs \(missing.joined(separator: ", "))")
            }
            p = LinkProfile(name: name, uplinkMbps: 0, downlinkMbps: 0, rttMs: 0)
        }
        if let v = m[.uplinkMbps] { p.uplinkMbps = try v.double() }
        if let v = m[.downlinkMbps] { p.downlinkMbps = try v.double() }
        if let v = m[.spread] { p.spread = try v.double() }
        if let v = m[.rttMs] { p.rttMs = try v.double() }
        if let v = m[.variability] { p.variability = try v.double() }
        if let v = m[.outagesPerHour] { p.outagesPerHour = try v.double() }
        if let v = m[.meanOutageSeconds] { p.meanOutageSeconds = try v.double() }
        if let v = m[.loss] { p.loss = try v.double() }
        return p
    }

    /// `path` as written if absolute, else under `folder`.
    static func resolve(_ path: String, in folder: String?) -> String {
        guard let folder, !path.hasPrefix("/"), !path.isEmpty else { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: folder, isDirectory: true)).standardizedFileURL.path
    }

    private static func mustExist(_ path: String, _ f: ScenarioField, _ folder: String?) throws(UplinkError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw f.error("no file \(path)\(folder.map { " (relative paths are read from the scenario's folder, \($0))" } ?? "")")
        }
    }

}

/// A value in a scenario file with its path (`population[1].share`), so that every error names
/// the field: the wrong type, a number that does not fit, an unknown key.
struct ScenarioField {
    let value: JSONValue
    let path: String

    func error(_ message: String) -> UplinkError { Scenario.invalid(path.isEmpty ? "scenario" : path, message) }

    private func typeError(_ expected: String) -> UplinkError {
        error("must be \(expected), got \(value.kind)\(Self.shown(value))")
    }

    private static func shown(_ v: JSONValue) -> String {
        switch v {
        case .number(let t): " \(JSONValue.quoted(t))"
        case .string(let s): " \"\(JSONValue.quoted(s))\""
        case .bool(let b): " (\(b))"
        default: ""
        }
    }

    /// The members of an object whose keys must all be among `Keys`; an unknown key is an
    /// error that suggests the nearest known one.
    func members<Keys: CodingKey & CaseIterable & RawRepresentable>(_: Keys.Type) throws(UplinkError) -> [Keys: ScenarioField] where Keys.RawValue == String {
        guard case .object(let pairs) = value else { throw typeError("an object") }
        var out: [Keys: ScenarioField] = [:]
        for (key, v) in pairs {
            let child = ScenarioField(value: v, path: path.isEmpty ? key : "\(path).\(key)")
            guard let k = Keys(rawValue: key) else {
                let known = Keys.allCases.map(\.rawValue)
                let hint = Self.nearest(key, among: known).map { " (did you mean \"\($0)\"?)" } ?? "; known keys: \(known.joined(separator: ", "))"
                throw ScenarioField(value: v, path: path.isEmpty ? JSONValue.quoted(key) : "\(path).\(JSONValue.quoted(key))").error("unknown key\(hint)")
            }
            out[k] = child
        }
        return out
    }

    /// The member `key` of an object, if present.
    func member(_ key: String) -> ScenarioField? {
        guard case .object(let pairs) = value, let v = pairs.first(where: { $0.key == key })?.value else { return nil }
        return ScenarioField(value: v, path: "\(path).\(key)")
    }

    /// Item `i` of a list, if present.
    func item(_ i: Int) -> ScenarioField? {
        guard case .array(let items) = value, items.indices.contains(i) else { return nil }
        return ScenarioField(value: items[i], path: "\(path)[\(i)]")
    }

    func list() throws(UplinkError) -> [ScenarioField] {
        guard case .array(let items) = value else { throw typeError("a list") }
        return items.enumerated().map { ScenarioField(value: $1, path: "\(path)[\($0)]") }
    }

    func string() throws(UplinkError) -> String {
        guard case .string(let s) = value else { throw typeError("a string") }
        return s
    }

    func bool() throws(UplinkError) -> Bool {
        guard case .bool(let b) = value else { throw typeError("true or false") }
        return b
    }

    /// A finite number (1e400 overflows to infinity and is refused).
    func double() throws(UplinkError) -> Double {
        guard case .number(let text) = value, let x = Double(text) else { throw typeError("a number") }
        guard x.isFinite else { throw error("\(JSONValue.quoted(text)) is too large for a number") }
        return x
    }

    /// A number finite as a Float.
    func float() throws(UplinkError) -> Float {
        let x = try double()
        guard abs(x) <= Double(Float.greatestFiniteMagnitude) else { throw error("\(x) is too large") }
        return Float(x)
    }

    /// A whole number that fits in 64 bits (`3`, `3.0` and `3e0` alike; `1e300` and `1.5` refused).
    func int() throws(UplinkError) -> Int {
        guard case .number(let text) = value else { throw typeError("a whole number") }
        if let n = Int(text) { return n }
        guard let x = Double(text), x == x.rounded() else { throw error("must be a whole number, got \(JSONValue.quoted(text))") }
        guard let n = Int(exactly: x) else { throw error("\(JSONValue.quoted(text)) is out of range for a whole number") }
        return n
    }

    /// A whole number in 0…2⁶⁴−1, read exactly from its digits.
    func uint64() throws(UplinkError) -> UInt64 {
        guard case .number(let text) = value else { throw typeError("a whole number") }
        if let n = UInt64(text) { return n }
        let n = try int()
        guard n >= 0 else { throw error("must be a whole number in 0…\(UInt64.max), got \(n)") }
        return UInt64(n)
    }

    /// `nil` for JSON `null` (the field is off), else `read(self)`.
    func optional<T>(_ read: (ScenarioField) throws(UplinkError) -> T) throws(UplinkError) -> T? {
        if case .null = value { return nil }
        return try read(self)
    }

    /// The known key closest to `key` in edit distance (case-insensitive), if it is close.
    static func nearest(_ key: String, among known: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for i in 1...max(1, a.count) where !a.isEmpty {
                var previous = row[0]
                row[0] = i
                for j in 1...max(1, b.count) where !b.isEmpty {
                    let kept = row[j]
                    row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                    previous = kept
                }
            }
            return row[b.count]
        }
        let k = Array(key.lowercased())
        guard k.count <= 64 else { return nil }
        let best = known.map { ($0, distance(k, Array($0.lowercased()))) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(1, k.count / 3) else { return nil }
        return best.0
    }
}
