import AsyncHTTPClient
import Instrumentation
import NIOHTTP1
import Tracing

/// Outbound calls in client spans, with the caller's W3C trace context (`traceparent`,
/// `tracestate`) carried in the request's headers. Without a tracer bootstrapped
/// (`InstrumentationSystem`'s no-op default) the span is a no-op and nothing is injected.
public enum ClientSpans {
    /// Runs `body` with `request` inside a client span named `name`: the span's context is
    /// injected into the request's headers, the span records the method, the server and the path
    /// (never the query or any header: they may carry credentials), and `body` reports the
    /// answer's status through ``Recorder/status(_:)``. A thrown error marks the span failed with
    /// its type only (an error's text may quote a credential).
    public static func withClientSpan<T>(
        _ name: String, service: String, request: HTTPClientRequest,
        _ body: (HTTPClientRequest, Recorder) async throws -> T
    ) async throws -> T {
        let tracer = InstrumentationSystem.tracer
        let span = tracer.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: .client)
        defer { span.end() }
        var request = request
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes["http.request.method"] = request.method.rawValue
                attributes["peer.service"] = service
                if let url = URLParts(request.url) {
                    attributes["server.address"] = url.host
                    if let port = url.port { attributes["server.port"] = port }
                    attributes["url.path"] = url.path
                }
            }
        }
        // Injected whether or not this span is sampled: the flags in `traceparent` tell the
        // callee, and with no tracer at all the propagator writes nothing.
        tracer.inject(span.context, into: &request.headers, using: HTTPHeadersInjector())
        do {
            return try await ServiceContext.$current.withValue(span.context) {
                try await body(request, Recorder(span: span))
            }
        } catch {
            let type = String(describing: Swift.type(of: error))
            span.attributes["error.type"] = type
            span.setStatus(SpanStatus(code: .error, message: type))
            throw error
        }
    }

    /// `configuration` with async-http-client's own spans off: ``withClientSpan(_:service:request:_:)``
    /// makes one per call, named after it, and injects the trace context itself (two spans and two
    /// injected headers per call otherwise).
    public static func withoutClientOwnSpans(_ configuration: HTTPClient.Configuration) -> HTTPClient.Configuration {
        var configuration = configuration
        configuration.tracing.tracer = nil
        return configuration
    }

    /// What the call's body tells its span.
    public struct Recorder: Sendable {
        let span: any Span

        /// The answer's status; 4xx and 5xx mark the client span failed.
        public func status(_ code: Int) {
            span.attributes["http.response.status_code"] = code
            if code >= 400 { span.setStatus(SpanStatus(code: .error)) }
        }
    }
}

/// Writes propagation fields into NIO's `HTTPHeaders` (async-http-client's), replacing any
/// value already there.
public struct HTTPHeadersInjector: Injector {
    public init() {}
    public func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}

/// The host, port and path of an absolute URL, without Foundation's URL (and without the query).
struct URLParts {
    var host: String
    var port: Int?
    var path: String

    init?(_ url: String) {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        var rest = url[schemeEnd.upperBound...]
        if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<q] }
        let authority = rest.prefix { $0 != "/" }
        path = rest.count > authority.count ? String(rest[authority.endIndex...]) : "/"
        // user:password@ is dropped; [v6]:port kept whole.
        let hostPort = authority.split(separator: "@").last ?? authority[...]
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) : nil
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = Int(hostPort[hostPort.index(after: colon)...])
        } else {
            host = String(hostPort)
            port = nil
        }
    }
}
