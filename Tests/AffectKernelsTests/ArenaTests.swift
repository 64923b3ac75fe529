import Testing
import AffectKernels

/// The activation pool: freed buffers come back for the same size class, or for a smaller request up to
/// half their size, and idle memory stays under the cap.
@Suite struct ArenaTests {
    @Test func sameSizeClassIsReused() {
        let arena = Arena()
        var a: TensorStorage? = arena.allocate(100_000)
        let p = a!.pointer
        a = nil
        let b = arena.allocate(100_000)
        #expect(b.pointer == p)
        // Still live: a second request gets its own memory.
        #expect(arena.allocate(100_000).pointer != p)
    }

    @Test func smallerRequestTakesTheSmallestFittingBuffer() {
        let arena = Arena()
        var big: TensorStorage? = arena.allocate(400_000), mid: TensorStorage? = arena.allocate(150_000)
        let (pBig, pMid) = (big!.pointer, mid!.pointer)
        #expect(big!.capacity >= 400_000 && mid!.capacity >= 150_000)
        big = nil; mid = nil
        // 120 000 fits both; the 150 000 one is within twice the size and smaller.
        let c = arena.allocate(120_000)
        #expect(c.pointer == pMid && c.capacity >= 150_000)
        // 150 000 no longer finds the mid buffer; the big one is more than twice its size.
        let d = arena.allocate(150_000)
        #expect(d.pointer != pBig && d.pointer != pMid)
        // 250 000 takes the big one (less than twice), with its whole capacity.
        let e = arena.allocate(250_000)
        #expect(e.pointer == pBig && e.capacity >= 400_000)
    }

    @Test func idleMemoryStaysUnderTheCap() {
        let arena = Arena()
        arena.maxCachedFloats = 300_000
        var a: TensorStorage? = arena.allocate(200_000)
        let pa = a!.pointer, capacity = a!.capacity
        #expect(arena.idleFloats == 0)
        do {
            let b = arena.allocate(200_000)
            #expect(b.pointer != pa)
            a = nil
            #expect(arena.idleFloats == capacity)
        }   // b goes here: over the cap, so returned to the system, not kept
        #expect(arena.idleFloats == capacity)
        let c = arena.allocate(200_000)
        #expect(c.pointer == pa)
        #expect(arena.idleFloats == 0)
    }
}
