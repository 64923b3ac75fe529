import Foundation
import AffectTestSupport

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
    private let driver: ChildProcess
    private let watchdog: DispatchWorkItem
    private let limit: Double
    private let expired: ExpiryFlag

    /// Starts chromedriver on a free loopback port and opens a headless session whose camera and microphone
    /// are Chromium's fake devices (a moving test pattern and a beep), granted without a prompt.
    /// `limit` bounds the whole session: past it, chromedriver and Chromium are killed, so a stuck browser
    /// ends the test with a clear failure instead of holding the suite (every call then throws).
    static func start(width: Int = 1280, height: Int = 1000, limit: Double = 240) throws -> WebDriver {
        guard let (browser, driverPath) = installed else { throw ClientError(description: "chromium or chromedriver is not installed") }
        let port = try freePort()
        // chromedriver's profile folders and Chromium's singleton files go to TMPDIR, and were left there:
        // the scratch directory is removed when the tests end.
        let driver = try ChildProcess(driverPath, ["--port=\(port)", "--allowed-ips=127.0.0.1"],
                                      environment: ["TMPDIR": Scratch.directory("chromium").path])
        let expired = ExpiryFlag()
        let watchdog = DispatchWorkItem { expired.set(); driver.killGroup() }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: watchdog)
        do {
            // Up to 20 s for chromedriver to listen (a loaded machine).
            var ready = false
            for _ in 0..<200 {
                if let r = try? request(port, "GET", "/status"), ((r.json["value"] as? [String: Any])?["ready"] as? Bool) == true { ready = true; break }
                guard !expired.value else { break }
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
            let d = WebDriver(port: port, session: id, driver: driver, watchdog: watchdog, limit: limit, expired: expired)
            try d.command("POST", "timeouts", ["script": 60_000, "pageLoad": 30_000])
            return d
        } catch {
            watchdog.cancel()
            driver.stop()
            throw expired.value ? ClientError(description: "chromedriver did not open a session within \(limit) s (killed): \(error)") : error
        }
    }

    /// chromedriver's process id (also its process group's).
    var driverPID: pid_t { driver.pid }

    private init(port: Int, session: String, driver: ChildProcess, watchdog: DispatchWorkItem, limit: Double, expired: ExpiryFlag) {
        self.port = port; self.session = session; self.driver = driver; self.watchdog = watchdog; self.limit = limit
        self.expired = expired
    }

    /// Closes the browser and stops chromedriver (and whatever it left in its process group).
    func quit() {
        if !expired.value { _ = try? command("DELETE", nil, nil) }
        watchdog.cancel()
        driver.stop()
    }

    /// One WebDriver call on the session; its `value`, or the driver's error as a thrown sentence.
    @discardableResult
    func command(_ method: String, _ path: String?, _ body: [String: Any]?) throws -> Any {
        do {
            return try Self.call(port, method, "/session/\(session)" + (path.map { "/" + $0 } ?? ""), body)
        } catch where expired.value {
            throw ClientError(description: "the browser session passed its \(limit) s limit; chromedriver and Chromium were killed (\(method) \(path ?? ""): \(error))")
        }
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

/// Set once, read from any thread (the watchdog sets it, the test thread reads it).
final class ExpiryFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool { lock.withLock { flag } }
    func set() { lock.withLock { flag = true } }
}

/// A child process started with posix_spawn in a process group of its own, with every signal unblocked and
/// SIGTERM/SIGINT/SIGHUP/SIGPIPE at their defaults, standard input and output on /dev/null.
///
/// Why not Foundation's `Process`: it spawns with the calling thread's signal mask, and every thread of this
/// test process descends from libdispatch's workers (Swift concurrency's cooperative pool and the threads they
/// create), which block SIGTERM. chromedriver inherited that mask, so `terminate()` stayed pending forever and
/// `waitUntilExit()` never returned: the stall of the full suite (`/proc/PID/status` of the chromedriver left
/// behind showed SigBlk fffffffe3bfbea27 and SIGTERM in ShdPnd). The group lets the watchdog and `stop()` reach
/// the Chromium processes chromedriver starts too.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var reaped = false

    /// `environment`: variables set for the child on top of this process's.
    init(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        guard r == 0 else { throw ClientError(description: "cannot start \(path): \(String(cString: strerror(r)))") }
        self.pid = pid
    }

    /// Reaps the child if it has exited; true once it is gone.
    private func reap(blocking: Bool) -> Bool {
        lock.withLock {
            if reaped { return true }
            var status: Int32 = 0
            while true {
                let r = waitpid(pid, &status, blocking ? 0 : WNOHANG)
                if r == pid || (r < 0 && errno == ECHILD) { reaped = true; return true }
                if r < 0 && errno == EINTR { continue }
                return false
            }
        }
    }

    /// SIGKILL to the whole group (the watchdog: whatever is blocked on the browser then fails).
    func killGroup() { if !reap(blocking: false) { kill(-pid, SIGKILL) } }

    /// SIGTERM to the group, then waits for the child; after `grace` seconds, SIGKILL (the guard: a child that
    /// ignores SIGTERM must not hold the test). Leftover Chromium processes in the group go with it.
    func stop(grace: Double = 10) {
        if !reap(blocking: false) {
            kill(-pid, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while !reap(blocking: false) && Date() < deadline { usleep(20_000) }
            if !reap(blocking: false) { kill(-pid, SIGKILL); _ = reap(blocking: true) }
        }
        // The group outlives its leader while Chromium's helpers exit; they got the same SIGTERM.
        kill(-pid, SIGKILL)
    }
}
