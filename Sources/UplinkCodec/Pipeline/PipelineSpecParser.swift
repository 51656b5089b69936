/// One stage as written in a pipeline spec: a name and its parameters, before interpretation.
public struct StageText: Hashable, Sendable {
    /// The stage name, lowercased (`"topk"`, `"int8"`, `"lz4"`).
    public var name: String
    /// Parameters without a key, in order (`"1%"` in `topk 1%`).
    public var positional: [String]
    /// `key=value` parameters (`level=9`).
    public var named: [(key: String, value: String)]

    public static func == (a: StageText, b: StageText) -> Bool {
        a.name == b.name && a.positional == b.positional
            && a.named.map(\.key) == b.named.map(\.key) && a.named.map(\.value) == b.named.map(\.value)
    }

    public func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(positional)
        for (k, v) in named { h.combine(k); h.combine(v) }
    }
}

/// Splits pipeline spec text (`"ef | topk 1% | int8 block=256 | lz4"`) into stages.
///
/// Grammar: `pipeline = stage *( "|" stage )`, `stage = name *( SP param )`,
/// `param = value / key "=" value`; names and keys are letters, digits, `-` and `_`; values
/// are any run of non-space characters other than `|` and `=`. Case of names and keys is ignored.
public enum PipelineSpecParser {
    /// The stages of `text`, or a ``UplinkError/Code/pipelineSyntax`` error naming the position.
    public static func split(_ text: String) throws(UplinkError) -> [StageText] {
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        var stages: [StageText] = []
        for (i, part) in parts.enumerated() {
            let tokens = part.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            guard let first = tokens.first else {
                throw UplinkError(.pipelineSyntax, "pipeline \(UplinkError.quoted(text)): stage \(i + 1) is empty")
            }
            let name = first.lowercased()
            guard isIdentifier(name) else {
                throw UplinkError(.pipelineSyntax, "pipeline \(UplinkError.quoted(text)): \(UplinkError.quoted(first)) is not a stage name")
            }
            var stage = StageText(name: name, positional: [], named: [])
            for token in tokens.dropFirst() {
                let kv = token.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2 {
                    let key = kv[0].lowercased()
                    guard isIdentifier(key), !kv[1].isEmpty, !kv[1].contains("=") else {
                        throw UplinkError(.pipelineSyntax, "stage \(UplinkError.quoted(name)): \(UplinkError.quoted(token)) is not a key=value parameter")
                    }
                    guard !stage.named.contains(where: { $0.key == key }) else {
                        throw UplinkError(.pipelineSyntax, "stage \(UplinkError.quoted(name)): parameter \(UplinkError.quoted(key)) is given twice")
                    }
                    stage.named.append((key, String(kv[1])))
                } else {
                    stage.positional.append(String(token))
                }
            }
            stages.append(stage)
        }
        return stages
    }

    static func isIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
        }
    }
}

/// Reads a stage's parameters by name or position, with typed errors, and rejects leftovers.
public struct StageParameters {
    let stage: StageText
    private var usedNamed = Set<String>()
    private var usedPositional = 0
    private var usedFlags = Set<Int>()

    /// Wraps `stage` for reading.
    public init(_ stage: StageText) { self.stage = stage }

    /// The value given as `key=value`, or else the next positional one if `positional` is true.
    public mutating func take(_ key: String, positional: Bool = false) -> String? {
        if let v = stage.named.first(where: { $0.key == key })?.value {
            usedNamed.insert(key)
            return v
        }
        if positional {
            while usedPositional < stage.positional.count, usedFlags.contains(usedPositional) { usedPositional += 1 }
            if usedPositional < stage.positional.count {
                usedFlags.insert(usedPositional)
                return stage.positional[usedPositional]
            }
        }
        return nil
    }

    /// An integer parameter in `range`, or `defaultValue` when absent.
    public mutating func int(
        _ key: String, default defaultValue: Int, in range: ClosedRange<Int>, positional: Bool = false
    ) throws(UplinkError) -> Int {
        guard let text = take(key, positional: positional) else { return defaultValue }
        guard let v = Int(text), range.contains(v) else {
            throw UplinkError(
                .pipelineBadParameter,
                "stage \"\(stage.name)\": \(key)=\(UplinkError.quoted(text)) must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    /// An unsigned 64-bit parameter, or `defaultValue` when absent.
    public mutating func uint64(_ key: String, default defaultValue: UInt64) throws(UplinkError) -> UInt64 {
        guard let text = take(key) else { return defaultValue }
        guard let v = UInt64(text) else {
            throw UplinkError(.pipelineBadParameter, "stage \"\(stage.name)\": \(key)=\(UplinkError.quoted(text)) must be an integer in 0…2^64−1")
        }
        return v
    }

    /// A floating-point parameter in `range`, or `defaultValue` when absent.
    public mutating func double(
        _ key: String, default defaultValue: Double, in range: ClosedRange<Double>, positional: Bool = false
    ) throws(UplinkError) -> Double {
        guard let text = take(key, positional: positional) else { return defaultValue }
        guard let v = Double(text), range.contains(v) else {
            throw UplinkError(
                .pipelineBadParameter,
                "stage \"\(stage.name)\": \(key)=\(UplinkError.quoted(text)) must be a number in \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    /// Whether the bare word `flag` was given (for example `asym` in `int8 asym`).
    public mutating func flag(_ flag: String) -> Bool {
        guard let i = stage.positional.firstIndex(of: flag), !usedFlags.contains(i) else { return false }
        usedFlags.insert(i)
        return true
    }

    /// Throws unless every parameter given was read.
    public func finish() throws(UplinkError) {
        if let extra = stage.named.first(where: { !usedNamed.contains($0.key) }) {
            throw UplinkError(.pipelineBadParameter, "stage \"\(stage.name)\" has no parameter \(UplinkError.quoted(extra.key))")
        }
        if let i = stage.positional.indices.first(where: { !usedFlags.contains($0) }) {
            throw UplinkError(
                .pipelineBadParameter,
                "stage \"\(stage.name)\" does not take the value \(UplinkError.quoted(stage.positional[i]))")
        }
    }
}
