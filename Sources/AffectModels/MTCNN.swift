import Foundation
import AffectKernels

/// One detected face: box corners in pixels, probability, and five landmarks (eyes, nose, mouth corners).
public struct FaceDetection: Sendable, Equatable {
    public var x1, y1, x2, y2: Float
    public var probability: Float
    /// (x, y) of left eye, right eye, nose, left and right mouth corner.
    public var landmarks: [(x: Float, y: Float)]
    public var area: Float { (x2 - x1) * (y2 - y1) }

    public init(x1: Float, y1: Float, x2: Float, y2: Float, probability: Float, landmarks: [(x: Float, y: Float)]) {
        self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2
        self.probability = probability; self.landmarks = landmarks
    }

    public static func == (a: FaceDetection, b: FaceDetection) -> Bool {
        a.x1 == b.x1 && a.y1 == b.y1 && a.x2 == b.x2 && a.y2 == b.y2 && a.probability == b.probability
    }

    /// Whether the corners, the probability and the landmarks are all finite (``MTCNN`` returns only such
    /// faces; boxes from elsewhere should be checked before they are turned into pixels).
    public var isFinite: Bool {
        [x1, y1, x2, y2, probability].allSatisfy(\.isFinite) && landmarks.allSatisfy { $0.x.isFinite && $0.y.isFinite }
    }

    /// `Int(v)` (truncation toward zero) for a pixel coordinate, which never traps: values beyond ±2²⁴ are
    /// clamped there first (no image is that large, so crops clamped to the image are unchanged) and NaN
    /// gives 0. Check ``isFinite`` first where a NaN must be an error.
    public static func pixel(_ v: Float) -> Int {
        guard !v.isNaN else { return 0 }
        return Int(min(max(v, -16_777_216), 16_777_216))
    }
}

/// MTCNN face detection as `facenet_pytorch.MTCNN.detect` does it, with its P-, R- and O-Net weights.
///
/// ```
/// image pyramid (scales 12/min_face · 0.709^k while the short side ≥ 12 px, area resampling)
///   P-Net (fully convolutional) on each scale → 12×12 windows with p ≥ 0.6 → NMS 0.5 per scale
///   NMS 0.7 over all scales → box regression → square → crop (1-based, clamped) → 24×24 area resample
///   R-Net → p > 0.7 → NMS 0.7 → regression → square → crop → 48×48
///   O-Net → p > 0.7 → landmarks → regression → NMS 0.7 by the smaller box's area ("Min")
/// ```
/// Nets (PReLU, max-pool with ceil mode): P-Net conv 3×3 ×3 → softmax(2) and 4 offsets; R-Net conv ×3 →
/// dense 128; O-Net conv ×4 → dense 256 → softmax(2), 4 offsets, 10 landmark coordinates. The R/O-Net dense
/// layers read the feature map transposed (W, H, C order), as facenet-pytorch's `permute(0, 3, 2, 1)`.
/// Pixels are scaled (x − 127.5) × 0.0078125. Faces come back sorted by area, largest first.
public struct MTCNN: InferenceModel {
    public let arch = "mtcnn"
    /// Smallest face looked for, in pixels; `detect` clamps it to ``minFaceSizeRange`` (below 12 px the
    /// pyramid would upscale the image without bound).
    public var minFaceSize: Float = 40
    public var thresholds: (Float, Float, Float) = (0.6, 0.7, 0.7)
    /// Scale step between pyramid levels; `detect` clamps it to ``factorRange`` (1 or more would never end).
    public var factor: Double = 0.709
    public static let minFaceSizeRange: ClosedRange<Float> = 12...10_000
    public static let factorRange: ClosedRange<Double> = 0.1...0.95

    /// R- or O-Net: conv + PReLU layers with max pooling (kernel, stride; ceil mode) after some, a dense
    /// layer with PReLU on the feature map read in (W, H, C) order, and the output layers.
    struct Net {
        var convs: [SmallConv]
        var pools: [(Int, Int)?]
        var dense: Linear
        var heads: [Linear]
    }
    /// P-Net: three 3×3 conv + PReLU layers (max pool 2×2 after the first), then both 1×1 heads as one
    /// layer (channels 0–1 face logits, 2–5 box offsets). Direct small-channel convolutions.
    struct PNet {
        var convs: [SmallConv]
        var heads: SmallConv
    }
    let pnet: PNet, rnet: Net, onet: Net

    /// The conv kernels of facenet-pytorch's nets. They are part of the architecture, not free parameters: the
    /// P-Net's 12×12 windows at stride 2 and the 3×3 maps the R/O-Net dense layers read follow from them.
    static let kernels = (pnet: [3, 3, 3], rnet: [3, 3, 2], onet: [3, 3, 3, 2])

    public init(weights w: WeightFile) throws {
        try w.require(arch: "mtcnn")
        func convPReLU(_ n: String, _ i: Int, cin: Int, kernel: Int) throws -> SmallConv {
            let weight = try w.convWeight("\(n).conv\(i).weight", inPerGroup: cin, kernel: kernel)
            let c = weight.shape[0]
            return SmallConv(weight: weight, bias: try w.tensor("\(n).conv\(i).bias", shape: [c]),
                             prelu: try w.tensor("\(n).prelu\(i).weight", shape: [c]).array)
        }
        func convs(_ n: String, _ kernels: [Int]) throws -> [SmallConv] {
            var layers: [SmallConv] = []
            for (i, k) in kernels.enumerated() {
                layers.append(try convPReLU(n, i + 1, cin: layers.last?.outChannels ?? 3, kernel: k))
            }
            return layers
        }
        /// The dense layer on the last 3×3 map (read in W, H, C order), with PReLU.
        func densePReLU(_ p: String, _ slopes: String, cin: Int) throws -> Linear {
            let o = try w.tensor("\(p).weight", shape: [-1, cin]).shape[0]
            return try w.linear(p, in: cin, activation: .prelu(try w.tensor("\(slopes).weight", shape: [o]).array))
        }
        let p = try convs("pnet", Self.kernels.pnet), c = p[2].outChannels
        let cls = try w.convWeight("pnet.conv4_1.weight", out: 2, inPerGroup: c, kernel: 1)
        let box = try w.convWeight("pnet.conv4_2.weight", out: 4, inPerGroup: c, kernel: 1)
        let heads = SmallConv(weight: Tensor(shape: [6, c, 1, 1], values: cls.array + box.array),
                              bias: Tensor(shape: [6], values: try w.tensor("pnet.conv4_1.bias", shape: [2]).array
                                                                + w.tensor("pnet.conv4_2.bias", shape: [4]).array))
        pnet = PNet(convs: p, heads: heads)
        // Heads: face logits (2), box offsets (4) and, for the O-Net, landmark coordinates (10).
        let r = try convs("rnet", Self.kernels.rnet)
        let rd = try densePReLU("rnet.dense4", "rnet.prelu4", cin: 3 * 3 * r[2].outChannels)
        rnet = Net(convs: r, pools: [(3, 2), (3, 2), nil], dense: rd,
                   heads: [try w.linear("rnet.dense5_1", in: rd.outFeatures, out: 2),
                           try w.linear("rnet.dense5_2", in: rd.outFeatures, out: 4)])
        let o = try convs("onet", Self.kernels.onet)
        let od = try densePReLU("onet.dense5", "onet.prelu5", cin: 3 * 3 * o[3].outChannels)
        onet = Net(convs: o, pools: [(3, 2), (3, 2), (2, 2), nil], dense: od,
                   heads: [try w.linear("onet.dense6_1", in: od.outFeatures, out: 2),
                           try w.linear("onet.dense6_2", in: od.outFeatures, out: 4),
                           try w.linear("onet.dense6_3", in: od.outFeatures, out: 10)])
    }

    /// The conv layers of R- or O-Net on one `[S, S, 3]` crop, flattened in (W, H, C) order into `into`.
    func trunk(_ net: Net, _ x: Tensor, into feature: UnsafeMutablePointer<Float>) {
        var x = x
        for (c, pool) in zip(net.convs, net.pools) {
            if let (k, s) = pool {
                x = c.usesWinograd ? maxPoolCeil(c(x), kernel: k, stride: s) : c.directMaxPooled(x, kernel: k, stride: s)
            } else {
                x = c(x)
            }
        }
        let (h, w, stride) = (x.shape[0], x.shape[1], x.shape[2])
        let c = net.convs[net.convs.count - 1].outChannels
        for xx in 0..<w { for y in 0..<h {
            (feature + (xx * h + y) * c).update(from: x.data + (y * w + xx) * stride, count: c)
        } }
    }

    /// P-Net on one normalised `[H, W, 3]` image: `[H', W', 16]`, channels 0–1 the face logits and 2–5 the
    /// box offsets (the rest is padding).
    func pnetMaps(_ x: Tensor) -> Tensor {
        var f = pnet.convs[0].directMaxPooled(x, kernel: 2, stride: 2)
        f = pnet.convs[2](pnet.convs[1](f))
        return pnet.heads(f)
    }

    /// P-Net on normalised NHWC pixels: face probabilities `[N, H', W', 2]` (softmax) and box offsets `[N, H', W', 4]`.
    func runPNet(_ x: Tensor) -> (prob: Tensor, reg: Tensor) {
        let maps = (0..<x.shape[0]).map { pnetMaps(x.item($0)) }
        let (ph, pw) = (maps[0].shape[0], maps[0].shape[1])
        let prob = Tensor(uninitialized: [x.shape[0], ph, pw, 2]), reg = Tensor(uninitialized: [x.shape[0], ph, pw, 4])
        for (n, m) in maps.enumerated() {
            for i in 0..<(ph * pw) {
                let c = m.data + i * 16
                let p1 = faceProbability(c[0], c[1])
                prob.data[(n * ph * pw + i) * 2] = 1 - p1; prob.data[(n * ph * pw + i) * 2 + 1] = p1
                for k in 0..<4 { reg.data[(n * ph * pw + i) * 4 + k] = c[2 + k] }
            }
        }
        return (prob, reg)
    }

    /// The second softmax output of two logits.
    @inline(__always) func faceProbability(_ l0: Float, _ l1: Float) -> Float { 1 / (1 + exp(l0 - l1)) }

    /// Pyramid levels' inputs: the frame area-resampled to each size and normalised, in one pass down the frame.
    func pyramidInputs(_ image: RGBImage, sizes: [(height: Int, width: Int)]) -> [Tensor] {
        let inputs = sizes.map { Tensor(uninitialized: [$0.height, $0.width, 3]) }
        image.pixels.withUnsafeBufferPointer { px in
            resizeAreaBytesIntegerPyramid(px.baseAddress!, rowStride: image.width * 3, height: image.height, width: image.width,
                                          channels: 3, sizes: sizes, scale: 0.0078125, offset: -127.5 * 0.0078125,
                                          into: inputs.map(\.data))
        }
        return inputs
    }

    /// One pyramid level: P-Net on its input (``pyramidInputs(_:sizes:)``) and the 12×12 windows with
    /// p ≥ the first threshold after NMS 0.5 as rows x1 y1 x2 y2 score r0 r1 r2 r3.
    func pyramidLevel(_ x: Tensor, scale: Double) -> [[Float]] {
        let maps = pnetMaps(x)
        let (ph, pw) = (maps.shape[0], maps.shape[1])
        var boxes: [[Float]] = []
        let s32 = Float(scale)
        for y in 0..<ph { for xx in 0..<pw {
            let c = maps.data + (y * pw + xx) * 16
            let p = faceProbability(c[0], c[1])
            if p >= thresholds.0 {
                boxes.append([((2 * Float(xx) + 1) / s32).rounded(.down), ((2 * Float(y) + 1) / s32).rounded(.down),
                              ((2 * Float(xx) + 12) / s32).rounded(.down), ((2 * Float(y) + 12) / s32).rounded(.down),
                              p, c[2], c[3], c[4], c[5]])
            }
        } }
        return nms(boxes, threshold: 0.5, byMin: false, plusOne: false).map { boxes[$0] }
    }

    /// R-Net or O-Net on `[N, S, S, 3]` crops, one crop per task; the dense layers run as one matrix product
    /// over all crops.
    func runDense(_ net: Net, _ x: Tensor) -> [Tensor] {
        let n = x.shape[0]
        let features = Tensor(uninitialized: [n, net.dense.inFeatures])
        parallelFor(n) { k0, k1 in
            for k in k0..<k1 { trunk(net, x.item(k), into: features.data + k * net.dense.inFeatures) }
        }
        let d = net.dense(features)
        return net.heads.enumerated().map { i, h in i == 0 ? softmax(h(d)) : h(d) }
    }

    /// Faces in `image`, as `facenet_pytorch.MTCNN(min_face_size:, thresholds:, factor:).detect` finds them.
    public func detect(_ image: RGBImage) -> [FaceDetection] {
        let (h, w) = (image.height, image.width)
        guard h >= 12, w >= 12 else { return [] }
        // Pyramid scales 12/min_face · factor^k while the short side stays ≥ 12 px.
        var levels: [(scale: Double, height: Int, width: Int)] = []
        let minFace = minFaceSize.isNaN ? 40 : min(max(minFaceSize, Self.minFaceSizeRange.lowerBound), Self.minFaceSizeRange.upperBound)
        let factor = factor.isNaN ? 0.709 : min(max(factor, Self.factorRange.lowerBound), Self.factorRange.upperBound)
        let m = 12.0 / Double(minFace)
        var minl = Double(min(h, w)) * m
        var scale = m
        while minl >= 12 {
            levels.append((scale, Int(Double(h) * scale + 1), Int(Double(w) * scale + 1)))
            scale *= factor
            minl *= factor
        }
        // Levels run in parallel, each on one thread: the largest level is about as much work as all the
        // others together, so two threads split evenly without the per-layer fork-join of small levels.
        var perLevel = [[[Float]]](repeating: [], count: levels.count)
        let groups = MTCNN.balance(levels.map { $0.height * $0.width }, into: Threading.threads)
        perLevel.withUnsafeMutableBufferPointer { out in
            parallelFor(groups.count) { g0, g1 in
                for g in g0..<g1 {
                    // The group's levels are resampled together, in one pass down the frame.
                    let inputs = pyramidInputs(image, sizes: groups[g].map { (levels[$0].height, levels[$0].width) })
                    for (l, x) in zip(groups[g], inputs) { out[l] = pyramidLevel(x, scale: levels[l].scale) }
                }
            }
        }
        // Candidate rows: x1 y1 x2 y2 score r0 r1 r2 r3, in level order.
        let candidates = perLevel.flatMap { $0 }
        var boxes = nms(candidates, threshold: 0.7, byMin: false, plusOne: false).map { candidates[$0] }
        // Rows that are not finite (weights whose products overflow) are dropped at every stage: they would
        // crop nothing meaningful and cannot be truncated to pixels.
        boxes = boxes.map { b in
            let (rw, rh) = (b[2] - b[0], b[3] - b[1])
            return square([b[0] + b[5] * rw, b[1] + b[6] * rh, b[2] + b[7] * rw, b[3] + b[8] * rh, b[4]])
        }.filter(Self.isFinite)
        guard !boxes.isEmpty else { return [] }

        // R-Net.
        var out = runDense(rnet, crops(image, boxes, size: 24))
        var refined: [[Float]] = []
        for (i, b) in boxes.enumerated() where out[0].data[i * 2 + 1] > thresholds.1 {
            let r = out[1].data + i * 4
            refined.append([b[0], b[1], b[2], b[3], out[0].data[i * 2 + 1], r[0], r[1], r[2], r[3]])
        }
        boxes = nms(refined, threshold: 0.7, byMin: false, plusOne: false).map { square(regress(refined[$0])) }.filter(Self.isFinite)
        guard !boxes.isEmpty else { return [] }

        // O-Net.
        out = runDense(onet, crops(image, boxes, size: 48))
        var faces: [[Float]] = []
        var marks: [[(x: Float, y: Float)]] = []
        for (i, b) in boxes.enumerated() where out[0].data[i * 2 + 1] > thresholds.2 {
            let score = out[0].data[i * 2 + 1]
            let (bw, bh) = (b[2] - b[0] + 1, b[3] - b[1] + 1)
            let l = out[2].data + i * 10
            let landmarks = (0..<5).map { k in (x: bw * l[k] + b[0] - 1, y: bh * l[k + 5] + b[1] - 1) }
            let r = out[1].data + i * 4
            let face = regress([b[0], b[1], b[2], b[3], score, r[0], r[1], r[2], r[3]])
            guard Self.isFinite(face), landmarks.allSatisfy({ $0.x.isFinite && $0.y.isFinite }) else { continue }
            marks.append(landmarks)
            faces.append(face)
        }
        let keep = nms(faces, threshold: 0.7, byMin: true, plusOne: true)
        var result = keep.map { FaceDetection(x1: faces[$0][0], y1: faces[$0][1], x2: faces[$0][2], y2: faces[$0][3],
                                              probability: faces[$0][4], landmarks: marks[$0]) }
        result.sort { $0.area > $1.area }
        return result
    }

    /// Splits work items (sizes) into at most `parts` groups of similar total size, largest first to the
    /// lightest group.
    static func balance(_ sizes: [Int], into parts: Int) -> [[Int]] {
        let n = max(1, min(parts, sizes.count))
        var groups = [[Int]](repeating: [], count: n), load = [Int](repeating: 0, count: n)
        for i in sizes.indices.sorted(by: { sizes[$0] > sizes[$1] }) {
            let g = load.indices.min { load[$0] < load[$1] }!
            groups[g].append(i); load[g] += sizes[i]
        }
        return groups.filter { !$0.isEmpty }
    }

    static func isFinite(_ row: [Float]) -> Bool { row.allSatisfy(\.isFinite) }

    /// facenet-pytorch's `bbreg`: offsets scaled by the box size + 1.
    func regress(_ b: [Float]) -> [Float] {
        let (bw, bh) = (b[2] - b[0] + 1, b[3] - b[1] + 1)
        return [b[0] + b[5] * bw, b[1] + b[6] * bh, b[2] + b[7] * bw, b[3] + b[8] * bh, b[4]]
    }

    /// `rerec`: the square with the box's centre and its longer side.
    func square(_ b: [Float]) -> [Float] {
        let (bw, bh) = (b[2] - b[0], b[3] - b[1])
        let l = max(bw, bh)
        let x1 = b[0] + bw * 0.5 - l * 0.5, y1 = b[1] + bh * 0.5 - l * 0.5
        return [x1, y1, x1 + l, y1 + l, b[4]]
    }

    /// `pad` + crop + area resample: boxes truncated to integers, clamped to [1, size], 1-based inclusive.
    func crops(_ image: RGBImage, _ boxes: [[Float]], size: Int) -> Tensor {
        let (h, w) = (image.height, image.width)
        let out = Tensor.zeros([boxes.count, size, size, 3])
        image.pixels.withUnsafeBufferPointer { px in
            let base = px.baseAddress!
            parallelFor(boxes.count) { k0, k1 in
                for k in k0..<k1 {
                    let b = boxes[k]
                    let x = max(FaceDetection.pixel(b[0]), 1), y = max(FaceDetection.pixel(b[1]), 1)
                    let ex = min(FaceDetection.pixel(b[2]), w), ey = min(FaceDetection.pixel(b[3]), h)
                    guard ey > y - 1, ex > x - 1 else { continue }
                    resizeAreaBytesInteger(base + ((y - 1) * w + (x - 1)) * 3, rowStride: w * 3, height: ey - y + 1, width: ex - x + 1,
                                    channels: 3, outHeight: size, outWidth: size, scale: 0.0078125, offset: -127.5 * 0.0078125,
                                    into: out.data + k * size * size * 3)
                }
            }
        }
        return out
    }

    /// Greedy NMS, highest score first. `byMin`: overlap over the smaller area (facenet's "Min");
    /// `plusOne`: pixel-inclusive areas (numpy NMS) rather than torchvision's.
    func nms(_ boxes: [[Float]], threshold: Float, byMin: Bool, plusOne: Bool) -> [Int] {
        let e: Float = plusOne ? 1 : 0
        let order = boxes.indices.sorted { boxes[$0][4] > boxes[$1][4] }
        // Corners and areas unpacked once, in score order; a box stays while no kept box overlaps it beyond
        // the threshold (the list of survivors is not rebuilt for every kept box).
        let n = order.count
        var x1 = [Float](repeating: 0, count: n), y1 = x1, x2 = x1, y2 = x1, area = x1
        for (r, i) in order.enumerated() {
            let b = boxes[i]
            (x1[r], y1[r], x2[r], y2[r]) = (b[0], b[1], b[2], b[3])
            area[r] = (b[2] - b[0] + e) * (b[3] - b[1] + e)
        }
        var suppressed = [Bool](repeating: false, count: n)
        var keep: [Int] = []
        for r in 0..<n where !suppressed[r] {
            keep.append(order[r])
            for q in (r + 1)..<max(r + 1, n) where !suppressed[q] {
                let iw = max(0, min(x2[r], x2[q]) - max(x1[r], x1[q]) + e)
                let ih = max(0, min(y2[r], y2[q]) - max(y1[r], y1[q]) + e)
                let inter = iw * ih
                let o = byMin ? inter / min(area[r], area[q]) : inter / (area[r] + area[q] - inter)
                if !(o <= threshold) { suppressed[q] = true }
            }
        }
        return keep
    }

    // MARK: InferenceModel (the nets on their own, for `affect verify`/`bench`)

    /// Largest P-Net input side `run` takes (a 4K frame fits).
    static let maxPNetSide = 4096

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        if inputs.floats["pnet"] != nil {
            let x = try inputs.pixels("pnet", channels: 3, sides: 12 ... Self.maxPNetSide, source: source)
            let (p, r) = runPNet(x.nchwToNHWC())
            out["pnet.prob"] = p.nhwcToNCHW(); out["pnet.reg"] = r.nhwcToNCHW()
        }
        for (name, net, size) in [("rnet", rnet, 24), ("onet", onet, 48)] where inputs.floats[name] != nil {
            let x = try inputs.pixels(name, channels: 3, sides: size ... size, source: source)
            let o = runDense(net, x.nchwToNHWC())
            out["\(name).prob"] = o[0]; out["\(name).reg"] = o[1]
            if o.count > 2 { out["\(name).landmarks"] = o[2] }
        }
        if out.isEmpty { throw AffectError.badInput("\(source): no `input.pnet`, `input.rnet` or `input.onet` tensor.") }
        return out
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        ModelInputs(floats: ["pnet": Tensor.filled([shape.batch, 3, 108, 192], with: 0.1)])
    }
}
