import Foundation
import UplinkCodec

/// `--set key=value` and `--sweep key=v1,v2,…`: changing scenario fields from the command line.
extension Scenario {
    /// One override: a field's path (`deadlineSeconds`, `population.0.share`,
    /// `population[0].share`) and its value as JSON (a bare word is a string).
    package struct Override: Sendable, Hashable {
        package var path: [PathSegment]
        package var key: String
        package var valueText: String

        package enum PathSegment: Sendable, Hashable {
            case member(String)
            case index(Int)
        }

        /// Parses `key=value` (the value may hold further `=`).
        package init(assignment: String, option: String = "--set") throws(UplinkError) {
            guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                throw UplinkError(.invalidArgument, "\(option) \"\(JSONValue.quoted(assignment))\": expected key=value, for example deadlineSeconds=30 or population.0.share=0.5")
            }
            try self.init(key: String(assignment[..<eq]), value: String(assignment[assignment.index(after: eq)...]), option: option)
        }

        package init(key: String, value: String, option: String = "--set") throws(UplinkError) {
            self.key = key
            self.valueText = value
            var segments: [PathSegment] = []
            // `population[0].share` and `population.0.share` alike.
            let normalized = key.replacingOccurrences(of: "[", with: ".").replacingOccurrences(of: "]", with: "")
            for part in normalized.split(separator: ".", omittingEmptySubsequences: false) {
                guard !part.isEmpty else { throw UplinkError(.invalidArgument, "\(option) \"\(JSONValue.quoted(key))\": an empty part in the key") }
                if part.allSatisfy({ $0.isASCII && $0.isNumber }) {
                    guard let i = Int(part), i < 1_000_000 else {
                        throw UplinkError(.invalidArgument, "\(option) \"\(JSONValue.quoted(key))\": index \(JSONValue.quoted(String(part))) is out of range")
                    }
                    guard i >= 0 else { throw UplinkError(.invalidArgument, "\(option) \"\(JSONValue.quoted(key))\": index \(i) is out of range") }
                    segments.append(.index(i))
                } else {
                    segments.append(.member(String(part)))
                }
            }
            guard case .member = segments.first else {
                throw UplinkError(.invalidArgument, "\(option) \"\(JSONValue.quoted(key))\": the key must start with a field name")
            }
            path = segments
        }

        /// The value: JSON when it parses as JSON (`30`, `true`, `[1, 2]`, `"x"`), else the text
        /// as a string (`restart`, `ef | topk 1% | int8 | lz4`).
        var value: JSONValue {
            (try? JSONValue.parse(Array(valueText.utf8))) ?? .string(valueText)
        }
    }

    /// The fields that hold file paths: a relative path given on the command line is read from
    /// the working directory (a relative path in a scenario file, from the file's folder).
    static let pathFields: Set<String> = ["replayUpdate", "updates", "model", "trace", "downlinkTrace"]

    /// The scenario file at `path` (or the default scenario) with `overrides` applied in order,
    /// then read and checked as strictly as a file: an unknown key, a wrong type or a value out
    /// of range is refused, naming the field.
    package static func load(path: String?, overrides: [Override]) throws(UplinkError) -> Scenario {
        guard !overrides.isEmpty else { return try path.map { (p) throws(UplinkError) in try load(path: p) } ?? Scenario() }
        var document: JSONValue
        var folder: String?
        if let path {
            let bytes = try InputFile.read(path, what: "the scenario", limit: maximumFileBytes)
            folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            do { document = try JSONValue.parse(bytes) } catch { throw UplinkError(error.code, "\(path): \(error.message)") }
        } else {
            document = try defaultDocument()
        }
        let cwd = FileManager.default.currentDirectoryPath
        let defaults = path == nil ? document : try defaultDocument()
        for o in overrides {
            // A field the file leaves out starts from its default (`population.0.share` in a
            // file without a population changes the default population's first group).
            if case .member(let top) = o.path[0], o.path.count > 1, case .object(var members) = document,
               !members.contains(where: { $0.key == top }), case .object(let d) = defaults, let v = d.first(where: { $0.key == top })?.value {
                members.append((top, v))
                document = .object(members)
            }
            var value = o.value
            if o.path.contains(where: { if case .member(let m) = $0 { Self.pathFields.contains(m) } else { false } }) {
                value = Self.absolutePaths(value, cwd: cwd)
            } else {
                value = Self.absolutePathsInside(value, cwd: cwd)
            }
            document = try Self.setting(document, o.path[...], to: value, key: o.key)
        }
        do {
            return try read(value: document, folder: folder)
        } catch {
            throw UplinkError(error.code, "\(path ?? "the default scenario") with --set: \(error.message)")
        }
    }

    /// The default scenario as a JSON document.
    static func defaultDocument() throws(UplinkError) -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(Scenario()) else { throw UplinkError(.invalidArgument, "cannot encode the default scenario") }
        // Without `train`: its default is true, but `--set updates=…` alone must mean replay.
        guard case .object(let members) = try JSONValue.parse([UInt8](data)) else { throw UplinkError(.invalidArgument, "cannot encode the default scenario") }
        // Nor `replayUpdate`, which `updates` may not be given with.
        return .object(members.filter { $0.key != "train" && $0.key != "replayUpdate" })
    }

    private static func absolutePaths(_ v: JSONValue, cwd: String) -> JSONValue {
        switch v {
        case .string(let s): .string(resolve(s, in: cwd))
        case .array(let items): .array(items.map { absolutePaths($0, cwd: cwd) })
        default: v
        }
    }

    /// `v` with every string under a path field (at any depth) made absolute against `cwd`:
    /// `population=[{"trace": "x.csv", …}]` as well as `population.0.trace=x.csv`.
    private static func absolutePathsInside(_ v: JSONValue, cwd: String) -> JSONValue {
        switch v {
        case .object(let members):
            .object(members.map { m in (m.key, pathFields.contains(m.key) ? absolutePaths(m.value, cwd: cwd) : absolutePathsInside(m.value, cwd: cwd)) })
        case .array(let items): .array(items.map { absolutePathsInside($0, cwd: cwd) })
        default: v
        }
    }

    /// `document` with the value at `path` replaced (or added: a new member, or an index one
    /// past a list's end).
    private static func setting(_ document: JSONValue, _ path: ArraySlice<Override.PathSegment>, to value: JSONValue, key: String) throws(UplinkError) -> JSONValue {
        guard let first = path.first else { return value }
        let rest = path.dropFirst()
        func fail(_ why: String) -> UplinkError { UplinkError(.invalidArgument, "--set \(JSONValue.quoted(key)): \(why)") }
        switch (first, document) {
        case (.member(let name), .object(var members)):
            if let i = members.firstIndex(where: { $0.key == name }) {
                members[i].value = try setting(members[i].value, rest, to: value, key: key)
            } else {
                members.append((name, try setting(fresh(for: rest), rest, to: value, key: key)))
            }
            return .object(members)
        case (.index(let i), .array(var items)):
            if i < items.count {
                items[i] = try setting(items[i], rest, to: value, key: key)
            } else if i == items.count {
                items.append(try setting(fresh(for: rest), rest, to: value, key: key))
            } else {
                throw fail("index \(i) is past the end of a list of \(items.count)")
            }
            return .array(items)
        case (.member(let name), _):
            throw fail("\"\(JSONValue.quoted(name))\" is a field of an object, but here the scenario has \(document.kind)")
        case (.index(let i), _):
            throw fail("[\(i)] indexes a list, but here the scenario has \(document.kind)")
        }
    }

    /// An empty container for a path that goes on with `rest`.
    private static func fresh(for rest: ArraySlice<Override.PathSegment>) -> JSONValue {
        if case .index = rest.first { return .array([]) }
        return .object([])
    }

    /// The values of `--sweep key=v1,v2,…`: split at commas outside brackets, braces and quotes,
    /// so `--sweep 'population.0.msPerSample=[5,20],[50,200]'` sweeps two lists.
    package static func sweepValues(_ text: String) -> [String] {
        var out: [String] = [], current = "", depth = 0, quoted = false, escaped = false
        for c in text {
            if quoted {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { quoted = false }
            } else if c == "\"" {
                quoted = true
            } else if c == "[" || c == "{" {
                depth += 1
            } else if c == "]" || c == "}" {
                depth = max(0, depth - 1)
            } else if c == ",", depth == 0 {
                out.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
                continue
            }
            current.append(c)
        }
        out.append(current.trimmingCharacters(in: .whitespaces))
        return out
    }
}
