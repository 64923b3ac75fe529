import Foundation
import Testing
import AffectMedia
import AffectServer
import AffectTestSupport

/// The page at `/` in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, which
/// scripts/install-deps.sh installs) driven over WebDriver. Part of the suite: where either is missing the
/// tests fail and say what to install; `AFFECT_BROWSER_TESTS=0` skips them (reported as skipped).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["AFFECT_BROWSER_TESTS"] != "0",
                             "AFFECT_BROWSER_TESTS=0 skips the browser tests"))
struct WebPageBrowserTests {
    static let token = "browser-test-token"
    static let auth = ["Authorization": "Bearer \(token)"]

    /// Opens the page on a token-guarded server, types the token, runs `body` with the browser, then closes it.
    func withPage(models: ModelSet = sharedModels, _ body: @escaping (WebDriver, Int) throws -> Void) async throws {
        try #require(WebDriver.installed != nil, "the browser tests need Debian's chromium and chromium-driver (scripts/install-deps.sh installs them; AFFECT_BROWSER_TESTS=0 skips these tests)")
        try await withServer({ $0.token = Self.token }, models: models) { _, port in
            try await offThread {
                let browser = try WebDriver.start()
                defer { browser.quit() }
                try browser.open("http://127.0.0.1:\(port)/")
                try browser.type("#token", Self.token)
                try body(browser, port)
            }
        }
    }

    @Test func uploadedClipIsDrawnAndMatchesTheAPI() async throws {
        try await withPage { browser, port in
            // Choose the demo clip in the file input, as a person would.
            try browser.type("#file", "\(media)/talking.mp4")
            let status = try browser.waitFor("the analysis", seconds: 120, """
                const s = document.getElementById("status").textContent;
                return s.startsWith("done") || s.startsWith("error") ? s : null;
                """) as? String
            #expect(status == "done: 1 track")
            let id = try #require(try browser.run("return job && job.id") as? String)

            // What the page holds and offers for download is the API's result, byte for byte.
            let apiJSON = try request(port, "GET", "/v1/jobs/\(id)/result?format=json", headers: Self.auth)
            let apiCSV = try request(port, "GET", "/v1/jobs/\(id)/result?format=csv", headers: Self.auth)
            #expect(apiJSON.status == 200 && apiCSV.status == 200)
            let api = try #require(try JSONSerialization.jsonObject(with: apiJSON.body) as? [String: Any])
            // The page's `result` is the API's document (compared as JSON in the page: same numbers, same keys).
            let same = try browser.run("return JSON.stringify(result) === JSON.stringify(JSON.parse(arguments[0]))", [apiJSON.text]) as? Bool
            #expect(same == true, "the page's result differs from the API's")
            for (link, expected) in [("csv", apiCSV.text), ("json", apiJSON.text)] {
                let downloaded = try browser.runAsync("""
                    const done = arguments[arguments.length - 1], a = document.getElementById(arguments[0]);
                    if (getComputedStyle(a).display === "none") done("hidden");
                    else fetch(a.href).then(r => r.text()).then(done, e => done("error: " + e));
                    """, [link]) as? String
                #expect(downloaded == expected, "the \(link) link")
            }

            // The clip plays in the page: seek to analysed frames and check what is drawn there.
            let tracks = try #require(api["tracks"] as? [[String: Any]])
            let labels = try #require((api["expression_model"] as? [String: Any])?["labels"] as? [String])
            let rows = try #require(tracks.first?["rows"] as? [[String: Any]])
            #expect(rows.count == 100)
            let duration = try #require((api["video"] as? [String: Any])?["duration"] as? Double)
            for k in [12, 55, 91] {
                let row = rows[k]
                let box = try #require(row["box"] as? [Double], "frame \(k) has a face")
                let time = try #require(row["time"] as? Double), next = try #require(rows[k + 1]["time"] as? Double)
                let seen = try #require(try browser.runAsync("""
                    const done = arguments[arguments.length - 1];
                    video.addEventListener("seeked", () => {
                      draw();
                      const g = overlay.getContext("2d"), sx = overlay.width / video.videoWidth, sy = overlay.height / video.videoHeight;
                      // Math.floor: a 2-px line centred at x always covers the whole pixel [floor(x), floor(x) + 1] (no anti-aliased edge).
                      const px = (x, y) => Array.from(g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data);
                      const b = drawn.length ? drawn[0].box : [0, 0, 0, 0];
                      const cells = Array.from(document.querySelectorAll("#readout tr")).map(tr => Array.from(tr.cells, c => c.textContent));
                      // The timeline: each class's curve at this frame's x, the playhead column.
                      const t = timeline.getContext("2d"), left = 60, width = timeline.width - left - 10, lane = 110;
                      const x = left + width * arguments[1] / result.video.duration;
                      const column = y0 => Array.from(t.getImageData(Math.round(x) - 1, y0, 3, lane - 8).data);
                      // The time axis under the lanes: the pixel of each tick's mark.
                      const axisTop = timeline.height - 22 - 16;
                      const marks = ticks.map(k => Array.from(t.getImageData(Math.round(k.x), axisTop + 1, 1, 1).data));
                      done({ drawn, cells, time: video.currentTime, videoWidth: video.videoWidth, videoHeight: video.videoHeight,
                             edge: px(b[0] * sx, (b[1] + b[3]) / 2 * sy), centre: px((b[0] + b[2]) / 2 * sx, (b[1] + b[3]) / 2 * sy),
                             timelineHeight: timeline.height, column: column(4), playhead: x, ticks, marks });
                    }, { once: true });
                    video.currentTime = arguments[0];
                    """, [(time + next) / 2, time]) as? [String: Any])
                #expect(seen["videoWidth"] as? Int == 384 && seen["videoHeight"] as? Int == 384, "Chromium decodes the clip")

                // One box, where the API says, labelled with the API's expression and probability.
                let drawn = seen["drawn"] as? [[String: Any]] ?? []
                #expect(drawn.count == 1, "frame \(k): \(drawn)")
                let probabilities = try #require(row["probabilities"] as? [Double])
                let expression = try #require(row["expression"] as? String)
                #expect(drawn.first?["box"] as? [Double] == box)
                #expect(drawn.first?["text"] as? String == "track 0: \(expression) \(String(format: "%.2f", probabilities.max() ?? -1))")
                // The box is on the canvas: its edge in the track's colour, its inside clear.
                let edge = seen["edge"] as? [Int] ?? [], centre = seen["centre"] as? [Int] ?? []
                #expect(edge == [0xE6, 0x19, 0x4B, 255], "frame \(k): box edge pixel \(edge)")
                #expect(centre.count == 4 && centre[3] == 0, "frame \(k): box centre pixel \(centre)")

                // The readout table shows this frame's numbers.
                let cells = seen["cells"] as? [[String]] ?? []
                #expect(cells.first == ["track", "frame", "time"] + labels)
                let shown = cells.count == 2 ? cells[1] : []
                #expect(shown.count == 3 + labels.count, "frame \(k): \(cells)")
                if shown.count == 3 + labels.count {
                    #expect(shown[0] == "0" && shown[1] == String(row["frame"] as? Int ?? -1))
                    #expect(abs((Double(shown[2]) ?? -1) - time) <= 0.0005)
                    for (j, p) in probabilities.enumerated() { #expect(abs((Double(shown[3 + j]) ?? -1) - p) <= 0.0005 + 1e-9, "\(labels[j])") }
                }

                // The timeline: one lane plus the legend; the top class's curve passes through this frame's
                // probability; the playhead is drawn at the current time.
                #expect(seen["timelineHeight"] as? Int == 110 + 16 + 22)
                // The time axis: ticks from 0 s at one round step, covering the clip, each labelled with its time
                // in seconds at its x and marked on the canvas.
                let ticks = seen["ticks"] as? [[String: Any]] ?? [], marks = seen["marks"] as? [[Int]] ?? []
                let times = ticks.map { $0["time"] as? Double ?? -1 }
                #expect((3...14).contains(ticks.count), "\(ticks)")
                if ticks.count >= 2 {
                    let step = times[1] - times[0]
                    #expect(times[0] == 0 && [0.1, 0.2, 0.5, 1, 2, 5, 10].contains { abs($0 - step) < 1e-9 }, "\(times)")
                    for (i, t) in times.enumerated() { #expect(abs(t - Double(i) * step) < 1e-9) }
                    #expect(times.last! <= duration + 1e-9 && times.last! + step > duration, "\(times) for \(duration) s")
                }
                for (k, tick) in ticks.enumerated() {
                    let t = times[k], label = tick["label"] as? String ?? ""
                    #expect(label.hasSuffix(" s") && abs((Double(label.dropLast(2)) ?? -1) - t) < 1e-9, "tick \(t): \(label)")
                    #expect(abs((tick["x"] as? Double ?? -1) - (60 + 830 * t / duration)) < 1e-6)
                    #expect(k < marks.count && marks[k] == [0x55, 0x55, 0x55, 255], "tick \(t): mark pixel \(k < marks.count ? marks[k] : [])")
                }
                let column = seen["column"] as? [Int] ?? []
                let top = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
                let colours = [[0xE6, 0x19, 0x4B], [0x3C, 0xB4, 0x4B], [0x43, 0x63, 0xD8], [0xF5, 0x82, 0x31], [0x91, 0x1E, 0xB4], [0x42, 0xD4, 0xF4], [0xF0, 0x32, 0xE6]]
                let lane = 110 - 8, y = Int((Double(lane) * (1 - probabilities[top])).rounded())
                var found = false
                for r in max(0, y - 3)...min(lane - 1, y + 3) {
                    for c in 0..<3 {
                        let p = Array(column[((r * 3 + c) * 4)..<((r * 3 + c) * 4 + 4)])
                        if p[3] > 0, zip(p, colours[top % colours.count]).allSatisfy({ abs($0 - $1) <= 60 }) { found = true }
                    }
                }
                #expect(found, "frame \(k): no \(labels[top]) curve near y \(y) at x \(seen["playhead"] ?? 0)")
                #expect(column.count == 3 * lane * 4)
                #expect(abs((seen["time"] as? Double ?? -1) - (time + next) / 2) < 1e-3 && duration > time)
            }

            // A picture of the page after the analysis (README; $AFFECT_BROWSER_SCREENSHOT keeps it).
            let png = try browser.screenshot()
            let path = ProcessInfo.processInfo.environment["AFFECT_BROWSER_SCREENSHOT"]
                ?? Scratch.path("browser.png")
            try png.write(to: URL(fileURLWithPath: path))
            let picture = try ImageDecoder.decode(path: path)
            #expect(picture.width == 1280 && picture.height > 500)
        }
    }

    /// The guard: a browser that stops answering is killed at the session's limit and the test fails with that
    /// sentence, instead of holding the suite.
    @Test func stuckBrowserIsKilledAtTheLimit() async throws {
        try #require(WebDriver.installed != nil, "the browser tests need Debian's chromium and chromium-driver")
        let limit = 10.0
        let (message, pid) = try await offThread { () -> (String, pid_t?) in
            let browser: WebDriver
            // On a loaded machine the session may not even open within the limit: that is the guard too.
            do { browser = try WebDriver.start(limit: limit) } catch { return ("\(error)", nil) }
            defer { browser.quit() }
            do {
                // A script that never calls back: the driver would wait for its 60 s script timeout.
                _ = try browser.runAsync("/* never calls back */")
                return ("the script returned", browser.driverPID)
            } catch {
                return ("\(error)", browser.driverPID)
            }
        }
        #expect(message.contains("passed its \(limit) s limit") || message.contains("did not open a session within \(limit) s"), "\(message)")
        if let pid {
            // quit() reaped chromedriver: its process id is gone.
            #expect(kill(pid, 0) == -1 && errno == ESRCH)
        }
    }

    @Test func webcamFramesAndMicrophoneGoOverTheStream() async throws {
        // With an audio model loaded, the page sends the microphone too.
        try await withPage(models: audioModels) { browser, port in
            try browser.click("#cam")
            // Chromium's fake camera: a 640×480 test pattern without a face, frames sent one at a time; its fake
            // microphone: a beep, sent as one-second 16 kHz PCM chunks.
            let state = try #require(try browser.waitFor("three frame and two audio answers", seconds: 60, """
                if (live && live.answered >= 3 && live.audio && live.audio.answered >= 2)
                  return { answered: live.answered, sent: live.sent, error: live.error, reply: live.reply,
                           audio: { rate: live.audio.ctx.sampleRate, sent: live.audio.sent, samples: live.audio.samples,
                                    answered: live.audio.answered, error: live.audio.error, reply: live.audio.reply } };
                const s = document.getElementById("status").textContent;
                return s.startsWith("webcam:") || s.startsWith("the stream failed") ? { failed: s } : null;
                """) as? [String: Any])
            #expect(state["failed"] == nil, "\(state)")
            #expect(state["error"] is NSNull, "\(state)")
            #expect((state["sent"] as? Int ?? 0) >= 3)
            let reply = state["reply"] as? [String: Any] ?? [:]
            #expect(reply["width"] as? Int == 640 && reply["height"] as? Int == 480, "\(reply)")
            #expect((reply["faces"] as? [Any])?.count == 0)
            #expect((reply["frame"] as? Int ?? -1) >= 2)
            // The audio: chunks of at least a second at 16 kHz, each answered in order by the audio model, the last
            // answer ending at the samples sent up to its chunk.
            let audio = state["audio"] as? [String: Any] ?? [:]
            #expect(audio["error"] is NSNull, "\(audio)")
            #expect(audio["rate"] as? Int == 16000)
            let samples = audio["samples"] as? [Int] ?? []
            let answered = audio["answered"] as? Int ?? 0
            #expect(samples.count >= answered && (samples.first ?? 0) >= 16000, "\(samples)")
            let heard = audio["reply"] as? [String: Any] ?? [:]
            #expect(heard["model"] as? String == "wav2vec2_tiny" && heard["sample_rate"] as? Int == 16000, "\(heard)")
            #expect(heard["chunk"] as? Int == answered - 1)
            if answered >= 1, samples.count >= answered {
                #expect(abs((heard["end"] as? Double ?? -1) - Double(samples[answered - 1]) / 16000) < 1e-9, "\(heard)")
                #expect(abs((heard["start"] as? Double ?? -1) - Double(answered >= 2 ? samples[answered - 2] : 0) / 16000) < 1e-9)
            }
            #expect((heard["frames"] as? Int ?? 0) >= 49 && (heard["embedding"] as? [Any])?.isEmpty == false, "\(heard)")
            let health = try request(port, "GET", "/healthz")
            #expect(health.json["streams"] as? Int == 1)
            // Stopping the webcam closes the stream on the server too.
            try browser.click("#cam")
            var streams = -1
            for _ in 0..<100 {
                streams = try request(port, "GET", "/healthz").json["streams"] as? Int ?? -1
                if streams == 0 { break }
                usleep(100_000)
            }
            #expect(streams == 0)
            #expect(try browser.run(#"return document.getElementById("status").textContent"#) as? String == "webcam stopped")
        }
    }
}
