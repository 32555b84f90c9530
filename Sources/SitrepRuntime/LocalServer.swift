import Hummingbird
import Logging

/// Serves a router on a local address for the development stand-ins (the OIDC issuer, the
/// Twilio/SendGrid stand-in): starts it, waits until it listens, and reports the bound port.
public enum LocalServer {
    /// The address could not be bound, or the server stopped before listening.
    public struct StartFailure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Starts `router` on `host`:`port` (0 picks a free port) and returns once it accepts
    /// connections: the bound port, `http://<host>:<port>` to reach it, and the task serving it
    /// (cancel it to stop). `onBound` gets that base URL before the port is announced, so no
    /// request can arrive before the caller knows its own address.
    public static func start(
        router: Router<BasicRequestContext>, host: String, port: Int, logger: Logger, onBound: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws(StartFailure) -> (port: Int, baseURL: String, server: Task<Void, any Error>) {
        let urlHost = urlHost(forBindHost: host)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                onBound("http://\(urlHost):\(bound)")
                continuation.yield(bound)
                continuation.finish()
            },
            logger: logger
        )
        let server = Task {
            // Also ends the wait below when the server fails to start.
            defer { continuation.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next(), bound > 0 else {
            server.cancel()
            if case .failure(let error) = await server.result {
                throw StartFailure(description: "could not listen on \(host):\(port): \(error)")
            }
            throw StartFailure(description: "did not start on \(host):\(port)")
        }
        return (bound, "http://\(urlHost):\(bound)", server)
    }

    /// The host to put in URLs for a bind address: a wildcard address is reached over loopback;
    /// IPv6 needs brackets.
    public static func urlHost(forBindHost host: String) -> String {
        var urlHost = host
        if host == "0.0.0.0" { urlHost = "127.0.0.1" }
        if host == "::" { urlHost = "::1" }
        if urlHost.contains(":") { urlHost = "[\(urlHost)]" }
        return urlHost
    }
}

/// Compares secrets without stopping at the first difference (only the length may leak).
public func constantTimeEqual(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for i in x.indices { difference |= x[i] ^ y[i] }
    return difference == 0
}
