import Testing
@testable import UplinkTensorIO

/// The report's counts are printed whole past 2^32.
@Suite struct TensorFileReportTests {
    @Test func countsPast32Bits() {
        let big = TensorFileReport.Conversion(name: "w", dtype: "F64", count: 5_000_000_123, maxAbsoluteError: 1e-9, relativeError: 2e-8)
        let half = TensorFileReport.Conversion(name: "h", dtype: "F16", count: 4_294_967_297, maxAbsoluteError: 0, relativeError: 0)
        let lines = TensorFileReport(converted: [big, half]).lines
        #expect(lines == ["converted 1 F16 tensor (4294967297 values) to float32 exactly",
                          "converted 1 F64 tensor (5000000123 values) to float32: largest error 1e-09, worst relative L2 error 2e-08 (w)"])
    }
}
