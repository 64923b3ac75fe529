import Foundation

/// Headless Chromium driven through chromedriver with the W3C WebDriver protocol: plain JSON over HTTP on
/// loopback (the tests' own client, TestClient.swift), no Selenium, no Python.
final class WebDriver {
    /// Chromium and chromedriver as installed by Debian's `chromium` and `chromium-driver` packages
    /// (scripts/install-deps.sh), or found on PATH; nil when either is missing.
    static let installed: (browser: String, driver: String)? = {
        func find(_ names: [String]) -> String? {
            let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
            for n in names { for d in dirs where FileManager.default.isExecutableFile(atPath: d + "/" + n) { return d + "/" + n } }
            return nil
        }
        guard let b = find(["chromium", "chromium-browser", "google-chrome"]), let d = find(["chromedriver"]) else { return nil }
        return (b, d)
    }()

    let port: Int
    let session: String
    private let process: Process

    /// Starts chromedriver on a free loopback port and opens a headless session whose camera and microphone
    /// are Chromium's fake devices (a moving test pattern and a beep), granted without a prompt.
    static func start(width: Int = 1280, height: Int = 1000) throws -> WebDriver {
        guard let (browser, driver) = installed else { throw ClientError(description: "chromium or chromedriver is not installed") }
        let port = try freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: driver)
        p.arguments = ["--port=\(port)", "--allowed-ips=127.0.0.1"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        do {
            // Up to 20 s for chromedriver to listen (a loaded machine).
            var ready = false
            for _ in 0..<200 {
                if let r = try? request(port, "GET", "/status"), ((r.json["value"] as? [String: Any])?["ready"] as? Bool) == true { ready = true; break }
                usleep(100_000)
            }
            guard ready else { throw ClientError(description: "chromedriver did not start on port \(port)") }
            let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                        "--disable-extensions", "--mute-audio", "--window-size=\(width),\(height)",
                        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                        "--autoplay-policy=no-user-gesture-required"]
            let caps: [String: Any] = ["capabilities": ["alwaysMatch": [
                "browserName": "chrome", "goog:chromeOptions": ["binary": browser, "args": args]]]]
            let value = try call(port, "POST", "/session", caps)
            guard let id = (value as? [String: Any])?["sessionId"] as? String else { throw ClientError(description: "no session id in \(value)") }
            let d = WebDriver(port: port, session: id, process: p)
            _ = try d.command("POST", "timeouts", ["script": 60_000, "pageLoad": 30_000])
            return d
        } catch {
            p.terminate(); p.waitUntilExit()
            throw error
        }
    }

    private init(port: Int, session: String, process: Process) {
        self.port = port; self.session = session; self.process = process
    }

    /// Closes the browser and stops chromedriver.
    func quit() {
        _ = try? command("DELETE", nil, nil)
        process.terminate()
        process.waitUntilExit()
    }

    /// One WebDriver call on the session; its `value`, or the driver's error as a thrown sentence.
    @discardableResult
    func command(_ method: String, _ path: String?, _ body: [String: Any]?) throws -> Any {
        try Self.call(port, method, "/session/\(session)" + (path.map { "/" + $0 } ?? ""), body)
    }

    static func call(_ port: Int, _ method: String, _ path: String, _ body: [String: Any]?) throws -> Any {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let r = try request(port, method, path, body: data, headers: data == nil ? [:] : ["Content-Type": "application/json; charset=utf-8"])
        let value = r.json["value"] ?? NSNull()
        guard r.status == 200 else {
            let v = value as? [String: Any]
            throw ClientError(description: "WebDriver \(method) \(path): \(r.status) \(v?["error"] ?? "") \(v?["message"] ?? r.text)")
        }
        return value
    }

    func open(_ url: String) throws { try command("POST", "url", ["url": url]) }

    /// The element a CSS selector finds first.
    func element(_ css: String) throws -> String {
        let v = try command("POST", "element", ["using": "css selector", "value": css]) as? [String: Any]
        guard let id = v?["element-6066-11e4-a52e-4f735466cecf"] as? String else { throw ClientError(description: "no element \(css)") }
        return id
    }

    /// Types `text` into an element; for a file input, `text` is the path of the file to choose.
    func type(_ css: String, _ text: String) throws {
        try command("POST", "element/\(try element(css))/value", ["text": text])
    }

    func click(_ css: String) throws { try command("POST", "element/\(try element(css))/click", [:]) }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its result.
    func run(_ script: String, _ args: [Any] = []) throws -> Any {
        try command("POST", "execute/sync", ["script": script, "args": args])
    }

    /// Runs `script`, which calls its last argument (`arguments[arguments.length - 1]`) with the result.
    func runAsync(_ script: String, _ args: [Any] = []) throws -> Any {
        try command("POST", "execute/async", ["script": script, "args": args])
    }

    /// Runs `script` until it returns something other than null / false, every 100 ms, for at most `seconds`.
    func waitFor(_ what: String, seconds: Double, _ script: String) throws -> Any {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let v = try run(script)
            if !(v is NSNull), (v as? Bool) != false { return v }
            guard Date() < deadline else { throw ClientError(description: "timed out after \(seconds) s waiting for \(what)") }
            usleep(100_000)
        }
    }

    /// A PNG of the window.
    func screenshot() throws -> Data {
        guard let b64 = try command("GET", "screenshot", nil) as? String, let png = Data(base64Encoded: b64) else {
            throw ClientError(description: "the screenshot is not base64")
        }
        return png
    }
}

/// A TCP port nothing listens on now (bound then released; the caller binds it next).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError(description: "socket failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw ClientError(description: "cannot bind a loopback port: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
