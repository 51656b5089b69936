// libFuzzer target for the tensor file readers, `Npy.read` and `Safetensors.read`.
//
// Built by `scripts/fuzz tensorfile` into one module together with Sources/UplinkCodec/**/*.swift
// and Sources/UplinkTensorIO/*.swift (their `import UplinkCodec` lines stripped), so it uses both
// without imports. Every input goes to both readers; the seeds steer each toward its format.
//
// Properties checked (a violation traps, which libFuzzer reports as a crash):
// - nothing crashes, hangs or allocates without bound on any input;
// - what a reader accepts is consistent (value count = element count) and round-trips bit for
//   bit through the matching writer.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    exerciseNpy(bytes)
    exerciseSafetensors(bytes)
    return 0
}

func sameBits(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

func exerciseNpy(_ bytes: [UInt8]) {
    guard let (shape, values) = try? Npy.read(bytes) else { return }
    let count: Int
    do {
        count = try ModelLayout.elementCount(shape, name: "array")
    } catch {
        preconditionFailure("Npy.read accepted shape \(shape), whose element count fails: \(error)")
    }
    precondition(values.count == count, "Npy.read returned \(values.count) values for shape \(shape)")
    guard let (shape2, values2) = try? Npy.read(Npy.write(shape: shape, values: values)) else {
        preconditionFailure("Npy.write output for shape \(shape) does not read back")
    }
    precondition(shape2 == shape && sameBits(values2, values), ".npy round trip changed the array")
}

func exerciseSafetensors(_ bytes: [UInt8]) {
    guard let set = try? Safetensors.read(bytes) else { return }
    precondition(set.values.count == set.layout.parameterCount)
    for i in set.layout.tensors.indices { _ = set.values(ofTensor: i) }
    guard let again = try? Safetensors.read(Safetensors.write(set)) else {
        preconditionFailure("Safetensors.write output for \(set.layout.tensors) does not read back")
    }
    precondition(again.layout == set.layout, ".safetensors round trip changed the layout")
    precondition(sameBits(again.values, set.values), ".safetensors round trip changed the values")
}
