/// Deterministic values in [-1, 1) for kernel tests (a linear congruential sequence from `seed`).
func testValues(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int(s >> 40) % 2000 - 1000) / 1000
    }
}
