import Dispatch
#if arch(x86_64)
internal import CUplinkCRC
#endif

/// Selection of the entries with the largest magnitudes, in O(n) time and O(k) extra memory.
///
/// Magnitudes are compared as the integer `bitPattern & 0x7FFF_FFFF`, which orders non-negative
/// floats exactly (inputs are checked finite before selection). Ties at the k-th magnitude go to
/// the lower index, so the result is deterministic. The fast path estimates the threshold from a
/// strided sample, collects the entries above it in one pass, and selects exactly k among those
/// candidates; when the estimate misses (too few or too many candidates), a two-level radix
/// histogram finds the exact k-th magnitude in two more passes with constant extra memory.
enum TopKSelection {
    @inline(__always)
    static func key(_ x: Float) -> UInt32 { x.bitPattern & 0x7FFF_FFFF }

    /// Appends to `out`, in increasing order, `base +` the indices of the `k` largest
    /// magnitudes of `x` (exact top-k).
    static func exact(_ x: UnsafeBufferPointer<Float>, k: Int, base: Int, into out: inout [Int]) {
        let n = x.count
        guard k > 0 else { return }
        if k >= n {
            out.append(contentsOf: base..<(base + n))
            return
        }
        // 1. Threshold from a strided sample, aiming 30% above k so one pass usually suffices.
        let s = min(n, 1 << 16)
        var sample = [UInt32](unsafeUninitializedCapacity: s) { buf, count in
            for j in 0..<s { buf[j] = key(x[Int((UInt64(j) &* UInt64(n)) / UInt64(s))]) }
            count = s
        }
        let rank = min(s - 1, Int(Double(k) / Double(n) * Double(s) * 1.3) + 8)
        let t = nthLargest(&sample, rank)
        // 2. Candidates at or above the threshold, giving up if there are far too many.
        let cap = 2 * k + 4096
        var candidates: [Int] = []
        candidates.reserveCapacity(min(n, Int(Double(k) * 1.4) + 64))
        var overflow = false
        for i in 0..<n where key(x[i]) >= t {
            if candidates.count == cap { overflow = true; break }
            candidates.append(i)
        }
        if !overflow, candidates.count >= k {
            pick(x, candidates, k: k, base: base, into: &out)
            return
        }
        radix(x, k: k, base: base, into: &out)
    }

    /// Error feedback's `acc += update` and exact top-k of the result in one pass over memory:
    /// the threshold comes from a strided sample of `acc + update`, and each group of 16 values is
    /// added (vectorized) and tested against it together; only a group with a candidate is looked
    /// at one value at a time, and its candidates are kept with their values, so choosing the k
    /// among them reads nothing from the model-sized array again.
    ///
    /// Returns the indices, in increasing order, of the k largest magnitudes of the new `acc`,
    /// their values, and the largest magnitude bits of the new `acc`.
    static func accumulateAndSelect(
        _ update: UnsafeBufferPointer<Float>, into acc: UnsafeMutableBufferPointer<Float>, k: Int, threads: Int = 1
    ) -> (indices: [Int], values: [Float], max: UInt32) {
        let n = acc.count
        guard k > 0, k < n else {
            var accMax: UInt32 = 0
            for i in 0..<n {
                acc[i] += update[i]
                accMax = max(accMax, acc[i].bitPattern & 0x7FFF_FFFF)
            }
            return k >= n ? (Array(0..<n), Array(acc), accMax) : ([], [], accMax)
        }
        // The sample: 512 runs of 32 consecutive values spread evenly over the update (2 cache
        // lines of each array per run: a value-by-value stride cost a cache miss per sample).
        // Only the speed depends on it: a threshold that misses falls back to the exact radix.
        let run = 32
        let s = n <= 1 << 14 ? n : 1 << 14
        var sample = [UInt32](unsafeUninitializedCapacity: s) { buf, count in
            if s == n {
                for i in 0..<n { buf[i] = key(acc[i] + update[i]) }
            } else {
                let blocks = s / run
                for b in 0..<blocks {
                    let start = Int(UInt64(b) &* UInt64(n - run) / UInt64(blocks - 1))
                    for j in 0..<run { buf[b * run + j] = key(acc[start + j] + update[start + j]) }
                }
            }
            count = s
        }
        let rank = min(s - 1, Int(Double(k) / Double(n) * Double(s) * 1.3) + 16)
        let t = nthLargest(&sample, rank)
        let cap = 2 * k + 4096
        // Each worker adds and scans its own contiguous range; ranges are concatenated in order,
        // so the candidates stay sorted whatever the thread count.
        let workers = max(1, min(threads, n / (1 << 16)))
        var parts = [Candidates](repeating: Candidates(), count: workers)
        parts.withUnsafeMutableBufferPointer { parts in
            let box = UnsafeSendable(parts)
            let shared = UnsafeSendable((update, acc))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let (update, acc) = shared.value
                let lo = n * w / workers, hi = n * (w + 1) / workers
                box.value[w] = addAndScan(update.baseAddress!, acc.baseAddress!, lo..<hi, threshold: t, cap: cap)
            }
        }
        var accMax: UInt32 = 0
        var total = 0
        var overflow = false
        for part in parts {
            accMax = max(accMax, part.max)
            overflow = overflow || part.overflow
            total += part.indices.count
        }
        overflow = overflow || total > cap
        let view = UnsafeBufferPointer(acc)
        if !overflow, total >= k {
            let indices = parts.count == 1 ? parts[0].indices : parts.flatMap(\.indices)
            let bits = parts.count == 1 ? parts[0].bits : parts.flatMap(\.bits)
            return pick(indices: indices, bits: bits, k: k, max: accMax)
        }
        // The sampled threshold missed: the exact k-th magnitude in two more passes, and the
        // largest magnitude in a third (a worker that overflowed stopped tracking it).
        var out: [Int] = []
        radix(view, k: k, base: 0, into: &out)
        return (out, out.map { acc[$0] }, FrameEncoder.maxMagnitudeBits(view.baseAddress, count: n))
    }

    /// One worker's candidates of ``accumulateAndSelect(_:into:k:threads:)``: positions, in
    /// increasing order, with the bit patterns of their new values.
    struct Candidates {
        var indices: [Int] = []
        var bits: [UInt32] = []
        var max: UInt32 = 0
        /// More than `cap` candidates: the threshold was far too low (the caller falls back to radix).
        var overflow = false
    }

    /// `acc[i] += update[i]` over `range`, returning every new value whose magnitude key is at
    /// least `t` (unless more than `cap` are: then `overflow`) and the largest key (when no key
    /// reaches t, t itself: an upper bound; after an overflow, not meaningful).
    ///
    /// The buffers are reserved for `cap + 16` candidates up front (pages are touched only as
    /// they fill), so a group's candidates are written without branches: every value of the
    /// group is stored and the count advances by one for each that qualifies.
    static func addAndScan(
        _ update: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Float>, _ range: Range<Int>, threshold t: UInt32, cap: Int
    ) -> Candidates {
        #if arch(x86_64)
        if nativeScan { return addAndScanAVX2(update, acc, range, threshold: t, cap: cap) }
        #endif
        return addAndScanPortable(update, acc, range, threshold: t, cap: cap)
    }

    /// Whether ``addAndScan(_:_:_:threshold:cap:)`` runs the AVX2 pass (CUplinkCRC's
    /// `cuplink_ef_add_scan`): the CPU has AVX2 and `UPLINK_SELECT` is not `swift`. Both passes
    /// give identical residuals and candidates (tested), so frames do not depend on it.
    static let nativeScan: Bool = {
        if ProcessEnvironment.value("UPLINK_SELECT") == "swift" { return false }
        return nativeScanAvailable
    }()

    /// Whether this CPU can run the AVX2 pass.
    static let nativeScanAvailable: Bool = {
        #if arch(x86_64)
        return cuplink_select_avx2() == 1
        #else
        return false
        #endif
    }()

    #if arch(x86_64)
    /// ``addAndScanPortable(_:_:_:threshold:cap:)`` with eight-lane AVX2 vectors, in C.
    static func addAndScanAVX2(
        _ update: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Float>, _ range: Range<Int>, threshold t: UInt32, cap: Int
    ) -> Candidates {
        var c = 0
        var largest: UInt32 = 0
        var bitsOut: [UInt32] = []
        let indices = [Int](unsafeUninitializedCapacity: cap + 16) { ib, ic in
            bitsOut = [UInt32](unsafeUninitializedCapacity: cap + 16) { bb, bc in
                c = ib.baseAddress!.withMemoryRebound(to: Int64.self, capacity: cap + 16) { ip in
                    Int(cuplink_ef_add_scan(update, acc, Int64(range.lowerBound), Int64(range.upperBound), t, Int64(cap), ip, bb.baseAddress!, &largest))
                }
                bc = min(c, cap)
            }
            ic = min(c, cap)
        }
        return Candidates(indices: indices, bits: bitsOut, max: largest, overflow: c > cap)
    }
    #endif

    /// The add-and-select pass in Swift: four-lane SSE2 vectors (the package's x86-64 baseline).
    static func addAndScanPortable(
        _ update: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Float>, _ range: Range<Int>, threshold t: UInt32, cap: Int
    ) -> Candidates {
        var found = 0
        var overflow = false
        var largest: UInt32 = 0
        var bitsOut: [UInt32] = []
        let indices = [Int](unsafeUninitializedCapacity: cap + 16) { ib, ic in
            bitsOut = [UInt32](unsafeUninitializedCapacity: cap + 16) { bb, bc in
                let ip = ib.baseAddress!, bp = bb.baseAddress!
                // Keys are below 2^31, so signed comparisons order them (SSE2 has no unsigned
                // ones). Groups of 16 as four explicit 4-lane vectors: the scalar loop was not
                // vectorized. A lane's `(t − 1) − key` is negative exactly when key ≥ t, so
                // OR-ing them and testing the sign finds a group holding a candidate.
                let t1 = SIMD4<Int32>(repeating: Int32(bitPattern: t) &- 1)
                let magnitude = SIMD4<UInt32>(repeating: 0x7FFF_FFFF)
                var g = range.lowerBound
                let groups = range.lowerBound + (range.count / 16) * 16
                let ar = UnsafeMutableRawPointer(acc), ur = UnsafeRawPointer(update)
                var c = 0
                // The largest key is tracked only over groups holding a candidate: when any
                // value reaches t the largest is among them; when none does, t bounds them all.
                var m = t
                // Lane weights: a group's candidates become the set bits of one 16-bit mask.
                let w0 = SIMD4<Int32>(1, 2, 4, 8), w1 = w0 &<< 4, w2 = w0 &<< 8, w3 = w0 &<< 12
                while g < groups {
                    @inline(__always) func step(_ q: Int) -> SIMD4<Int32> {
                        let o = 4 &* (g &+ 4 &* q)
                        let v = ar.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self) + ur.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self)
                        ar.storeBytes(of: v, toByteOffset: o, as: SIMD4<Float>.self)
                        return t1 &- unsafeBitCast(unsafeBitCast(v, to: SIMD4<UInt32>.self) & magnitude, to: SIMD4<Int32>.self)
                    }
                    let d = (step(0), step(1), step(2), step(3))
                    let hit = d.0 | d.1 | d.2 | d.3
                    if (hit[0] | hit[1] | hit[2] | hit[3]) < 0, c <= cap {
                        // Negative lanes (key ≥ t) → their weights; OR across lanes → the mask.
                        let lanes = ((d.0 &>> 31) & w0) | ((d.1 &>> 31) & w1) | ((d.2 &>> 31) & w2) | ((d.3 &>> 31) & w3)
                        var mask = UInt32(bitPattern: lanes[0] | lanes[1] | lanes[2] | lanes[3])
                        while mask != 0 {
                            let j = g &+ mask.trailingZeroBitCount
                            let b = acc[j].bitPattern
                            ip[c] = j
                            bp[c] = b
                            m = max(m, b & 0x7FFF_FFFF)
                            c &+= 1
                            mask &= mask &- 1
                        }
                    }
                    g &+= 16
                }
                for j in groups..<range.upperBound {
                    acc[j] += update[j]
                    let b = acc[j].bitPattern
                    m = max(m, b & 0x7FFF_FFFF)
                    if b & 0x7FFF_FFFF >= t, c <= cap {
                        ip[c] = j
                        bp[c] = b
                        c += 1
                    }
                }
                overflow = c > cap
                found = min(c, cap)
                largest = m
                bc = found
            }
            ic = found
        }
        return Candidates(indices: indices, bits: bitsOut, max: largest, overflow: overflow)
    }

    /// From candidate positions (increasing, a superset of the top k) and their values' bits,
    /// exactly the top k positions, in increasing order, with their values.
    static func pick(indices: [Int], bits: [UInt32], k: Int, max accMax: UInt32) -> (indices: [Int], values: [Float], max: UInt32) {
        let m = kthLargestKey(bits, k)
        var above = 0
        for b in bits { above += b & 0x7FFF_FFFF > m ? 1 : 0 }
        var ties = k - above
        var outIndices: [Int] = []
        var outValues: [Float] = []
        outIndices.reserveCapacity(k)
        outValues.reserveCapacity(k)
        for (j, b) in bits.enumerated() {
            let kk = b & 0x7FFF_FFFF
            if kk > m || (kk == m && ties > 0) {
                if kk == m { ties -= 1 }
                outIndices.append(indices[j])
                outValues.append(Float(bitPattern: b))
            }
        }
        return (outIndices, outValues, accMax)
    }

    /// The k-th largest magnitude key of `bits` (1 ≤ k ≤ count): a 4,096-bin histogram of the
    /// keys' top bits finds the bin holding it in one pass, and a quickselect among that bin's
    /// keys alone finishes (candidates span a narrow range of magnitudes, so that bin is small).
    static func kthLargestKey(_ bits: [UInt32], _ k: Int) -> UInt32 {
        var lo: UInt32 = .max, hi: UInt32 = 0
        for b in bits {
            let kk = b & 0x7FFF_FFFF
            lo = min(lo, kk)
            hi = max(hi, kk)
        }
        // Bins over [lo, hi]: the shift leaves at most 4,096 of them.
        let span = hi - lo
        let shift = UInt32(max(0, 32 - span.leadingZeroBitCount - 12))
        var hist = [Int32](repeating: 0, count: 4096)
        hist.withUnsafeMutableBufferPointer { h in
            for b in bits { h[Int(((b & 0x7FFF_FFFF) - lo) >> shift)] += 1 }
        }
        var need = k
        var bin = Int((span >> shift))
        while Int(hist[bin]) < need { need -= Int(hist[bin]); bin -= 1 }
        var inBin = [UInt32]()
        inBin.reserveCapacity(Int(hist[bin]))
        for b in bits where ((b & 0x7FFF_FFFF) - lo) >> shift == UInt32(bin) { inBin.append(b & 0x7FFF_FFFF) }
        return nthLargest(&inBin, need - 1)
    }

    /// Deep Gradient Compression's sampled top-k: threshold from a strided sample of
    /// `sampleFraction`·n entries at rank k/n; entries at or above it are kept, trimmed to
    /// exactly k if more pass (fewer may pass).
    static func sampled(_ x: UnsafeBufferPointer<Float>, k: Int, sampleFraction: Double, base: Int, into out: inout [Int]) {
        let n = x.count
        guard k > 0 else { return }
        if k >= n {
            out.append(contentsOf: base..<(base + n))
            return
        }
        let s = max(1, min(n, Int(sampleFraction * Double(n))))
        var sample = [UInt32](unsafeUninitializedCapacity: s) { buf, count in
            for j in 0..<s { buf[j] = key(x[Int((UInt64(j) &* UInt64(n)) / UInt64(s))]) }
            count = s
        }
        let rank = min(s - 1, max(0, Int((Double(k) / Double(n) * Double(s)).rounded()) - 1))
        let t = max(nthLargest(&sample, rank), 1)  // never keep exact zeros
        let cap = 2 * k + 4096
        var candidates: [Int] = []
        for i in 0..<n where key(x[i]) >= t {
            if candidates.count == cap {
                // The sample badly underestimated; fall back to the exact selection.
                exact(x, k: k, base: base, into: &out)
                return
            }
            candidates.append(i)
        }
        if candidates.count > k {
            pick(x, candidates, k: k, base: base, into: &out)
        } else {
            out.append(contentsOf: candidates.lazy.map { $0 + base })
        }
    }

    /// Appends `base +` the indices with magnitude ≥ `tau`, in increasing order.
    static func threshold(_ x: UnsafeBufferPointer<Float>, tau: Float, base: Int, into out: inout [Int]) {
        let t = key(tau)
        for i in 0..<x.count where key(x[i]) >= t { out.append(base + i) }
    }

    /// From `candidates` (increasing indices, a superset of the top k), appends exactly the
    /// top k, in increasing order.
    static func pick(_ x: UnsafeBufferPointer<Float>, _ candidates: [Int], k: Int, base: Int, into out: inout [Int]) {
        var keys = candidates.map { key(x[$0]) }
        let m = nthLargest(&keys, k - 1)
        out.reserveCapacity(out.count + k)
        var above = 0
        for i in candidates where key(x[i]) > m { above += 1 }
        emit(x, candidates, threshold: m, ties: k - above, base: base, into: &out)
    }

    /// Appends, in the order of `positions`, every position whose key is above `m` and the first
    /// `ties` whose key equals `m`: the lower indices win ties.
    static func emit(
        _ x: UnsafeBufferPointer<Float>, _ positions: some Sequence<Int>, threshold m: UInt32, ties: Int, base: Int, into out: inout [Int]
    ) {
        var ties = ties
        for i in positions {
            let kk = key(x[i])
            if kk > m {
                out.append(base + i)
            } else if kk == m, ties > 0 {
                out.append(base + i)
                ties -= 1
            }
        }
    }

    /// Exact top-k by a two-level radix histogram over the 31 magnitude bits.
    static func radix(_ x: UnsafeBufferPointer<Float>, k: Int, base: Int, into out: inout [Int]) {
        let n = x.count
        var hist = [Int](repeating: 0, count: 1 << 16)
        for i in 0..<n { hist[Int(key(x[i]) >> 15)] += 1 }
        var need = k
        var hi = (1 << 16) - 1
        while hist[hi] < need { need -= hist[hi]; hi -= 1 }
        // `need` of the entries in bin `hi` belong to the top k.
        for j in 0..<hist.count { hist[j] = 0 }
        let prefix = UInt32(hi)
        for i in 0..<n where key(x[i]) >> 15 == prefix { hist[Int(key(x[i]) & 0x7FFF)] += 1 }
        var lo = 0x7FFF
        while hist[lo] < need { need -= hist[lo]; lo -= 1 }
        out.reserveCapacity(out.count + k)
        emit(x, 0..<n, threshold: (prefix << 15) | UInt32(lo), ties: need, base: base, into: &out)
    }

    /// The element that would be at position `rank` if `a` were sorted in decreasing order
    /// (quickselect with a three-way partition, so runs of equal keys cost nothing extra).
    static func nthLargest(_ a: inout [UInt32], _ rank: Int) -> UInt32 {
        precondition(rank >= 0 && rank < a.count)
        return a.withUnsafeMutableBufferPointer { p in
            var lo = 0, hi = p.count - 1
            while true {
                if lo == hi { return p[lo] }
                let mid = lo + (hi - lo) / 2
                // Median of three as the pivot.
                let x = p[lo], y = p[mid], z = p[hi]
                let pivot = max(min(x, y), min(max(x, y), z))
                // Partition into > pivot, == pivot, < pivot (decreasing order).
                var lt = lo, i = lo, gt = hi
                while i <= gt {
                    if p[i] > pivot {
                        p.swapAt(lt, i); lt += 1; i += 1
                    } else if p[i] < pivot {
                        p.swapAt(i, gt); gt -= 1
                    } else {
                        i += 1
                    }
                }
                if rank < lt { hi = lt - 1 } else if rank > gt { lo = gt + 1 } else { return pivot }
            }
        }
    }
}

/// Random-k positions: Floyd's algorithm over SplitMix64, sorted. Normative in
/// `docs/wire-format.md` §8, because the decoder regenerates exactly these positions.
///
/// The chosen set is kept compactly, so regenerating k ≈ n positions of a hostile frame costs
/// n/8 bytes, not a hash set of k boxed integers: a bitset of n bits when k ≥ n/64 (its n/8
/// bytes are then at most 8 bytes per position, and reading it out in order needs no sort), an
/// open-addressing table of 2k–4k slots otherwise.
enum RandomKSelection {
    static func indices(n: Int, k: Int, seed: UInt64, round: UInt64) -> [Int] {
        let p = positions(n: n, k: k, seed: seed, round: round)
        return (0..<p.count).map { p[$0] }
    }

    /// The same positions in their compact form.
    static func positions(n: Int, k: Int, seed: UInt64, round: UInt64) -> Positions {
        var out = Positions(n: n)
        guard k > 0 else { return out }
        out.reserve(k)
        if k >= n {
            for i in 0..<n { out.append(i) }
            return out
        }
        var rng = SplitMix64(seed: seed, round: round)
        if k >= n / 64 {
            var bits = [UInt64](repeating: 0, count: (n + 63) / 64)
            bits.withUnsafeMutableBufferPointer { b in
                for j in (n - k)..<n {
                    let t = Int(rng.below(UInt64(j + 1)))
                    let (w, m) = (t >> 6, UInt64(1) << UInt64(t & 63))
                    if b[w] & m == 0 { b[w] |= m } else { b[j >> 6] |= UInt64(1) << UInt64(j & 63) }
                }
                for (w, word) in b.enumerated() {
                    var v = word
                    while v != 0 {
                        out.append(w << 6 | v.trailingZeroBitCount)
                        v &= v - 1
                    }
                }
            }
        } else {
            // Linear probing over a power-of-two table at most half full.
            var size = 16
            while size < 2 * k { size <<= 1 }
            let mask = size - 1
            let empty = UInt64.max
            var table = [UInt64](repeating: empty, count: size)
            var chosen: [Int] = []
            chosen.reserveCapacity(k)
            table.withUnsafeMutableBufferPointer { t in
                func insert(_ x: Int) -> Bool {
                    var h = Int(truncatingIfNeeded: (UInt64(x) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
                    let v = UInt64(x)
                    while t[h] != empty {
                        if t[h] == v { return false }
                        h = (h + 1) & mask
                    }
                    t[h] = v
                    return true
                }
                for j in (n - k)..<n {
                    let x = Int(rng.below(UInt64(j + 1)))
                    if insert(x) { chosen.append(x) } else { _ = insert(j); chosen.append(j) }
                }
            }
            chosen.sort()
            for c in chosen { out.append(c) }
        }
        return out
    }
}

/// Transmitted positions, increasing, in 32 bits each when the model has fewer than 2^32
/// parameters (every model the default limits accept), in 64 otherwise: the decoder holds
/// k of them per frame, so their width is most of a sparse frame's decoded size.
struct Positions: Sendable {
    private(set) var narrow: [UInt32] = []
    private(set) var wide: [Int] = []
    /// Whether positions need 64 bits (n > 2^32).
    let isWide: Bool

    init(n: Int) { isWide = n > 1 << 32 }

    /// Positions already in 32 bits (n ≤ 2^32).
    init(narrow: [UInt32]) {
        isWide = false
        self.narrow = narrow
    }

    var count: Int { isWide ? wide.count : narrow.count }

    mutating func reserve(_ k: Int) {
        if isWide { wide.reserveCapacity(k) } else { narrow.reserveCapacity(k) }
    }

    mutating func append(_ p: Int) {
        if isWide { wide.append(p) } else { narrow.append(UInt32(truncatingIfNeeded: p)) }
    }

    @inline(__always) subscript(i: Int) -> Int { isWide ? wide[i] : Int(narrow[i]) }
}

/// Wraps a value for a concurrent closure whose accesses the caller keeps disjoint.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
