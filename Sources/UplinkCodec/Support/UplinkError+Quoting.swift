extension UplinkError {
    /// The most characters (Unicode scalars) of untrusted input one error message quotes.
    package static let maxQuotedLength = 200

    /// `text` (a tensor name, a dtype, a key, a piece of a header: anything that came from a
    /// file or a frame) as an error message quotes it: in double quotes, with `"`, `\`, control,
    /// format (bidirectional overrides) and line-separator characters escaped so the message
    /// stays one readable line, and cut after ``maxQuotedLength`` scalars with `…` and the full
    /// length in UTF-8 bytes. The cost is bounded by the limit, not by the input.
    /// A name from a file as a table or a note shows it: as it is, or ``quoted(_:)`` when it
    /// holds a character quoting escapes (control, format, line separators, `"`, `\`) or is long.
    package static func shown(_ text: String) -> String {
        let q = quoted(text)
        return q == "\"" + text + "\"" ? text : q
    }

    package static func quoted(_ text: some StringProtocol) -> String {
        var out = "\""
        var taken = 0
        for scalar in text.unicodeScalars {
            guard taken < maxQuotedLength else {
                return out + "…\" (\(text.utf8.count) bytes)"
            }
            taken += 1
            appendEscaped(scalar, to: &out)
        }
        return out + "\""
    }

    /// Raw bytes that should be UTF-8 but may not be, quoted like ``quoted(_:)``; each invalid
    /// sequence shows as U+FFFD.
    package static func quoted(bytes: some Collection<UInt8>) -> String {
        // Decode at most a little more than the limit needs (4 bytes per scalar).
        let head = bytes.prefix(4 * (maxQuotedLength + 1))
        let text = String(decoding: head, as: UTF8.self)
        var out = "\""
        var taken = 0
        for scalar in text.unicodeScalars {
            guard taken < maxQuotedLength else { return out + "…\" (\(bytes.count) bytes)" }
            taken += 1
            appendEscaped(scalar, to: &out)
        }
        return out + (head.count < bytes.count ? "…\" (\(bytes.count) bytes)" : "\"")
    }

    /// A list of values (a shape) for a message: `[2, 3, 4]`, or its first entries, `…` and the
    /// count when it runs past ``maxQuotedLength`` characters. Only the printed prefix is
    /// formatted, so a list of 25 million entries costs what 200 characters cost.
    package static func excerpt<S: Collection>(list: S) -> String {
        var out = "["
        for (i, v) in list.enumerated() {
            let item = (i == 0 ? "" : ", ") + String(describing: v)
            guard out.utf8.count + item.utf8.count <= maxQuotedLength else {
                return out + (i == 0 ? "" : ", ") + "…] (\(list.count) entries)"
            }
            out += item
        }
        return out + "]"
    }

    private static func appendEscaped(_ s: Unicode.Scalar, to out: inout String) {
        switch s {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            switch s.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse:
                out += "\\u{" + String(s.value, radix: 16) + "}"
            default:
                out.unicodeScalars.append(s)
            }
        }
    }
}
