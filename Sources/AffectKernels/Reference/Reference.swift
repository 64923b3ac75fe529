/// The plain loop of every operator in `Ops/`: the math as the papers write it, for tests and readers.
///
/// Each fast kernel in `Ops/` is tuned (SIMD vectors, register tiles, packed weights, threads, fused
/// epilogues); each function here computes the same result the obvious way: nested loops over Swift arrays,
/// sums in `Double`, one thread, no shortcuts. The tests run every fast kernel against its reference on
/// shapes that reach each of its code paths, so a reader can learn what an operator computes here and trust
/// that the fast version agrees.
///
/// Conventions, the same as the fast kernels':
/// - Images are channels-last, `[N, H, W, C]`; sequences are `[N, T, C]`; a row-major array's last axis is
///   contiguous.
/// - Weights are in PyTorch's layouts: a convolution `[out, in/groups, kh, kw]` (1-D: `[out, in/groups, k]`),
///   a linear layer `[out, in]`.
/// - Activations (``Activation``) are applied after the bias and any residual.
///
/// The references are slow on purpose (no bounds-check removal, no blocking); use them on test-sized inputs.
public enum Reference {
    /// A row-major array of `Float` values and its shape: what the references take and return.
    public struct Values: Sendable, Equatable {
        public var shape: [Int]
        public var data: [Float]

        public init(shape: [Int], data: [Float]) {
            precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
            self.shape = shape; self.data = data
        }

        /// A copy of the tensor's values.
        public init(_ tensor: Tensor) { self.init(shape: tensor.shape, data: tensor.array) }

        /// Zeros of `shape`.
        public init(zeros shape: [Int]) { self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *))) }

        public var count: Int { data.count }
        public var rank: Int { shape.count }
    }
}
