/// Caller-given ceilings for reading frames. Every length in a frame is checked against these
/// (and against the format's own rules) before anything is allocated, so a hostile frame can
/// cost at most these amounts of memory.
public struct FrameLimits: Hashable, Sendable {
    /// The largest frame accepted, in bytes.
    public var maxFrameBytes: Int
    /// The largest header (tensor table and section table included), in bytes.
    public var maxHeaderBytes: Int
    /// The most tensors a frame's layout may have.
    public var maxTensors: Int
    /// The most parameters a frame's layout may have.
    public var maxParameters: Int
    /// The most sections a frame may have.
    public var maxSections: Int

    /// Limits with the given values; the defaults suit models up to 2^31 parameters (8 GiB of float32).
    public init(
        maxFrameBytes: Int = 1 << 34,
        maxHeaderBytes: Int = 16 << 20,
        maxTensors: Int = 1 << 20,
        maxParameters: Int = 1 << 31,
        maxSections: Int = 1 << 20
    ) {
        self.maxFrameBytes = maxFrameBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxTensors = maxTensors
        self.maxParameters = maxParameters
        self.maxSections = maxSections
    }

    /// The default limits.
    public static let `default` = FrameLimits()

    /// Limits sized for one known model: parameters and tensors as the layout has; a header of
    /// 16 MiB plus the model's tensor table, and a frame at most twice the dense float32 size
    /// plus 1 MiB plus the tensor table (so a frame that carries the table of a model of many
    /// small tensors fits: 2^20 scalars have an 8 MiB table and 4 MiB of values).
    public static func forModel(_ layout: ModelLayout) -> FrameLimits {
        let table = layout.tensorTableLength
        return FrameLimits(
            maxFrameBytes: 2 * 4 * layout.parameterCount + (1 << 20) + table,
            maxHeaderBytes: (16 << 20) + table,
            maxTensors: layout.tensors.count,
            maxParameters: layout.parameterCount,
            maxSections: 1 << 20)
    }
}
