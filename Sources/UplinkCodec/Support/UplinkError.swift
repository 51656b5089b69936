/// An error from Uplink: a stable numeric ``Code`` and a one-line message naming the problem.
///
/// Codes never change meaning and are never renumbered; they are grouped by hundreds into
/// categories (format, checksum, layout, limit, codec, pipeline, input, state), as zstd groups
/// its error codes. New codes may be added in any release, so a `switch` over codes needs a
/// `default`. Match on ``code`` (or ``category``), not on the message text.
public struct UplinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The stable numeric code.
    public let code: Code
    /// A human-readable, one-line explanation with the offending values.
    public let message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The category the code belongs to.
    public var category: Category { code.category }

    /// `"error 301 (layout): …"`, suitable as a single line on standard error.
    public var description: String {
        "error \(code.rawValue) (\(category)): \(message)"
    }
}

extension UplinkError {
    /// The family an error code belongs to: its hundreds digit.
    public enum Category: String, Sendable, CustomStringConvertible {
        /// The bytes are not a well-formed frame (magic, version, structure).
        case format
        /// A checksum did not match: the bytes were corrupted in transit or at rest.
        case checksum
        /// The frame or file does not fit the model layout it is used with.
        case layout
        /// A declared size exceeds a format rule or a caller-given limit.
        case limit
        /// A compression library failed, or its output had the wrong size.
        case codec
        /// A pipeline spec could not be parsed or is not a valid combination.
        case pipeline
        /// An input file or value (`.npy`, `.safetensors`, NaN or Inf) is not acceptable.
        case input
        /// A saved client or server state could not be used.
        case state
        /// The server refused an update for the round (duplicate, wrong round, norm bound).
        case aggregation
        /// A code outside the known ranges.
        case unknown

        public var description: String { rawValue }
    }

    /// A stable numeric error code. The hundreds digit is the ``Category``.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The category, from the hundreds digit.
        public var category: Category {
            switch rawValue / 100 {
            case 1: .format
            case 2: .checksum
            case 3: .layout
            case 4: .limit
            case 5: .codec
            case 6: .pipeline
            case 7: .input
            case 8: .state
            case 9: .aggregation
            default: .unknown
            }
        }

        public var description: String { String(rawValue) }

        // MARK: 1xx format
        /// The first four bytes are not `UPLK`.
        public static let badMagic = Code(rawValue: 100)
        /// The format version is not one this reader decodes.
        public static let unsupportedVersion = Code(rawValue: 101)
        /// A flag bit that this version does not define is set.
        public static let unknownFlags = Code(rawValue: 102)
        /// The input ends before the structure it declares.
        public static let truncated = Code(rawValue: 103)
        /// Bytes follow the last section.
        public static let trailingBytes = Code(rawValue: 104)
        /// A header field is out of its allowed range or inconsistent with another.
        public static let malformedHeader = Code(rawValue: 105)
        /// The pipeline descriptor names a stage id this reader does not know.
        public static let unknownStage = Code(rawValue: 106)
        /// A section names a codec id this reader does not know.
        public static let unknownCodec = Code(rawValue: 107)
        /// A section names a stream kind that the pipeline does not produce.
        public static let unexpectedStream = Code(rawValue: 108)
        /// A reserved field is not zero.
        public static let reservedNotZero = Code(rawValue: 109)
        /// The model fingerprint in the header does not match the tensor table in the same header.
        public static let fingerprintInconsistent = Code(rawValue: 110)
        /// A stream's content is malformed (for example an index stream that decodes past its end).
        public static let malformedStream = Code(rawValue: 111)

        // MARK: 2xx checksum
        /// The header checksum does not match.
        public static let headerChecksum = Code(rawValue: 200)
        /// A section checksum does not match.
        public static let sectionChecksum = Code(rawValue: 201)

        // MARK: 3xx layout
        /// The frame was made for a model with another fingerprint.
        public static let fingerprintMismatch = Code(rawValue: 300)
        /// The parameter or tensor count differs from the layout's.
        public static let parameterCountMismatch = Code(rawValue: 301)
        /// The frame carries no tensor table and no layout was given.
        public static let layoutRequired = Code(rawValue: 302)
        /// A layout is not valid (duplicate or empty names, bad shapes, no tensors).
        public static let invalidLayout = Code(rawValue: 303)
        /// An update's values do not match the layout's parameter count.
        public static let shapeMismatch = Code(rawValue: 304)

        // MARK: 4xx limit
        /// The frame is larger than the caller's maximum.
        public static let frameTooLarge = Code(rawValue: 400)
        /// The header is larger than the caller's maximum.
        public static let headerTooLarge = Code(rawValue: 401)
        /// More tensors than the caller's maximum.
        public static let tooManyTensors = Code(rawValue: 402)
        /// More parameters than the caller's maximum.
        public static let tooManyParameters = Code(rawValue: 403)
        /// A section is larger than the format allows or than its stream needs.
        public static let sectionTooLarge = Code(rawValue: 404)
        /// More sections than the format or the caller allows.
        public static let tooManySections = Code(rawValue: 405)
        /// A shape's element count overflows.
        public static let shapeOverflow = Code(rawValue: 406)
        /// A name, rank or descriptor is longer than the format allows.
        public static let fieldTooLong = Code(rawValue: 407)
        /// Holding one more update would exceed the round's memory limit (median, trimmed mean).
        public static let memoryLimit = Code(rawValue: 408)

        // MARK: 5xx codec
        /// LZ4 could not decompress a section.
        public static let lz4Failed = Code(rawValue: 500)
        /// zlib could not decompress a section.
        public static let zlibFailed = Code(rawValue: 501)
        /// A section decompressed to a length other than the declared one.
        public static let lengthMismatch = Code(rawValue: 502)
        /// A compressor failed (out of memory or an internal error).
        public static let compressionFailed = Code(rawValue: 503)

        // MARK: 6xx pipeline
        /// The pipeline spec text does not parse.
        public static let pipelineSyntax = Code(rawValue: 600)
        /// The spec names a stage that does not exist.
        public static let pipelineUnknownStage = Code(rawValue: 601)
        /// A stage parameter is unknown, missing or out of range.
        public static let pipelineBadParameter = Code(rawValue: 602)
        /// Stages are in an order or combination that cannot work.
        public static let pipelineBadOrder = Code(rawValue: 603)

        // MARK: 7xx input
        /// A `.npy` file is malformed.
        public static let malformedNpy = Code(rawValue: 700)
        /// A tensor's dtype is not one Uplink reads.
        public static let unsupportedDtype = Code(rawValue: 701)
        /// A `.npy` array is in Fortran order.
        public static let fortranOrder = Code(rawValue: 702)
        /// A `.safetensors` file is malformed.
        public static let malformedSafetensors = Code(rawValue: 703)
        /// A value is NaN or infinite.
        public static let nonFiniteValue = Code(rawValue: 704)
        /// A value does not fit the target number format (for example above 65504 for fp16).
        public static let valueOutOfRange = Code(rawValue: 705)
        /// A file could not be read or written.
        public static let io = Code(rawValue: 706)
        /// An argument is out of its allowed range.
        public static let invalidArgument = Code(rawValue: 707)

        // MARK: 8xx state
        /// A saved state blob is malformed or of an unknown version.
        public static let malformedState = Code(rawValue: 800)
        /// A saved state was made for another model or pipeline.
        public static let stateMismatch = Code(rawValue: 801)

        // MARK: 9xx aggregation
        /// The client already has an accepted update in this round.
        public static let duplicateClient = Code(rawValue: 900)
        /// The frame belongs to another round.
        public static let wrongRound = Code(rawValue: 901)
        /// The update's L2 norm exceeds the configured bound and the policy is to reject.
        public static let normExceeded = Code(rawValue: 902)
        /// The frame declares zero training samples, so it would carry no weight.
        public static let zeroWeight = Code(rawValue: 903)
        /// The round closed with no accepted update.
        public static let emptyRound = Code(rawValue: 904)
        /// The round is already closed.
        public static let roundClosed = Code(rawValue: 905)
        /// The frame declares more training samples than one client may weigh (`RoundPolicy.maxSamples`).
        public static let tooManySamples = Code(rawValue: 906)
        /// The same frame bytes were already accepted in this round (under another client id).
        public static let duplicateFrame = Code(rawValue: 907)
        /// The round's result (model, server-optimizer state) would not be finite; nothing was written.
        public static let nonFiniteResult = Code(rawValue: 908)
        /// The frame's pipeline is not one the round allows (the coordinator's `--pipeline` list).
        public static let pipelineNotAllowed = Code(rawValue: 909)
        /// The client was not selected for the round (it did not check in, or the round was full).
        public static let notSelected = Code(rawValue: 910)
    }
}

/// Runs `body`, which throws only ``UplinkError`` but through an API whose throws is untyped
/// (`Array.withUnsafeBytes`), and restores the typed error.
@inlinable
public func typed<R>(_ body: () throws -> R) throws(UplinkError) -> R {
    do {
        return try body()
    } catch let error as UplinkError {
        throw error
    } catch {
        throw UplinkError(.io, "unexpected error: \(error)")
    }
}
