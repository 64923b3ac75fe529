import Foundation
import AffectKernels

/// Byte-pair encoding over symbols that are vocabulary ids: a word starts as its characters and the adjacent
/// pair with the lowest merge rank is merged (all its occurrences, left to right) until no ranked pair is left.
final class BPE: @unchecked Sendable {
    let vocab: [String: Int]
    /// (left id, right id) → (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unk: Int?
    let ignoreMerges: Bool
    private var cache: [[Unicode.Scalar]: [Int]] = [:]
    private let lock = NSLock()

    init(vocab: [String: Int], merges list: [(String, String)], unk: String?, ignoreMerges: Bool, source: String) throws {
        self.vocab = vocab
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(list.count)
        for (rank, (a, b)) in list.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b], let merged = vocab[a + b] else {
                throw AffectError.badInput("\(source): BPE merge `\(a) \(b)` uses tokens missing from the vocabulary.")
            }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if m[key] == nil { m[key] = (Int32(rank), Int32(merged)) }
        }
        merges = m
        self.unk = unk.flatMap { vocab[$0] }
        self.ignoreMerges = ignoreMerges
    }

    func encode(_ word: [Unicode.Scalar], into ids: inout [Int]) {
        lock.lock()
        if let hit = cache[word] { lock.unlock(); ids += hit; return }
        lock.unlock()
        let result = merge(word)
        lock.lock()
        if cache.count > 50_000 { cache.removeAll(keepingCapacity: true) }
        cache[word] = result
        lock.unlock()
        ids += result
    }

    private func merge(_ word: [Unicode.Scalar]) -> [Int] {
        if ignoreMerges, let id = vocab[scalarsString(word)] { return [id] }
        var symbols: [Int] = []
        symbols.reserveCapacity(word.count)
        for c in word {
            if let id = vocab[String(Character(c))] { symbols.append(id) } else if let u = unk { symbols.append(u) }
        }
        while symbols.count > 1 {
            var best: (rank: Int32, id: Int32) = (.max, 0), bestLeft = -1, bestRight = -1
            for i in 0..<symbols.count - 1 {
                if let r = merges[UInt64(UInt32(symbols[i])) << 32 | UInt64(UInt32(symbols[i + 1]))], r.rank < best.rank {
                    best = r; bestLeft = symbols[i]; bestRight = symbols[i + 1]
                }
            }
            if bestLeft < 0 { break }
            var merged: [Int] = []
            merged.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == bestLeft && symbols[i + 1] == bestRight {
                    merged.append(Int(best.id)); i += 2
                } else { merged.append(symbols[i]); i += 1 }
            }
            symbols = merged
        }
        return symbols
    }
}

/// WordPiece: greedy longest-match-first from the start of a word; pieces after the first carry the
/// continuation prefix (`##`). A word with any unmatchable part, or longer than `maxChars`, is one `[UNK]`.
struct WordPiece {
    let vocab: [String: Int]
    let unk: Int
    let prefix: String
    let maxChars: Int

    init(vocab: [String: Int], unk: String, prefix: String, maxChars: Int, source: String) throws {
        guard let u = vocab[unk] else { throw AffectError.badInput("\(source): the unknown token `\(unk)` is not in the vocabulary.") }
        self.vocab = vocab; self.unk = u; self.prefix = prefix; self.maxChars = maxChars
    }

    func encode(_ word: [Unicode.Scalar], into ids: inout [Int]) {
        if word.count > maxChars { ids.append(unk); return }
        var pieces: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int?
            while start < end {
                var s = scalarsString(Array(word[start..<end]))
                if start > 0 { s = prefix + s }
                if let id = vocab[s] { found = id; break }
                end -= 1
            }
            guard let id = found else { ids.append(unk); return }
            pieces.append(id)
            start = end
        }
        ids += pieces
    }
}
