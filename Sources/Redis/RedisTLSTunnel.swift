// TLS for `rediss://`, in front of a hiredis that has none.
//
// Debian 12's hiredis 0.14.1 cannot speak TLS, so for a `rediss://` URL
// `RedisConnection.connect` does not let hiredis dial. It calls
// `RedisTLSTunnel.open`, which
//
//   1. makes an unnamed `socketpair(AF_UNIX, SOCK_STREAM)` and gives one end
//      to SwiftNIO as a channel ("local");
//   2. opens a TCP connection to host:port with a TLS client handler in front
//      ("remote"; NIOSSL: SNI = the host, the certificate chain verified
//      against the trust roots and the host name against the certificate),
//      and relays bytes both ways between the two channels;
//   3. waits for the TLS handshake, DNS and TCP connect included, at most
//      `connectTimeout`, and only then returns the other end of the pair,
//      which hiredis adopts with `redisConnectFd`.
//
//     hiredis ─ fd ══ socketpair ══ local channel ⇄ Relay ⇄ remote channel ─ TLS ─ Redis
//
// Nothing listens: the pair has no name in any namespace, so no other process
// can reach the plain-text side (both ends are close-on-exec, so no child
// process inherits one either).
//
// Threads: `open` blocks (it waits for the handshake) and is called only where
// hiredis is called, from a NIOThreadPool work item — never on a Swift
// concurrency cooperative thread, never on an event loop. Both channels of a
// connection live on one event loop of `MultiThreadedEventLoopGroup.singleton`
// (the process' shared loops, which the HTTP client also uses), so a
// connection costs file descriptors, not a thread. The relay handlers run only
// on that loop.
//
// Life: either side closing closes the other. hiredis freeing its context
// closes its end → the local channel reads EOF → the TLS connection is closed
// (close_notify). The server closing the TLS connection (restart, idle
// `timeout`) closes the local channel → hiredis reads EOF, which is what
// `RedisConnection.looksAlive` looks for before reusing an idle connection.
// hiredis' socket timeouts (`commandTimeout`) apply to its end of the pair as
// they would to a TCP socket: a server that stops answering makes a command
// time out, hiredis' context is dropped, and that closes the tunnel.

import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// TLS settings of a `rediss://` connection.
public struct RedisTLS: Sendable, Equatable {
    /// A PEM file of CA certificates trusted *instead of* the system trust
    /// roots (a private CA); `nil`: the system roots (Debian's
    /// `ca-certificates`). Read once per process, on first use.
    public var caFile: String?

    public init(caFile: String? = nil) {
        self.caFile = caFile
    }

    /// Reads the trust roots and builds the TLS context, so that a missing,
    /// unreadable or empty CA file is reported at start rather than on the
    /// first connection; connections reuse the context. Reads a file: call it
    /// at start-up or on a thread that may block.
    public func prepare() throws(RedisTLSError) {
        _ = try RedisTLSContexts.context(for: self)
    }

    /// Where the trust comes from, for messages.
    var trustDescription: String {
        caFile.map { "the CA file \($0)" } ?? "the system trust roots"
    }
}

/// The TLS trust roots could not be loaded. `description` is one sentence an
/// operator can act on.
public struct RedisTLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

// MARK: - TLS contexts, one per trust setting

/// Building a context parses every trusted certificate, so it is done once per
/// setting and kept for the life of the process.
enum RedisTLSContexts {
    /// Key: the CA file's path, "" for the system roots.
    private static let contexts = Mutex<[String: NIOSSLContext]>([:])

    static func context(for tls: RedisTLS) throws(RedisTLSError) -> NIOSSLContext {
        let key = tls.caFile ?? ""
        if let cached = contexts.withLock({ $0[key] }) { return cached }
        let made = try make(tls)
        return contexts.withLock { contexts in
            if let raced = contexts[key] { return raced }
            contexts[key] = made
            return made
        }
    }

    private static func make(_ tls: RedisTLS) throws(RedisTLSError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile = tls.caFile {
            guard access(caFile, R_OK) == 0 else {
                let code = errno
                throw RedisTLSError("cannot read the CA file \(caFile): \(String(cString: strerror(code)))")
            }
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw RedisTLSError("the CA file \(caFile) is not a PEM file of certificates (\(error))")
            }
            guard !roots.isEmpty else {
                throw RedisTLSError("the CA file \(caFile) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
            }
            configuration.trustRoots = .certificates(roots)
        } else {
            configuration.trustRoots = .default
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisTLSError("cannot set up TLS with \(tls.trustDescription): \(error)")
        }
    }
}

// MARK: - the tunnel

enum RedisTLSTunnel {
    /// Connects to `configuration.host:port` over TLS and returns the
    /// plain-text end of a socketpair relayed through that connection, for
    /// `redisConnectFd` (which then owns it). Returns only once the TLS
    /// handshake succeeded; fails within `connectTimeout` with a message that
    /// names `endpoint` and the reason (DNS, TCP, certificate, not TLS).
    /// Blocking: call on a thread-pool thread.
    static func open(_ configuration: RedisConfiguration, tls: RedisTLS, endpoint: String) throws(RedisError) -> Int32 {
        let sslContext: NIOSSLContext
        do {
            sslContext = try RedisTLSContexts.context(for: tls)
        } catch {
            throw RedisError(.connection, "connect to \(endpoint): \(error)")
        }
        let host = configuration.host
        // SNI carries a name, never an address (RFC 6066); with an IP address
        // NIOSSL checks the certificate against the address instead.
        let serverName: String? = (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
        let timeout = configuration.connectTimeout

        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            let code = errno
            throw RedisError(.connection, "connect to \(endpoint): socketpair() failed: \(String(cString: strerror(code)))")
        }
        let hiredisEnd = pair[0]
        let loop = MultiThreadedEventLoopGroup.singleton.next()

        // The plain-text side. NIO owns `pair[1]` from here on (it closes it
        // with the channel, also when setting the channel up fails).
        let local: Channel
        do {
            local = try ClientBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Relay()) }
                }
                .withConnectedSocket(pair[1])
                .wait()
        } catch {
            close(hiredisEnd)
            throw RedisError(.connection, "connect to \(endpoint): cannot set up the TLS relay: \(error)")
        }

        // The TLS side. With several addresses (IPv4 and IPv6) NIO may try
        // more than one connection; only the one it returns is joined to the
        // local side and reports its handshake.
        let handshake = loop.makePromise(of: Void.self)
        let progress = TunnelProgress()
        let deadline = loop.scheduleTask(in: TimeAmount(timeout)) { handshake.fail(TunnelFailure.timedOut) }
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLClientHandler(context: sslContext, serverHostname: serverName),
                        HandshakeWatcher(),
                        Relay())
                }
            }
            .connect(host: host, port: configuration.port)
            .flatMapThrowing { channel in
                // On `loop`: the future belongs to it, and so do both channels.
                progress.markConnected()
                do {
                    // The local side is gone when the deadline passed already.
                    guard local.isActive else { throw ChannelError.ioOnClosedChannel }
                    let localRelay = try local.pipeline.syncOperations.handler(type: Relay.self)
                    let remoteRelay = try channel.pipeline.syncOperations.handler(type: Relay.self)
                    Relay.join(localRelay, remoteRelay)
                    try channel.pipeline.syncOperations.handler(type: HandshakeWatcher.self).report(to: handshake)
                    return channel
                } catch {
                    channel.close(promise: nil)
                    throw error
                }
            }
        connected.whenFailure { handshake.fail(TunnelFailure.connect($0)) }

        do {
            try handshake.futureResult.wait()
        } catch {
            deadline.cancel()
            local.close(promise: nil)
            connected.whenSuccess { $0.close(promise: nil) }
            close(hiredisEnd)
            throw RedisError(
                .connection,
                describe(
                    error, host: host, endpoint: endpoint, tls: tls, timeout: timeout,
                    tcpConnected: progress.isConnected))
        }
        deadline.cancel()
        return hiredisEnd
    }

    /// One line naming the endpoint and what went wrong, in words an operator
    /// can act on; the library's own text follows where it helps.
    static func describe(
        _ error: any Error, host: String, endpoint: String, tls: RedisTLS, timeout: Duration, tcpConnected: Bool
    ) -> String {
        var error = error
        switch error {
        case TunnelFailure.timedOut:
            return tcpConnected
                ? "connect to \(endpoint): the TLS handshake did not finish within \(timeout)"
                    + " (is this a TLS port? a plain-text Redis port does not answer a TLS hello)"
                : "connect to \(endpoint) timed out after \(timeout)"
        case TunnelFailure.closedDuringHandshake:
            return "connect to \(endpoint) failed: the server closed the connection during the TLS handshake"
                + " (is this a TLS port?)"
        case TunnelFailure.connect(let underlying):
            error = underlying
        default:
            break
        }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            return "connect to \(endpoint) timed out after \(timeout)"
        }
        if let connectionError = error as? NIOConnectionError {
            if let dnsError = connectionError.dnsAError ?? connectionError.dnsAAAAError {
                return "connect to \(endpoint) failed: cannot resolve the host name: \(dnsError)"
            }
            let reasons = connectionError.connectionErrors.map { failure in
                (failure.error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(failure.error)"
            }
            return "connect to \(endpoint) failed: \(reasons.isEmpty ? "\(connectionError)" : reasons.joined(separator: "; "))"
        }
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "connect to \(endpoint) failed: TLS certificate verify failed: the server's certificate is not"
                + " valid for the host name '\(host)' (failedToValidateHostname)"
        }
        if let sslError = error as? NIOSSLError {
            let text = "\(sslError)"
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                return "connect to \(endpoint) failed: TLS certificate verify failed: the server's certificate chain is"
                    + " not signed by a CA in \(tls.trustDescription), or a certificate in it has expired"
                    + " (CERTIFICATE_VERIFY_FAILED)"
            }
            if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG")
                || text.contains("UNEXPECTED_RECORD") || text.contains("HTTP_REQUEST")
            {
                return "connect to \(endpoint) failed: the server did not answer in TLS (is this a plain-text"
                    + " redis:// port?): \(sslError)"
            }
            if sslError == .uncleanShutdown {
                return "connect to \(endpoint) failed: the server closed the connection during the TLS handshake"
                    + " (is this a TLS port?)"
            }
            return "connect to \(endpoint) failed: TLS handshake failed: \(sslError)"
        }
        return "connect to \(endpoint) failed: \(error)"
    }
}

private enum TunnelFailure: Error {
    case timedOut
    case closedDuringHandshake
    case connect(any Error)
}

/// Whether TCP connected, read by `open` after a failure to tell a connect
/// timeout from a handshake timeout.
private final class TunnelProgress: Sendable {
    private let connected = Atomic<Bool>(false)
    func markConnected() { connected.store(true, ordering: .releasing) }
    var isConnected: Bool { connected.load(ordering: .acquiring) }
}

// MARK: - channel handlers (event loop only)

/// Watches the TLS handshake of one connection attempt and, once `report(to:)`
/// named it the connection in use, completes that promise with the outcome:
/// success at `handshakeCompleted`, failure at the first error or at close.
private final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private var outcome: Result<Void, any Error>?
    private var promise: EventLoopPromise<Void>?

    func report(to promise: EventLoopPromise<Void>) {
        if let outcome {
            promise.completeWith(outcome)
        } else {
            self.promise = promise
        }
    }

    private func settle(_ result: Result<Void, any Error>) {
        guard outcome == nil else { return }
        outcome = result
        promise?.completeWith(result)
        promise = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { settle(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settle(.failure(error))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(.failure(TunnelFailure.closedDuringHandshake))
        context.fireChannelInactive()
    }
}

/// One half of a relay between two channels of the same event loop (after
/// SwiftNIO's GlueHandler example): what one channel reads, the other writes;
/// a channel that cannot take more bytes stops its partner from reading; one
/// closing closes the other (after flushing what it was given).
private final class Relay: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: Relay?
    private var context: ChannelHandlerContext?
    /// Bytes read before the partner was joined.
    private var early: [ByteBuffer] = []
    /// A read was held back because the partner could not take more bytes.
    private var readPending = false

    static func join(_ a: Relay, _ b: Relay) {
        a.partner = b
        b.partner = a
        a.deliverEarly()
        b.deliverEarly()
    }

    private func deliverEarly() {
        guard let partner, !early.isEmpty else { return }
        for bytes in early { partner.partnerWrite(bytes) }
        early = []
        partner.partnerFlush()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if let partner {
            partner.partnerWrite(bytes)
        } else {
            early.append(bytes)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let partner {
            self.partner = nil
            partner.partner = nil
            partner.partnerClose()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // TLS errors, a reset connection: the channel is done; closing it
        // closes the partner too (channelInactive).
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let partner, !partner.partnerIsWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    // Called by the partner, on the same event loop.

    private func partnerWrite(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerClose() {
        context?.flush()
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if readPending {
            readPending = false
            context?.read()
        }
    }

    private var partnerIsWritable: Bool {
        context?.channel.isWritable ?? false
    }
}
