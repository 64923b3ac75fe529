import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Bounds what a connection may do before its first request head is parsed.
///
/// Hummingbird's HTTP channel with a WebSocket upgrade leaves that stretch unbounded: its idle timeout is
/// installed only once a head has been parsed, and a head the parser rejects (`Content-Length: abc`, two
/// different lengths, a header past the size limit) fails inside the upgrade negotiation, which then waits for
/// bytes that will never make a request. Either way the connection, its socket and descriptor, stayed open for as
/// long as the client liked: enough of them and the server stops accepting. Behind this guard the first head
/// must arrive complete within `headTimeout`, and a malformed one is answered 400 and the connection closed,
/// as Hummingbird already does for every later request on the connection.
struct GuardedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    let inner: Inner
    let headTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // At the tail, after the upgrade handler: nothing reaches it until the negotiation has decided.
            try channel.pipeline.syncOperations.addHandler(RequestHeadGuard(timeout: headTimeout))
            return value
        }
    }

    func handle(value: Inner.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// The handler behind ``GuardedChildChannel``. The upgrade negotiation holds back every inbound message until it
/// has a complete head and has decided, so the first message (or error) that reaches this handler tells it the
/// negotiation's outcome; from then on it steps out of the pipeline.
final class RequestHeadGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundOut = HTTPServerResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var done = false

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolated()
        deadline = loop.scheduleTask(in: timeout) { [self] in expire(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
        stepOut(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !done, error is HTTPParserError, negotiating(context) else {
            context.fireErrorCaught(error)
            return
        }
        done = true
        deadline?.cancel()
        let head = HTTPResponseHead(version: .http1_1, status: .badRequest,
                                    headers: HTTPHeaders([("connection", "close"), ("content-length", "0")]))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// The negotiation is still waiting for a head while the HTTP decoder is in the pipeline (an upgrade to a
    /// WebSocket removes it) and nothing has come through.
    private func negotiating(_ context: ChannelHandlerContext) -> Bool {
        !done && (try? context.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)) != nil
    }

    private func expire(_ context: ChannelHandlerContext) {
        if negotiating(context) {
            done = true
            context.close(promise: nil)
        } else {
            stepOut(context)
        }
    }

    private func stepOut(_ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        deadline?.cancel()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
