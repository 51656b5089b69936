import Foundation
import UplinkAggregation

extension Scenario {
    /// Every field as a JSON object (JSONSerialization's types): the scenario's own `Encodable`
    /// encoding, so a field added to ``Scenario`` appears without a change here, with the
    /// fields that are off (`nil`) as `null`, so the object lists every field and reads back as a
    /// scenario file. Nil only if the encoding throws, which a validated scenario never does.
    var parameters: [String: Any]? {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(self), var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        for key in CodingKeys.allCases where object[key.rawValue] == nil { object[key.rawValue] = NSNull() }
        if var groups = object[CodingKeys.population.rawValue] as? [[String: Any]] {
            for i in groups.indices {
                for key in Group.CodingKeys.allCases where groups[i][key.rawValue] == nil { groups[i][key.rawValue] = NSNull() }
            }
            object[CodingKeys.population.rawValue] = groups
        }
        return object
    }
}

extension SimulationReport {
    /// File names (not their folders), the first three and a count of the rest.
    static func fileList(_ paths: [String]) -> String {
        let names = paths.prefix(3).map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")
        return paths.count > 3 ? "\(names) and \(paths.count - 3) more" : names
    }

    /// The scenario's main parameters as (name, value) rows, as the HTML report shows them.
    static func parameterRows(_ s: Scenario) -> [(String, String)] {
        let number = { (x: Double) in String(format: "%g", x) }
        let goal = (try? RoundRules(targetReports: s.reportsPerRound, overSelection: s.overSelection, deadline: s.deadlineSeconds))?.selectionGoal
        let updates = s.train
            ? "trained: partition \(s.partition), \(s.localEpochs) local epoch\(s.localEpochs == 1 ? "" : "s"), batch \(s.batchSize), learning rate \(number(Double(s.learningRate))), momentum \(number(Double(s.momentum)))\(s.weightDecay == 0 ? "" : ", weight decay \(number(Double(s.weightDecay)))"), MLP width \(s.width)"
            : "replayed: " + Self.fileList(s.replayFiles) + (s.model.map { ", model \(($0 as NSString).lastPathComponent)" } ?? "")
                + ", \(s.samplesPerClient) sample\(s.samplesPerClient == 1 ? "" : "s") per client" + (s.skipNonFloat ? ", non-float tensors skipped" : "")
        var dp = "off"
        if let clip = s.dpClip, let z = s.dpNoise {
            dp = "clip \(number(clip)), noise multiplier \(number(z)), δ \(number(s.dpDelta))"
            if let q = s.dpAdaptiveQuantile { dp += ", adaptive quantile \(number(q))" }
            if let b = s.dpEpsilonBudget { dp += ", ε budget \(number(b))" }
        }
        return [
            ("clients", "\(s.clients)"),
            ("reports per round (K)", "\(s.reportsPerRound)"),
            ("over-selection", "\(number(s.overSelection))×" + (goal.map { " (\($0) selected per round)" } ?? "")),
            ("deadline", seconds(s.deadlineSeconds)),
            ("rounds", "\(s.rounds)"),
            ("interruptions", s.interruptions.rawValue),
            ("downlink", s.downlink),
            ("updates", updates),
            ("budget fitting", s.budgetFitting ? "on" : "off"),
            ("central DP", dp),
            ("seed", "\(s.seed)"),
        ]
    }

    /// The population as rows, header first: network, share of the clients (normalized),
    /// availability, dropout, compute speed and trace.
    static func populationRows(_ s: Scenario) -> [[String]] {
        let total = s.population.reduce(0) { $0 + $1.share }
        let number = { (x: Double) in String(format: "%g", x) }
        return [["network", "share", "availability", "dropout", "ms per sample", "trace"]] + s.population.map { g in
            [g.profile, AxisUnit.number(100 * g.share / total, gap: 0.1) + "%", number(g.availability), number(g.dropout),
             g.msPerSample.map(number).joined(separator: "–"), g.trace ?? "—"]
        }
    }

    /// The scenario section of the HTML page: the main parameters, the population, and every
    /// field as JSON (`scenario_parameters` of results.json) in a closed `<details>`.
    static func parametersHTML(_ s: Scenario, id: String) -> String {
        var html = "<table id=\"\(id)\" class=\"parameters\"><thead><tr><th>parameter</th><th class=\"text\">value</th></tr></thead><tbody>"
        for (name, value) in parameterRows(s) {
            html += "<tr><td>\(name.htmlEscaped)</td><td class=\"text\">\(value.htmlEscaped)</td></tr>"
        }
        html += "</tbody></table>"
        let population = populationRows(s)
        let header = population[0]
        html += "<table id=\"\(id)-population\" class=\"parameters\"><thead><tr>" + header.enumerated().map { i, name in
            i == header.count - 1 ? "<th class=\"text\">\(name.htmlEscaped)</th>" : "<th>\(name.htmlEscaped)</th>"
        }.joined() + "</tr></thead><tbody>"
        for row in population.dropFirst() {
            html += "<tr>" + row.enumerated().map { i, cell in
                i == row.count - 1 ? "<td class=\"text\">\(cell.htmlEscaped)</td>" : "<td>\(cell.htmlEscaped)</td>"
            }.joined() + "</tr>"
        }
        html += "</tbody></table>"
        if let parameters = s.parameters {
            let json = String(decoding: serialize(parameters), as: UTF8.self)
            html += "<details><summary>Every parameter (<code>scenario_parameters</code> in results.json)</summary><pre id=\"\(id)-json\">\(json.htmlEscaped)</pre></details>"
        }
        return html
    }
}
