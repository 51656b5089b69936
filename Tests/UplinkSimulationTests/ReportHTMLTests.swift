import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import UplinkSimulation

/// The HTML report's structure, read back with an XML parser (the page is well-formed XHTML):
/// real tables with every column, plotted points for a one-round run, sane axes, 64-bit counts.
@Suite struct ReportHTMLTests {
    static func round(_ n: Int, bytes: Int = 2_000_000, accuracy: Double? = 0.5, wall: Double = 10, epsilon: Double? = nil) -> SimulatedRound {
        SimulatedRound(round: n, selected: 13, reported: 10, droppedDeadline: 2, droppedInterruption: 0, droppedDropout: 1, surplus: 0,
                       bytesUp: bytes, bytesDown: 4_500_000, uploadTimes: [0.5, 1.5, 2.5], duration: 12, wallClock: wall, accuracy: accuracy,
                       acceptedBytes: bytes / 2, budgetFitted: 0, selectedByProfile: ["3G": 5, "LTE": 8], reportedByProfile: ["3G": 3, "LTE": 7],
                       inTimeByProfile: ["3G": 4, "LTE": 8], epsilon: epsilon)
    }

    static let long = "ef | topk 1% scope=global | int8 block=256 sym | lz4 [budget fitting]"

    static func parse(_ html: String) throws -> XMLDocument { try XMLDocument(xmlString: html, options: [.nodePreserveWhitespace]) }

    static func texts(_ doc: XMLDocument, _ xpath: String) throws -> [String] { try doc.nodes(forXPath: xpath).map { $0.stringValue ?? "" } }

    /// Both tables are `<table>`s whose header has every column and whose rows have a cell for
    /// each, holding exactly what the terminal table prints (accuracy and wall clock included).
    @Test(arguments: [false, true])
    func tablesAreRealTablesWithEveryColumn(dp: Bool) throws {
        let runs = [PipelineRun(pipeline: "fp32 | stored", rounds: (1...3).map { Self.round($0, wall: Double($0) * 10, epsilon: dp ? Double($0) : nil) }),
                    PipelineRun(pipeline: Self.long, rounds: (1...3).map { Self.round($0, bytes: 20_000, accuracy: 0.4, epsilon: dp ? Double($0) : nil) })]
        let report = SimulationReport(scenario: "tables & <escapes>", runs: runs)
        let doc = try Self.parse(report.html())
        for (id, rows) in [("summary", report.summaryRows()), ("participation", report.participationRows())] {
            #expect(try doc.nodes(forXPath: "//table[@id='\(id)']").count == 1)
            #expect(try Self.texts(doc, "//table[@id='\(id)']/thead/tr/th") == rows[0])
            let body = try doc.nodes(forXPath: "//table[@id='\(id)']/tbody/tr")
            #expect(body.count == rows.count - 1)
            for (tr, row) in zip(body, rows.dropFirst()) {
                #expect(try tr.nodes(forXPath: "td").map { $0.stringValue ?? "" } == row)
            }
        }
        let header = report.summaryRows()[0]
        #expect(header.count == (dp ? 15 : 13) && header.contains("accuracy") && header.contains("wall clock"))
        #expect(try Self.texts(doc, "//table[@id='summary']/tbody/tr[1]/td[12]") == ["50.00%"])
        #expect(try Self.texts(doc, "//table[@id='summary']/tbody/tr[1]/td[13]") == ["30 s"])
        #expect(try Self.texts(doc, "//h1") == ["Uplink simulation: tables & <escapes>"])
        // Pipeline names wrap only between stages: each stage is one unbreakable span.
        #expect(try Self.texts(doc, "//table[@id='summary']/tbody/tr[2]/td[1]/span") == ["ef", "topk 1% scope=global", "int8 block=256 sym", "lz4 [budget fitting]"])
    }

    /// One round: every line plot marks each pipeline's point (the old report drew a one-point
    /// polyline, which shows nothing), and every point lies inside its plot.
    @Test func oneRoundReportPlotsItsPoints() throws {
        let runs = [PipelineRun(pipeline: "fp32 | stored", rounds: [Self.round(1, accuracy: 0.16)]),
                    PipelineRun(pipeline: "fp16 | lz4", rounds: [Self.round(1, bytes: 900_000, accuracy: 0.13)])]
        let doc = try Self.parse(SimulationReport(scenario: "one", runs: runs).html())
        for id in ["bytes-per-round", "accuracy-bytes", "accuracy-time"] {
            let circles = try doc.nodes(forXPath: "//figure[@id='\(id)']//*[local-name()='circle']").compactMap { $0 as? XMLElement }
            #expect(circles.count == 2, "\(id)")
            let frame = try #require(try doc.nodes(forXPath: "//figure[@id='\(id)']//*[local-name()='rect']").first as? XMLElement)
            func number(_ e: XMLElement, _ name: String) -> Double { Double((try? e.nodes(forXPath: "@" + name))?.first?.stringValue ?? "") ?? .nan }
            let (x, y, w, h) = (number(frame, "x"), number(frame, "y"), number(frame, "width"), number(frame, "height"))
            for c in circles {
                let (cx, cy) = (number(c, "cx"), number(c, "cy"))
                #expect(cx > x && cx < x + w && cy > y && cy < y + h, "\(id): point (\(cx), \(cy)) outside the plot")
            }
            #expect(try Self.texts(doc, "//figure[@id='\(id)']/*[local-name()='ul']/*[local-name()='li']") == ["fp32 | stored", "fp16 | lz4"])
        }
        #expect(try doc.nodes(forXPath: "//figure[@id='upload-times']//*[local-name()='line'][@class='median']").count == 2)
        // The x axis of rounds has whole-number ticks around round 1.
        #expect(try Self.texts(doc, "//figure[@id='bytes-per-round']//*[local-name()='text'][@class='tick'][@text-anchor='middle']") == ["0", "1", "2"])
    }

    /// A single accuracy value gets a padded axis inside [0, 1], not −87%…113%.
    @Test func singleAccuracyAxisIsPaddedInsideTheUnitInterval() throws {
        let doc = try Self.parse(SimulationReport(scenario: "one", runs: [PipelineRun(pipeline: "fp32 | stored", rounds: [Self.round(1, accuracy: 0.13)])]).html())
        #expect(try Self.texts(doc, "//figure[@id='accuracy-time']//*[local-name()='text'][@class='tick'][@text-anchor='end']")
                == ["11.5%", "12%", "12.5%", "13%", "13.5%", "14%", "14.5%"])
    }

    /// Byte counts past 2³² render as what they are, in the table and on the axis.
    @Test func byteCountsPast4GiBRenderCorrectly() throws {
        let run = PipelineRun(pipeline: "fp32 | stored", rounds: [Self.round(1, bytes: 5_000_000_000), Self.round(2, bytes: 6_000_000_000)])
        let report = SimulationReport(scenario: "big", runs: [run])
        let doc = try Self.parse(report.html())
        #expect(try Self.texts(doc, "//table[@id='summary']/tbody/tr[1]/td[3]") == ["5.50 GB"])  // up/round
        #expect(try Self.texts(doc, "//table[@id='summary']/tbody/tr[1]/td[2]") == ["275.00 MB"])  // frame: (2.5 + 3) GB accepted / 20 reports
        #expect(try Self.texts(doc, "//figure[@id='bytes-per-round']//*[local-name()='text'][@class='tick'][@text-anchor='end']") == ["5 GB", "10 GB"])
        #expect(try Self.texts(doc, "//figure[@id='accuracy-bytes']//*[local-name()='text'][@class='tick'][@text-anchor='middle']") == ["5 GB", "10 GB", "20 GB"])
    }

    /// The terminal table and CSV print the same counts past 2³² in full (issue 11 §21).
    @Test func textTableAndCSVPrintCountsPast4GiB() throws {
        var big = Self.round(1, bytes: 5_000_000_000)
        big.selectedByProfile = ["LTE": 5_000_000_000]
        big.reportedByProfile = ["LTE": 4_294_967_297]
        big.inTimeByProfile = ["LTE": 4_294_967_298]
        let report = SimulationReport(scenario: "big", runs: [PipelineRun(pipeline: "fp32 | stored", rounds: [big])])
        #expect(report.table().contains("5.00 GB"))
        #expect(report.participationTable().contains("4294967297 / 4294967298 / 5000000000"))
        #expect(report.csv().contains(",5000000000,"))
    }
}
