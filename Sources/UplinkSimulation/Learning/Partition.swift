import UplinkCodec

/// How training examples are split among clients.
public enum Partition: Hashable, Sendable, CustomStringConvertible {
    /// Shuffled, equal shares.
    case iid
    /// Label skew (Hsu et al. 2019): for each class, shares ~ Dirichlet(α) over the clients.
    /// Small α gives each client few classes.
    case dirichlet(Double)
    /// Quantity skew: client sizes ∝ Dirichlet(β) draws, labels IID.
    case quantity(Double)
    /// Pathological label skew (McMahan et al. 2017): the examples sorted by label, cut into
    /// `clients × s` equal shards, `s` shards dealt at random to each client (s = 2: most
    /// clients see two classes).
    case shards(Int)

    public var description: String {
        switch self {
        case .iid: "iid"
        case .dirichlet(let a): "dirichlet:\(a)"
        case .quantity(let b): "quantity:\(b)"
        case .shards(let s): "shards:\(s)"
        }
    }

    /// Parses `iid`, `dirichlet:0.5`, `quantity:1.0`, `shards:2`.
    public init(parsing text: String) throws(UplinkError) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first {
        case "iid" where parts.count == 1: self = .iid
        case "dirichlet" where parts.count == 2:
            guard let a = Double(parts[1]), a > 0, a.isFinite else { throw UplinkError(.invalidArgument, "dirichlet:α needs α > 0, got \"\(text)\"") }
            self = .dirichlet(a)
        case "quantity" where parts.count == 2:
            guard let b = Double(parts[1]), b > 0, b.isFinite else { throw UplinkError(.invalidArgument, "quantity:β needs β > 0, got \"\(text)\"") }
            self = .quantity(b)
        case "shards" where parts.count == 2:
            guard let n = Int(parts[1]), (1...1000).contains(n) else { throw UplinkError(.invalidArgument, "partition shards:s needs a whole number s of shards per client, 1…1000; got \"\(text)\"") }
            self = .shards(n)
        default:
            throw UplinkError(.invalidArgument, "partition \"\(text)\" must be iid, dirichlet:α, quantity:β or shards:s")
        }
    }

    /// The example indices of each of `clients` clients: every example goes to exactly one
    /// client, and every client gets at least one (taken from the largest when a draw leaves one
    /// empty). Deterministic for `seed`.
    ///
    /// - Precondition: `1 ≤ clients ≤ labels.count`, and for `shards:s`,
    ///   `clients × s ≤ labels.count` (``check(examples:clients:)`` says so first).
    public func split(labels: [Int], classes: Int, clients: Int, seed: UInt64) -> [[Int]] {
        precondition(clients >= 1 && clients <= labels.count)
        var rng = SplitMix64(seed: seed ^ 0x5052_5449_5449_4F4E)
        var shares = [[Int]](repeating: [], count: clients)
        switch self {
        case .iid:
            let order = Array(labels.indices).shuffled(using: &rng)
            for (j, i) in order.enumerated() { shares[j % clients].append(i) }
        case .dirichlet(let alpha):
            for c in 0..<classes {
                let members = labels.indices.filter { labels[$0] == c }.shuffled(using: &rng)
                let p = Random.dirichlet(alpha: alpha, count: clients, using: &rng)
                Self.cut(members, proportions: p, into: &shares)
            }
        case .quantity(let beta):
            let order = Array(labels.indices).shuffled(using: &rng)
            Self.cut(order, proportions: Random.dirichlet(alpha: beta, count: clients, using: &rng), into: &shares)
        case .shards(let perClient):
            let count = clients * perClient
            precondition(count <= labels.count)
            // Shuffled, then stably sorted by label: ties in a seeded order, not file order.
            let byLabel = Array(labels.indices).shuffled(using: &rng).enumerated()
                .sorted { (labels[$0.element], $0.offset) < (labels[$1.element], $1.offset) }.map(\.element)
            let order = Array(0..<count).shuffled(using: &rng)
            for (slot, shard) in order.enumerated() {
                let range = (shard * labels.count / count)..<((shard + 1) * labels.count / count)
                shares[slot / perClient].append(contentsOf: byLabel[range])
            }
        }
        // No empty client: move one example from the largest share.
        for c in 0..<clients where shares[c].isEmpty {
            let donor = shares.indices.max { shares[$0].count < shares[$1].count }!
            shares[c].append(shares[donor].removeLast())
        }
        return shares.map { $0.sorted() }
    }

    /// Checks that `examples` can be split among `clients` this way.
    /// - Throws: ``UplinkError/Code/invalidArgument`` naming the limit.
    public func check(examples: Int, clients: Int) throws(UplinkError) {
        guard clients >= 1, clients <= examples else {
            throw UplinkError(.invalidArgument, "\(clients) clients cannot share \(examples) training examples (each needs one)")
        }
        if case .shards(let s) = self, clients * s > examples {
            throw UplinkError(.invalidArgument, "shards:\(s) for \(clients) clients needs \(clients * s) shards, more than the \(examples) examples")
        }
    }

    /// Hands out `items` in order by cumulative proportions.
    static func cut(_ items: [Int], proportions p: [Double], into shares: inout [[Int]]) {
        var start = 0
        var cumulative = 0.0
        for (c, pc) in p.enumerated() {
            cumulative += pc
            let end = c == p.count - 1 ? items.count : min(items.count, Int((cumulative * Double(items.count)).rounded()))
            if end > start { shares[c].append(contentsOf: items[start..<end]) }
            start = max(start, end)
        }
    }
}

/// Seeded random variates for the partitioners.
enum Random {
    /// Standard normal by Box–Muller.
    static func normal(using rng: inout SplitMix64) -> Double {
        let u1 = Double(rng.next() >> 11 | 1) * 0x1p-53
        let u2 = Double(rng.next() >> 11) * 0x1p-53
        return (-2 * u1.log()).squareRoot() * LibM.cos(2 * .pi * u2)
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang (2000), with the α < 1 boost.
    static func gamma(shape: Double, using rng: inout SplitMix64) -> Double {
        if shape < 1 {
            let u = Double(rng.next() >> 11 | 1) * 0x1p-53
            return gamma(shape: shape + 1, using: &rng) * LibM.exp(u.log() / shape)
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = normal(using: &rng)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = Double(rng.next() >> 11 | 1) * 0x1p-53
            if u.log() < 0.5 * x * x + d - d * v + d * v.log() { return d * v }
        }
    }

    /// A Dirichlet(α, …, α) draw of `count` proportions.
    static func dirichlet(alpha: Double, count: Int, using rng: inout SplitMix64) -> [Double] {
        let g = (0..<count).map { _ in gamma(shape: alpha, using: &rng) }
        let s = g.reduce(0, +)
        return s > 0 ? g.map { $0 / s } : [Double](repeating: 1 / Double(count), count: count)
    }
}
