import Foundation
import AffectKernels

/// One recognised word with its time span.
public struct TranscriptWord: Sendable, Equatable, Codable {
    public var word: String
    /// Seconds from the start of the audio: first frame of the word's first character.
    public var start: Double
    /// Seconds: end of the word's last character's last frame.
    public var end: Double
    public init(word: String, start: Double, end: Double) { self.word = word; self.start = start; self.end = end }
}

/// A greedy CTC transcript.
public struct Transcript: Sendable, Equatable {
    public var text: String
    public var words: [TranscriptWord]
    /// The arg-max token id of every frame (before collapsing).
    public var frameIds: [Int]
}

/// Greedy (best-path) CTC decoding as `Wav2Vec2CTCTokenizer.decode(argmax(logits), output_word_offsets=True)`
/// does it: arg-max per frame, collapse repeats, drop the blank (the pad token), the word delimiter (`|`)
/// becomes a space, the text is stripped (and lower-cased when the tokenizer says so).
///
/// Word times come from the 20 ms frames: a word starts at the first frame of its first character and ends
/// after the last frame of its last character (the repeats of a character count, blanks do not), as
/// transformers' word offsets times `inputs_to_logits_ratio / sampling_rate`. Special tokens such as `<unk>`
/// are kept in the text, as transformers does by default.
public struct CTCDecoder: Sendable {
    public let vocabulary: [String]
    public let blank: Int
    public let wordDelimiter: String
    public let lowercase: Bool
    public let secondsPerFrame: Double
    /// transformers' `clean_up_tokenization` (" ." → ".", " 's" → "'s", ...) when the tokenizer enables it.
    public let cleanUpSpaces: Bool

    public init(vocabulary: [String], blank: Int, wordDelimiter: String = "|", lowercase: Bool = false,
                secondsPerFrame: Double = 0.02, cleanUpSpaces: Bool = false) throws {
        guard vocabulary.indices.contains(blank) else {
            throw AffectError.badInput("CTC blank id \(blank) is outside the vocabulary of \(vocabulary.count) tokens.")
        }
        self.vocabulary = vocabulary; self.blank = blank; self.wordDelimiter = wordDelimiter
        self.lowercase = lowercase; self.secondsPerFrame = secondsPerFrame; self.cleanUpSpaces = cleanUpSpaces
    }

    /// Arg-max per frame of `[frames, vocabulary]` logits (first maximum wins, as torch.argmax).
    public func argmax(_ logits: UnsafePointer<Float>, frames: Int) -> [Int] {
        let v = vocabulary.count
        return (0..<frames).map { f in
            let row = logits + f * v
            var best = 0
            for j in 1..<v where row[j] > row[best] { best = j }
            return best
        }
    }

    /// Decodes `[frames, vocabulary]` logits. `frameOffset` shifts the times (frames before this chunk).
    public func decode(logits: UnsafePointer<Float>, frames: Int, frameOffset: Int = 0) -> Transcript {
        decode(ids: argmax(logits, frames: frames), frameOffset: frameOffset)
    }

    /// Decodes per-frame token ids.
    public func decode(ids: [Int], frameOffset: Int = 0) -> Transcript {
        // Runs of equal ids: (token, first frame, end frame).
        var runs: [(id: Int, start: Int, end: Int)] = []
        for (f, id) in ids.enumerated() {
            if let last = runs.last, last.id == id { runs[runs.count - 1].end = f + 1 } else { runs.append((id, f, f + 1)) }
        }
        let chars = runs.filter { $0.id != blank }.map { run -> (text: String, start: Int, end: Int) in
            let token = vocabulary.indices.contains(run.id) ? vocabulary[run.id] : ""
            return (token == wordDelimiter ? " " : token, run.start, run.end)
        }
        var text = chars.map(\.text).joined().trimmingCharacters(in: .whitespacesAndNewlines)
        if lowercase { text = text.lowercased() }
        if cleanUpSpaces { text = Self.cleanUp(text) }

        // Words: maximal runs of non-space characters.
        var words: [TranscriptWord] = []
        var current: (word: String, start: Int, end: Int)? = nil
        for c in chars {
            if c.text == " " {
                if let w = current { words.append(word(w)); current = nil }
            } else if current == nil {
                current = (c.text, c.start, c.end)
            } else {
                current!.word += c.text; current!.end = c.end
            }
        }
        if let w = current { words.append(word(w)) }
        func word(_ w: (word: String, start: Int, end: Int)) -> TranscriptWord {
            TranscriptWord(word: lowercase ? w.word.lowercased() : w.word,
                           start: Double(w.start + frameOffset) * secondsPerFrame, end: Double(w.end + frameOffset) * secondsPerFrame)
        }
        return Transcript(text: text, words: words, frameIds: ids)
    }

    /// transformers' `PreTrainedTokenizerBase.clean_up_tokenization`.
    static func cleanUp(_ s: String) -> String {
        var t = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            t = t.replacingOccurrences(of: a, with: b)
        }
        return t
    }
}
