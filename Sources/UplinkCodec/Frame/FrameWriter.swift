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

    /// Sections at least this long are sampled before they are compressed.
    static let sampledSectionLength = 1 << 18
    /// Bytes in each of the four sample pieces.
    static let samplePieceLength = 1 << 14

    /// One section's stored bytes under `codec`, or `nil` to store it raw: when compression
    /// would not make it smaller, or, for a section of at least 256 KiB, when a sample of it
    /// does not shrink by 1%. The sample is four 16 KiB pieces at offsets `p·(length − 16384)/3`
    /// (p = 0…3), each compressed alone with the same codec and level; the section is stored
    /// when their compressed sizes (a piece's own size if it did not shrink) add up to more
    /// than 99% of 65,536. Float mantissas and sign bits do not compress, and learning that
    /// from 64 KiB instead of the whole section is what keeps `fp16 | lz4`'s cost near its
    /// floor. Deterministic, and normative for encoders that must match Uplink's bytes
    /// (docs/wire-format.md §5.3); decoders need not know it.
    package static func compressSection(_ raw: UnsafeRawBufferPointer, codec: SectionCodec, level: Int) throws(UplinkError) -> [UInt8]? {
        guard codec != .stored, raw.count > 0 else { return nil }
        if raw.count >= sampledSectionLength {
            let piece = samplePieceLength
            var stored = 0
            for p in 0..<4 {
                let start = p * (raw.count - piece) / 3
                let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + piece)])
                stored += try codec.compress(bytes, level: level)?.count ?? piece
            }
            if stored * 100 > 4 * piece * 99 { return nil }
        }
        return try codec.compress(raw, level: level)
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
                    let compressed = try Self.compressSection(raw, codec: pipeline.codec.codec, level: pipeline.codec.level)
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
