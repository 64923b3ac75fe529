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
        var ids: [Int] = []
        ids.reserveCapacity(word.count)
        for c in word {
            if let id = vocab[String(Character(c))] { ids.append(id) } else if let u = unk { ids.append(u) }
        }
        let n = ids.count
        if n < 2 { return ids }
        // Symbols as a linked list; candidate pairs in a min-heap ordered by (rank, position), so the
        // lowest-ranked pair merges first and equal pairs merge left to right. Stale entries (a side already
        // merged away) are skipped when popped. O(n log n), so even enormous words stay fast.
        var next = Array(1...n), prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = PairHeap()
        func rank(_ a: Int, _ b: Int) -> (rank: Int32, id: Int32)? { merges[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] }
        for i in 0..<(n - 1) { if let r = rank(ids[i], ids[i + 1]) { heap.push(.init(rank: r.rank, pos: i, left: ids[i], right: ids[i + 1])) } }
        while let top = heap.pop() {
            let i = top.pos
            guard alive[i], ids[i] == top.left else { continue }
            let j = next[i]
            guard j < n, ids[j] == top.right, let r = rank(top.left, top.right), r.rank == top.rank else { continue }
            ids[i] = Int(r.id)
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0, let pr = rank(ids[prev[i]], ids[i]) {
                heap.push(.init(rank: pr.rank, pos: prev[i], left: ids[prev[i]], right: ids[i]))
            }
            if next[i] < n, let nr = rank(ids[i], ids[next[i]]) {
                heap.push(.init(rank: nr.rank, pos: i, left: ids[i], right: ids[next[i]]))
            }
        }
        var out: [Int] = []
        var i = 0
        while i < n { out.append(ids[i]); i = next[i] }
        return out
    }
}

/// A binary min-heap of merge candidates.
struct PairHeap {
    struct Entry { var rank: Int32; var pos: Int; var left: Int; var right: Int }
    private var items: [Entry] = []

    @inline(__always) private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }

    mutating func push(_ e: Entry) {
        items.append(e)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard PairHeap.less(items[c], items[p]) else { break }
            items.swapAt(c, p); c = p
        }
    }

    mutating func pop() -> Entry? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count && PairHeap.less(items[l], items[m]) { m = l }
                if r < items.count && PairHeap.less(items[r], items[m]) { m = r }
                if m == p { break }
                items.swapAt(p, m); p = m
            }
        }
        return first
    }
}

/// WordPiece: greedy longest-match-first from the start of a word; pieces after the first carry the
/// continuation prefix (`##`). A word with any unmatchable part, or longer than `maxChars`, is one `[UNK]`.
///
/// The vocabulary is a trie over Unicode scalars, so the longest piece at each position is found in one walk
/// (at most the longest token's length): linear in the word, whatever `max_input_chars_per_word` allows.
/// Tokens match scalar for scalar, as in `tokenizers`.
struct WordPiece {
    let unk: Int
    let maxChars: Int
    /// (node << 21 | scalar) → child node; node 0 is the root.
    private let children: [UInt64: Int32]
    /// The token id each node spells, or -1.
    private let ids: [Int32]
    /// The node the continuation prefix leads to (nil: no token starts with it, so no word has a second piece).
    private let continuation: Int32?

    init(vocab: [String: Int], unk: String, prefix: String, maxChars: Int, source: String) throws {
        guard let u = vocab[unk] else { throw AffectError.badInput("\(source): the unknown token `\(unk)` is not in the vocabulary.") }
        self.unk = u; self.maxChars = maxChars
        var children: [UInt64: Int32] = [:], ids: [Int32] = [-1]
        children.reserveCapacity(vocab.count * 4)
        for (token, id) in vocab {
            var node: Int32 = 0
            for c in token.unicodeScalars {
                let key = UInt64(node) << 21 | UInt64(c.value)
                if let next = children[key] { node = next } else {
                    let next = Int32(ids.count)
                    children[key] = next; ids.append(-1); node = next
                }
            }
            // Ids were checked to fit Int32 when the vocabulary was read.
            ids[Int(node)] = Int32(id)
        }
        var node: Int32? = 0
        for c in prefix.unicodeScalars { node = node.flatMap { children[UInt64($0) << 21 | UInt64(c.value)] } }
        self.children = children; self.ids = ids; self.continuation = node
    }

    func encode(_ word: [Unicode.Scalar], into ids: inout [Int]) {
        if word.count > maxChars { ids.append(unk); return }
        var pieces: [Int] = []
        var start = 0
        while start < word.count {
            guard var node = start == 0 ? 0 : continuation else { ids.append(unk); return }
            var found: (end: Int, id: Int32)?
            var i = start
            while i < word.count, let next = children[UInt64(node) << 21 | UInt64(word[i].value)] {
                node = next
                i += 1
                if self.ids[Int(node)] >= 0 { found = (i, self.ids[Int(node)]) }
            }
            guard let (end, id) = found else { ids.append(unk); return }
            pieces.append(Int(id))
            start = end
        }
        ids += pieces
    }
}
