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
        guard codec != .stored, raw.count > 1 else { return nil }
        return try uninitializedBytes(capacity: raw.count - 1) { (out) throws(UplinkError) in
            try compressSection(raw, codec: codec, level: level, into: out)
        }
    }

    /// ``compressSection(_:codec:level:)`` written into `destination` (`raw.count − 1` bytes or
    /// more are needed for the same decision): the compressed length, or `nil` to store.
    package static func compressSection(
        _ raw: UnsafeRawBufferPointer, codec: SectionCodec, level: Int, into destination: UnsafeMutableRawBufferPointer
    ) throws(UplinkError) -> Int? {
        guard codec != .stored, raw.count > 1, destination.count > 0 else { return nil }
        let limit = UnsafeMutableRawBufferPointer(rebasing: destination[0..<min(destination.count, raw.count - 1)])
        if raw.count >= sampledSectionLength {
            let piece = samplePieceLength
            let stored = try withUnsafeTemporaryAllocation(byteCount: piece - 1, alignment: 16) { (scratch) throws(UplinkError) -> Int in
                var stored = 0
                for p in 0..<4 {
                    let start = p * (raw.count - piece) / 3
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + piece)])
                    stored += try codec.compress(bytes, level: level, into: scratch) ?? piece
                }
                return stored
            }
            if stored * 100 > 4 * piece * 99 { return nil }
        }
        return try codec.compress(raw, level: level, into: limit)
    }

    /// The frame bytes. `streams` must be in the order the pipeline defines.
    ///
    /// The header's length is known before anything is compressed (its section entries have a
    /// fixed size), so each section is compressed straight into its place in the one frame
    /// buffer, or copied there when it stays stored, and the header is written in front last.
    public func write(
        layout: ModelLayout, pipeline: Pipeline, round: UInt64, sampleCount: UInt64,
        includeTensorTable: Bool, streams: [(kind: StreamKind, bytes: [UInt8])]
    ) throws(UplinkError) -> [UInt8] {
        var plan: [(stream: Int, range: Range<Int>)] = []
        for (s, (_, bytes)) in streams.enumerated() {
            var start = 0
            while start < bytes.count {
                let end = min(start + chunkLength, bytes.count)
                plan.append((s, start..<end))
                start = end
            }
        }
        let descriptor = pipeline.descriptor
        var table = ByteWriter()
        if includeTensorTable { ModelLayout.writeTable(layout.tensors, to: &table) }
        let headerLength = FrameFormat.fixedHeaderLength + descriptor.count + table.count
            + plan.count * FrameFormat.sectionEntryLength
        let payloadStart = FrameFormat.preambleLength + headerLength + FrameFormat.headerChecksumLength
        let capacity = payloadStart + plan.reduce(0) { $0 + $1.range.count }
        let codec = pipeline.codec.codec, level = pipeline.codec.level

        var failure: UplinkError?
        let frame = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            count = 0
            let out = UnsafeMutableRawBufferPointer(buffer)
            var entries: [SectionEntry] = []
            entries.reserveCapacity(plan.count)
            var at = payloadStart
            for (s, range) in plan {
                let (kind, bytes) = streams[s]
                let entry: SectionEntry? = bytes.withUnsafeBytes { all in
                    let raw = UnsafeRawBufferPointer(rebasing: all[range])
                    let place = UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + raw.count)])
                    let compressed: Int?
                    do throws(UplinkError) {
                        compressed = try Self.compressSection(raw, codec: codec, level: level, into: place)
                    } catch {
                        failure = error
                        return nil
                    }
                    if compressed == nil { place.copyMemory(from: raw) }
                    let storedLength = compressed ?? raw.count
                    let sectionCodec: SectionCodec = compressed == nil ? .stored : codec
                    return SectionEntry(
                        stream: kind, codec: sectionCodec, level: sectionCodec == .stored ? 0 : UInt8(level),
                        checksum: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: place[0..<storedLength])),
                        rawLength: raw.count, storedLength: storedLength, offset: 0)
                }
                guard let entry else { return }
                entries.append(entry)
                at += entry.storedLength
            }

            var w = ByteWriter(capacity: payloadStart)
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
            for e in entries {
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
            precondition(w.count == payloadStart)
            w.bytes.withUnsafeBytes { out.copyMemory(from: $0) }
            count = at
        }
        if let failure { throw failure }
        // The buffer was sized for every section stored; a frame that compressed to less than
        // half of that is copied into one of its own size rather than hold the rest.
        if frame.count < capacity / 2 {
            return [UInt8](unsafeUninitializedCapacity: frame.count) { out, count in
                frame.withUnsafeBytes { UnsafeMutableRawBufferPointer(out).copyMemory(from: $0) }
                count = frame.count
            }
        }
        return frame
    }
}
