/// Parses and validates a frame's preamble, header and section table without touching the
/// payload: magic, version, flags, every length against the format's rules and the caller's
/// ``FrameLimits``, the header checksum, the pipeline descriptor, the tensor table and its
/// fingerprint, and the section table against the streams the pipeline produces.
///
/// Nothing is allocated in proportion to a declared length before that length has been checked
/// against the bytes actually present and the limits.
public enum FrameReader {
    /// Reads the header of `frame`, which must be the whole frame.
    public static func readHeader(
        _ frame: UnsafeRawBufferPointer, limits: FrameLimits = .default
    ) throws(UplinkError) -> FrameHeader {
        let magic = FrameFormat.magic
        for i in 0..<min(magic.count, frame.count) where frame[i] != magic[i] {
            throw UplinkError(.badMagic, "not an Uplink frame: the first bytes are not \"UPLK\"")
        }
        guard frame.count <= limits.maxFrameBytes else {
            throw UplinkError(.frameTooLarge, "frame of \(frame.count) bytes exceeds the limit of \(limits.maxFrameBytes)")
        }
        var r = ByteReader(frame, what: "frame")
        try r.require(FrameFormat.preambleLength, for: "preamble")
        _ = try r.bytes(4, "magic")
        let version = try r.read(UInt16.self, "version")
        guard FrameFormat.readableVersions.contains(version) else {
            throw UplinkError(.unsupportedVersion, "frame format version \(version) is not supported (this reader decodes \(FrameFormat.readableVersions))")
        }
        let flags = FrameFlags(rawValue: try r.read(UInt16.self, "flags"))
        guard FrameFlags.known.isSuperset(of: flags) else {
            throw UplinkError(.unknownFlags, "unknown flag bits 0x\(String(flags.subtracting(.known).rawValue, radix: 16)) are set")
        }
        let headerLength = Int(try r.read(UInt32.self, "header length"))
        guard headerLength <= limits.maxHeaderBytes else {
            throw UplinkError(.headerTooLarge, "header of \(headerLength) bytes exceeds the limit of \(limits.maxHeaderBytes)")
        }
        guard headerLength >= FrameFormat.fixedHeaderLength else {
            throw UplinkError(.malformedHeader, "header length \(headerLength) is below the minimum \(FrameFormat.fixedHeaderLength)")
        }
        try r.require(headerLength + FrameFormat.headerChecksumLength, for: "header and header checksum")
        let checkedEnd = FrameFormat.preambleLength + headerLength
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[0..<checkedEnd]))
        let declared = UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: checkedEnd, as: UInt32.self))
        guard computed == declared else {
            throw UplinkError(.headerChecksum, "header checksum mismatch (stored 0x\(String(declared, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }

        // Everything below lies inside the H bytes the (checksummed) preamble declared: a field
        // that runs past H is a malformed header [105], not a truncated frame [103].
        var h = ByteReader(
            UnsafeRawBufferPointer(rebasing: frame[FrameFormat.preambleLength..<checkedEnd]), what: "header",
            overrun: .malformedHeader)
        let fingerprint = try h.read(UInt64.self, "fingerprint")
        let round = try h.read(UInt64.self, "round")
        let sampleCount = try h.read(UInt64.self, "sample count")
        let parameterCount64 = try h.read(UInt64.self, "parameter count")
        let tensorCount = Int(try h.read(UInt32.self, "tensor count"))
        let sectionCount = Int(try h.read(UInt32.self, "section count"))
        let descriptorLength = Int(try h.read(UInt16.self, "pipeline descriptor length"))

        guard parameterCount64 >= 1, parameterCount64 <= UInt64(ModelLayout.maxParameters) else {
            throw UplinkError(.malformedHeader, "parameter count \(parameterCount64) is outside 1…2^48")
        }
        let parameterCount = Int(parameterCount64)
        guard parameterCount <= limits.maxParameters else {
            throw UplinkError(.tooManyParameters, "frame declares \(parameterCount) parameters, above the limit of \(limits.maxParameters)")
        }
        guard tensorCount >= 1 else { throw UplinkError(.malformedHeader, "frame declares no tensors") }
        guard tensorCount <= limits.maxTensors else {
            throw UplinkError(.tooManyTensors, "frame declares \(tensorCount) tensors, above the limit of \(limits.maxTensors)")
        }
        guard sectionCount <= limits.maxSections else {
            throw UplinkError(.tooManySections, "frame declares \(sectionCount) sections, above the limit of \(limits.maxSections)")
        }
        let pipeline = try Pipeline(descriptor: try h.bytes(descriptorLength, "pipeline descriptor"))

        var tensors: [TensorSpec]?
        if flags.contains(.hasTensorTable) {
            let tableStart = h.offset
            let table = try ModelLayout.readTable(count: tensorCount, from: &h, limits: limits)
            let tableBytes = UnsafeRawBufferPointer(
                rebasing: frame[(FrameFormat.preambleLength + tableStart)..<(FrameFormat.preambleLength + h.offset)])
            guard ModelLayout.fingerprint(tensorCount: tensorCount, table: Array(tableBytes)) == fingerprint else {
                throw UplinkError(.fingerprintInconsistent, "the header's fingerprint does not match its own tensor table")
            }
            let total = table.reduce(0) { $0 + ((try? ModelLayout.elementCount($1.shape, name: $1.name)) ?? 0) }
            guard total == parameterCount else {
                throw UplinkError(.malformedHeader, "tensor table holds \(total) parameters, the header says \(parameterCount)")
            }
            tensors = table
        }

        // The section table must exactly fill the rest of the header.
        guard h.remaining == sectionCount * FrameFormat.sectionEntryLength else {
            throw UplinkError(
                .malformedHeader,
                "header has \(h.remaining) bytes left for \(sectionCount) section entries of \(FrameFormat.sectionEntryLength) bytes")
        }
        let plan = pipeline.streamPlan(parameterCount: parameterCount)
        var sections: [SectionEntry] = []
        sections.reserveCapacity(sectionCount)
        var offset = checkedEnd + FrameFormat.headerChecksumLength
        // Streams appear in plan order, each one's sections contiguous; a stream may be absent
        // only when its length may be 0.
        var streamIndex = -1
        var streamRaw = 0
        func closeStream() throws(UplinkError) {
            guard streamIndex >= 0 else { return }
            let s = plan[streamIndex]
            guard s.lengths.contains(streamRaw) else {
                throw UplinkError(.malformedStream, "stream \(s.kind) has \(streamRaw) bytes, pipeline \"\(pipeline)\" needs \(s.lengths.lowerBound == s.lengths.upperBound ? String(s.lengths.lowerBound) : "\(s.lengths.lowerBound)…\(s.lengths.upperBound)")")
            }
        }
        for i in 0..<sectionCount {
            let kindByte = try h.read(UInt8.self, "section \(i) stream")
            let codecByte = try h.read(UInt8.self, "section \(i) codec")
            let level = try h.read(UInt8.self, "section \(i) level")
            let reserved = try h.read(UInt8.self, "section \(i) reserved")
            let checksum = try h.read(UInt32.self, "section \(i) checksum")
            let raw = try h.read(UInt64.self, "section \(i) raw length")
            let stored = try h.read(UInt64.self, "section \(i) stored length")
            guard reserved == 0 else { throw UplinkError(.reservedNotZero, "section \(i) reserved byte is \(reserved)") }
            guard let codec = SectionCodec(rawValue: codecByte) else {
                throw UplinkError(.unknownCodec, "section \(i) has unknown codec id \(codecByte)")
            }
            guard raw >= 1, raw <= UInt64(FrameFormat.maxSectionRawLength) else {
                throw UplinkError(.sectionTooLarge, "section \(i) raw length \(raw) is outside 1…\(FrameFormat.maxSectionRawLength)")
            }
            switch codec {
            case .stored:
                guard stored == raw else {
                    throw UplinkError(.malformedHeader, "stored section \(i) has stored length \(stored) ≠ raw length \(raw)")
                }
            case .lz4, .zlib:
                guard stored >= 1, stored < raw else {
                    throw UplinkError(.malformedHeader, "\(codec) section \(i) stored length \(stored) is not in 1…\(raw - 1)")
                }
                // No LZ4 block expands more than 255:1 and no zlib stream more than 1032:1, so a
                // larger declared ratio is a lie, rejected before it can cost memory.
                let maxRatio: UInt64 = codec == .lz4 ? 256 : 1032
                guard raw <= stored * maxRatio else {
                    throw UplinkError(.malformedHeader, "\(codec) section \(i) declares \(raw) bytes from \(stored), beyond the codec's \(maxRatio):1 limit")
                }
            }
            if streamIndex < 0 || plan[streamIndex].kind.rawValue != kindByte {
                try closeStream()
                var next = streamIndex + 1
                while next < plan.count, plan[next].kind.rawValue != kindByte {
                    guard plan[next].lengths.lowerBound == 0 else {
                        throw UplinkError(.unexpectedStream, "section \(i) is of stream kind \(kindByte) where pipeline \"\(pipeline)\" needs stream \(plan[next].kind)")
                    }
                    next += 1
                }
                guard next < plan.count else {
                    throw UplinkError(.unexpectedStream, "section \(i) has stream kind \(kindByte), which pipeline \"\(pipeline)\" does not write here")
                }
                streamIndex = next
                streamRaw = 0
            }
            streamRaw += Int(raw)
            guard streamRaw <= plan[streamIndex].lengths.upperBound else {
                throw UplinkError(
                    .sectionTooLarge,
                    "stream \(plan[streamIndex].kind) exceeds its \(plan[streamIndex].lengths.upperBound) bytes at section \(i)")
            }
            guard Int(stored) <= frame.count - offset else {
                throw UplinkError(.truncated, "frame is truncated: section \(i) needs \(stored) bytes at offset \(offset), only \(frame.count - offset) remain")
            }
            sections.append(SectionEntry(
                stream: StreamKind(rawValue: kindByte)!, codec: codec, level: level, checksum: checksum,
                rawLength: Int(raw), storedLength: Int(stored), offset: offset))
            offset += Int(stored)
        }
        try closeStream()
        for s in plan[(streamIndex + 1)...] where s.lengths.lowerBound > 0 {
            throw UplinkError(.malformedStream, "stream \(s.kind) is missing; pipeline \"\(pipeline)\" needs \(s.lengths.lowerBound) bytes or more")
        }
        guard offset == frame.count else {
            throw UplinkError(.trailingBytes, "\(frame.count - offset) bytes follow the last section")
        }
        return FrameHeader(
            version: version, flags: flags, fingerprint: fingerprint, round: round, sampleCount: sampleCount,
            parameterCount: parameterCount, tensorCount: tensorCount, pipeline: pipeline, tensors: tensors,
            sections: sections, headerLength: headerLength, frameLength: frame.count)
    }
}

extension FrameReader {
    /// Checks every section's CRC-32C against its stored bytes.
    public static func verifySectionChecksums(_ frame: UnsafeRawBufferPointer, _ header: FrameHeader) throws(UplinkError) {
        for (i, s) in header.sections.enumerated() {
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[s.offset..<(s.offset + s.storedLength)]))
            guard crc == s.checksum else {
                throw UplinkError(
                    .sectionChecksum,
                    "section \(i) (\(s.stream)) checksum mismatch (stored 0x\(String(s.checksum, radix: 16)), computed 0x\(String(crc, radix: 16)))")
            }
        }
    }
}
