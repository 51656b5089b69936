/// Assembles a frame from header fields and stream contents: splits each stream into sections
/// of at most ``chunkLength`` bytes, compresses each with the pipeline's codec (keeping it
/// stored when compression does not make it smaller), checksums, and lays out the bytes.
public struct FrameWriter: Sendable {
    /// Uncompressed bytes per section, at most ``FrameFormat/maxSectionRawLength``.
    public var chunkLength: Int

    /// A writer with sections of `chunkLength` bytes (1 MiB by default).
    public init(chunkLength: Int = FrameFormat.defaultChunkLength) {
        precondition(chunkLength >= 1 && chunkLength <= FrameFormat.maxSectionRawLength,
                     "chunkLength must be in 1…\(FrameFormat.maxSectionRawLength)")
        self.chunkLength = chunkLength
    }

    /// The frame bytes. `streams` must be in the order the pipeline defines.
    public func write(
        layout: ModelLayout, pipeline: Pipeline, round: UInt64, sampleCount: UInt64,
        includeTensorTable: Bool, streams: [(kind: StreamKind, bytes: [UInt8])]
    ) throws(UplinkError) -> [UInt8] {
        var entries: [(entry: SectionEntry, bytes: [UInt8]?)] = []
        for (kind, bytes) in streams {
            var start = 0
            while start < bytes.count {
                let end = min(start + chunkLength, bytes.count)
                let piece = try typed { try bytes.withUnsafeBytes { all -> (SectionEntry, [UInt8]?) in
                    let raw = UnsafeRawBufferPointer(rebasing: all[start..<end])
                    let compressed = try pipeline.codec.codec.compress(raw, level: pipeline.codec.level)
                    let codec: SectionCodec = compressed == nil ? .stored : pipeline.codec.codec
                    let stored = compressed.map { $0.withUnsafeBytes { CRC32C.checksum($0) } } ?? CRC32C.checksum(raw)
                    let entry = SectionEntry(
                        stream: kind, codec: codec, level: codec == .stored ? 0 : UInt8(pipeline.codec.level),
                        checksum: stored, rawLength: end - start,
                        storedLength: compressed?.count ?? (end - start), offset: 0)
                    return (entry, compressed)
                } }
                entries.append(piece)
                start = end
            }
        }

        let descriptor = pipeline.descriptor
        var table = ByteWriter()
        if includeTensorTable { ModelLayout.writeTable(layout.tensors, to: &table) }
        let headerLength = FrameFormat.fixedHeaderLength + descriptor.count + table.count
            + entries.count * FrameFormat.sectionEntryLength
        let payloadLength = entries.reduce(0) { $0 + $1.entry.storedLength }
        let total = FrameFormat.preambleLength + headerLength + FrameFormat.headerChecksumLength + payloadLength

        var w = ByteWriter(capacity: total)
        w.write(bytes: FrameFormat.magic)
        w.write(FrameFormat.version)
        w.write((includeTensorTable ? FrameFlags.hasTensorTable : []).rawValue)
        w.write(UInt32(headerLength))
        w.write(layout.fingerprint)
        w.write(round)
        w.write(sampleCount)
        w.write(UInt64(layout.parameterCount))
        w.write(UInt32(layout.tensors.count))
        w.write(UInt32(entries.count))
        w.write(UInt16(descriptor.count))
        w.write(bytes: descriptor)
        w.write(bytes: table.bytes)
        for (e, _) in entries {
            w.write(e.stream.rawValue)
            w.write(e.codec.rawValue)
            w.write(e.level)
            w.write(UInt8(0))
            w.write(e.checksum)
            w.write(UInt64(e.rawLength))
            w.write(UInt64(e.storedLength))
        }
        let headerCRC = w.bytes.withUnsafeBytes { CRC32C.checksum($0) }
        w.write(headerCRC)

        // Stored sections were not copied above; copy them from their streams now.
        var index = 0
        for (kind, bytes) in streams {
            var start = 0
            while start < bytes.count {
                let end = min(start + chunkLength, bytes.count)
                let (e, compressed) = entries[index]
                precondition(e.stream == kind)
                if let compressed { w.write(bytes: compressed) } else { w.write(bytes: bytes[start..<end]) }
                index += 1
                start = end
            }
        }
        precondition(w.count == total)
        return w.bytes
    }
}
