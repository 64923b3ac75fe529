import CFFmpeg
import CSndFile
import Foundation
import AffectKernels

/// Streams the audio track of any file FFmpeg reads (mp4, mkv, webm, wav, flac, mp3, ogg, ...) as mono Float
/// samples at one sample rate (16 kHz unless asked otherwise), a chunk at a time: memory stays bounded however
/// long the file.
///
/// ```swift
/// let audio = try AudioDecoder(path: "interview.mp4")
/// while let chunk = try audio.read(), !chunk.isEmpty { ... }     // or AudioDecoder.decodeAll(path:)
/// ```
/// Down-mixing and resampling are libswresample's, set up as the `ffmpeg` command line does for
/// `-ac 1 -ar 16000` (default filter: 32 taps, phase shift 10, linear interpolation, cutoff 0.97), so the
/// samples equal `ffmpeg -i FILE -ac 1 -ar 16000 -f f32le`. Note that FFmpeg's float down-mix of stereo is
/// (L + R)·√½ (power-preserving), not the average: the level is √2 above librosa's `mono=True`; the
/// processors' zero-mean unit-variance normalisation makes that difference vanish for the speech models.
///
/// Bad input: a missing, empty or unreadable file, or one without an audio stream, throws
/// ``AffectError/badInput(_:)`` naming the file. Damaged packets inside a stream are skipped (as `ffmpeg`
/// does); a file cut short yields the audio before the cut. An audio stream with no samples yields no samples
/// (the models then produce zero frames).
public final class AudioDecoder {
    public let path: String
    /// Output sample rate.
    public let sampleRate: Int
    /// The audio stream's own rate, channel count and codec.
    public let sourceSampleRate: Int
    public let sourceChannels: Int
    public let codecName: String
    /// Duration from the container, if it states one (seconds).
    public let duration: Double?

    private let media: MediaStream
    private var resampler: OpaquePointer?
    /// The input format the resampler was set up for (rate, sample format, channel layout).
    private var resamplerInput: (rate: Int32, format: Int32, layout: AVChannelLayout)?
    private var pending: [Float] = []
    private var pendingStart = 0
    private var finished = false
    /// Samples returned so far.
    public private(set) var samplesRead = 0

    /// Source sample rates accepted, in Hz. Real audio lies between 8 kHz telephony and 768 kHz studio
    /// formats; a header declaring 1 Hz would make a 3 KB file decode to half an hour at 16 kHz.
    public static let sourceRates = 1000...1_000_000

    static func checkSourceRate(_ rate: Int, path: String) throws {
        guard sourceRates.contains(rate) else {
            throw AffectError.badInput("\(path): the audio stream's sample rate is \(rate) Hz, outside \(sourceRates.lowerBound)…\(sourceRates.upperBound) Hz.")
        }
    }

    public init(path: String, sampleRate: Int = 16000) throws {
        self.path = path
        self.sampleRate = sampleRate
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        guard sampleRate > 0 else { throw bad("the output sample rate must be positive.") }
        media = try MediaStream(path: path, kind: .audio)
        codecName = media.decoderName
        let c = media.codec
        sourceSampleRate = Int(c.pointee.sample_rate)
        // 0: not stated in the header (the first frame's rate is checked instead).
        if sourceSampleRate != 0 { try Self.checkSourceRate(sourceSampleRate, path: path) }
        sourceChannels = Int(c.pointee.ch_layout.nb_channels)
        duration = media.declaredDuration
    }

    deinit {
        swr_free(&resampler)
        if var l = resamplerInput?.layout { av_channel_layout_uninit(&l) }
    }

    /// Up to `maxSamples` further samples; an empty array at the end of the stream.
    public func read(maxSamples: Int = 160_000) throws -> [Float] {
        precondition(maxSamples > 0)
        while pending.count - pendingStart < maxSamples && !finished {
            try decodeMore()
        }
        let n = min(maxSamples, pending.count - pendingStart)
        let out = Array(pending[pendingStart..<(pendingStart + n)])
        pendingStart += n
        if pendingStart > 1 << 20 || pendingStart == pending.count {
            pending.removeFirst(pendingStart); pendingStart = 0
        }
        samplesRead += n
        return out
    }

    /// The whole audio track (for short files; long ones should be read in chunks: it takes 4 bytes per sample).
    public static func decodeAll(path: String, sampleRate: Int = 16000) throws -> [Float] {
        let d = try AudioDecoder(path: path, sampleRate: sampleRate)
        var all: [Float] = []
        while true {
            let chunk = try d.read(maxSamples: 1 << 20)
            if chunk.isEmpty { return all }
            all += chunk
        }
    }

    /// Decodes one frame (or flushes at the end) and appends its resampled samples to `pending`.
    private func decodeMore() throws {
        // Frames the decoder cannot make sense of are skipped, as ffmpeg does.
        if let f = try media.nextFrame(corrupt: nil) {
            defer { av_frame_unref(f) }
            try resample(f)
        } else {
            try resample(nil)
            finished = true
        }
    }

    /// Converts `f` (or, with nil, what the resampler still holds) to mono Float at `sampleRate`.
    private func resample(_ f: UnsafeMutablePointer<AVFrame>?) throws {
        if let f {
            var layout = AVChannelLayout()
            if f.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || f.pointee.ch_layout.nb_channels == 0 {
                av_channel_layout_default(&layout, max(1, f.pointee.ch_layout.nb_channels))
            } else {
                av_channel_layout_copy(&layout, &f.pointee.ch_layout)
            }
            defer { av_channel_layout_uninit(&layout) }
            if var old = resamplerInput?.layout {
                if old.nb_channels != layout.nb_channels || av_channel_layout_compare(&old, &layout) != 0
                    || resamplerInput!.rate != f.pointee.sample_rate || resamplerInput!.format != f.pointee.format {
                    // The stream changed format mid-way: drain the old resampler, start a new one.
                    try resample(nil)
                    swr_free(&resampler)
                    av_channel_layout_uninit(&old)
                    resamplerInput = nil
                }
            }
            if resampler == nil { try makeResampler(f, layout: &layout) }
        }
        guard let swr = resampler else { return }
        let inCount = Int32(f?.pointee.nb_samples ?? 0)
        let capacity = Int(swr_get_out_samples(swr, inCount)) + 16
        if capacity <= 16 && f == nil { return }
        var buffer = [Float](repeating: 0, count: max(capacity, 1))
        let produced: Int32 = buffer.withUnsafeMutableBytes { raw in
            var out: UnsafeMutablePointer<UInt8>? = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return withUnsafeMutablePointer(to: &out) { outs in
                if let f {
                    return f.pointee.extended_data.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { ins in
                        swr_convert(swr, outs, Int32(capacity), ins, inCount)
                    }
                }
                return swr_convert(swr, outs, Int32(capacity), nil, 0)
            }
        }
        guard produced >= 0 else { throw AffectError.badInput("\(path): cannot resample its audio (error \(produced)).") }
        pending.append(contentsOf: buffer[0..<Int(produced)])
    }

    private func makeResampler(_ f: UnsafeMutablePointer<AVFrame>, layout: inout AVChannelLayout) throws {
        try Self.checkSourceRate(Int(f.pointee.sample_rate), path: path)
        var mono = AVChannelLayout()
        av_channel_layout_default(&mono, 1)
        defer { av_channel_layout_uninit(&mono) }
        let fmt = AVSampleFormat(rawValue: f.pointee.format)
        guard swr_alloc_set_opts2(&resampler, &mono, AV_SAMPLE_FMT_FLT, Int32(sampleRate), &layout, fmt,
                                  f.pointee.sample_rate, 0, nil) >= 0, let swr = resampler, swr_init(swr) >= 0 else {
            throw AffectError.badInput("\(path): cannot convert its audio (\(layout.nb_channels) channels at \(f.pointee.sample_rate) Hz) to mono at \(sampleRate) Hz.")
        }
        var copy = AVChannelLayout()
        av_channel_layout_copy(&copy, &layout)
        resamplerInput = (f.pointee.sample_rate, f.pointee.format, copy)
    }
}

/// Reading and writing WAV / FLAC files with libsndfile (what the engine writes, and what tests generate).
public enum SoundFile {
    /// Containers libsndfile writes here.
    public enum Format: Sendable { case wav16, wavFloat, flac16 }

    /// Writes mono `samples` (clipped to [−1, 1] for 16-bit formats).
    public static func write(_ samples: [Float], sampleRate: Int, to path: String, format: Format = .wav16) throws {
        let w = try Writer(path: path, sampleRate: sampleRate, format: format)
        try w.write(samples)
        try w.close()
    }

    /// A mono sound file written a chunk at a time, so a long recording never has to be held in memory.
    public final class Writer {
        public let path: String
        private var file: OpaquePointer?
        private var written = 0

        public init(path: String, sampleRate: Int, format: Format = .wav16) throws {
            self.path = path
            guard let rate = Int32(exactly: sampleRate), rate > 0 else {
                throw AffectError.badInput("\(path): cannot write a sound file at \(sampleRate) Hz.")
            }
            var info = SF_INFO()
            info.samplerate = rate
            info.channels = 1
            switch format {
            case .wav16: info.format = Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16)
            case .wavFloat: info.format = Int32(SF_FORMAT_WAV | SF_FORMAT_FLOAT)
            case .flac16: info.format = Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16)
            }
            guard let f = sf_open(path, Int32(SFM_WRITE), &info) else {
                throw AffectError.badInput("\(path): cannot write the sound file (\(String(cString: sf_strerror(nil)))).")
            }
            file = f
            // Scale 16-bit output so that 1.0 maps to 32767 after clipping, as FFmpeg and soundfile do.
            sf_command(f, Int32(SFC_SET_CLIPPING), nil, Int32(SF_TRUE))
        }

        deinit { if let file { sf_close(file) } }

        /// Appends `samples`.
        public func write(_ samples: [Float]) throws {
            guard let file else { throw AffectError.badInput("\(path): the sound file is already closed.") }
            let n = samples.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress, sf_count_t($0.count)) }
            guard n == samples.count else {
                throw AffectError.badInput("\(path): wrote \(written + Int(n)) samples, then the write failed (\(String(cString: sf_strerror(file)))).")
            }
            written += samples.count
        }

        /// Completes the file (its header's sizes, FLAC's last frame).
        public func close() throws {
            guard let f = file else { return }
            file = nil
            guard sf_close(f) == 0 else { throw AffectError.badInput("\(path): cannot complete the sound file.") }
        }
    }

    /// Reads a WAV / FLAC / AIFF / OGG file: interleaved Float samples in [−1, 1], the rate and channel count.
    public static func read(_ path: String) throws -> (samples: [Float], sampleRate: Int, channels: Int) {
        var info = SF_INFO()
        guard let file = sf_open(path, Int32(SFM_READ), &info) else {
            throw AffectError.badInput("\(path): not a sound file libsndfile can read (\(String(cString: sf_strerror(nil)))).")
        }
        defer { sf_close(file) }
        let channels = Int(info.channels)
        guard channels > 0, info.samplerate > 0 else { throw AffectError.badInput("\(path): the sound file has no channels.") }
        var out: [Float] = []
        var buffer = [Float](repeating: 0, count: 65536 * channels)
        while true {
            let n = buffer.withUnsafeMutableBufferPointer { sf_readf_float(file, $0.baseAddress, 65536) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<(Int(n) * channels)])
        }
        return (out, Int(info.samplerate), channels)
    }
}
