import AsyncHTTPClient
import Foundation
import HTTPTracing
import Logging
import NIOCore
import NIOHTTP1

/// One request to a provider over a shared `HTTPClient`, with every failure mapped to
/// ``ProviderError``.
struct ProviderHTTP: Sendable {
    /// "Twilio" or "SendGrid", for messages.
    let provider: String
    let client: HTTPClient
    let timeout: Duration
    let logger: Logger
    /// Texts never to repeat in an error message: the credential and its encodings as sent.
    let secrets: [String]

    /// The largest answer read; a Twilio list page of 100 messages is well below.
    static let maximumBody = 8 << 20

    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer

        var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) }
        var object: [String: Any]? { json as? [String: Any] }
    }

    /// Sends `request` and reads the whole answer, whatever its status. Throws only when no
    /// complete answer arrived.
    func execute(_ request: HTTPClientRequest) async throws(ProviderError) -> Answer {
        do {
            return try await ClientSpans.withClientSpan("\(provider) \(request.method.rawValue)", service: provider, request: request) {
                request, span in
                let response = try await client.execute(request, timeout: TimeAmount(timeout), logger: logger)
                span.status(Int(response.status.code))
                let body = try await response.body.collect(upTo: Self.maximumBody)
                return Answer(status: Int(response.status.code), headers: response.headers, body: body)
            }
        } catch {
            throw transportError(error)
        }
    }

    /// A failure that happened before a complete answer arrived.
    func transportError(_ error: any Error) -> ProviderError {
        if let error = error as? HTTPClientError {
            let timeouts: [HTTPClientError] = [
                .deadlineExceeded, .readTimeout, .writeTimeout, .tlsHandshakeTimeout,
                .socksHandshakeTimeout, .httpProxyHandshakeTimeout,
            ]
            let unusable: [HTTPClientError] = [
                .invalidURL, .emptyHost, .emptyScheme, .missingSocketPath, .alreadyShutdown, .traceRequestWithBody,
            ]
            if error == .connectTimeout || error == .getConnectionFromPoolTimeout {
                return ProviderError(kind: .retryable, cause: .unreachable, message: "\(provider) could not be reached in time (\(error))")
            }
            if timeouts.contains(error) {
                return ProviderError(kind: .retryable, cause: .timeout, message: "\(provider) did not answer in time (\(error))")
            }
            if error == .cancelled {
                return ProviderError(kind: .retryable, cause: .cancelled, message: "the request to \(provider) was cancelled")
            }
            if unusable.contains(error) {
                return ProviderError(kind: .final, cause: .invalidRequest, message: "the request to \(provider) could not be made (\(error))")
            }
            // Other client errors may quote header names or values (credentials among them): only
            // their redacted text is kept.
            return ProviderError(kind: .retryable, cause: .connection, message: "the connection to \(provider) failed (\(redacted(error)))")
        }
        if error is CancellationError {
            return ProviderError(kind: .retryable, cause: .cancelled, message: "the request to \(provider) was cancelled")
        }
        if let error = error as? IOError, [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(error.errnoCode) {
            return ProviderError(kind: .retryable, cause: .unreachable, message: "\(provider) could not be reached (\(redacted(error)))")
        }
        if error is NIOTooManyBytesError {
            return ProviderError(kind: .retryable, cause: .malformedResponse, message: "\(provider) answered with an oversized body")
        }
        return ProviderError(kind: .retryable, cause: .connection, message: "the connection to \(provider) failed (\(redacted(error)))")
    }

    /// The description of `error` with every secret (and its Basic/base64 forms) replaced by `***`.
    func redacted(_ error: any Error) -> String {
        var text = String(describing: error)
        for secret in secrets where !secret.isEmpty {
            text = text.replacingOccurrences(of: secret, with: "***")
        }
        return text
    }

    /// The error for an answer with an unexpected status: 429 and 5xx retryable, anything else
    /// final. `code` and `message` come from the provider's error body when it has one.
    func statusError(_ answer: Answer, code: Int?, message: String?) -> ProviderError {
        let status = answer.status
        let retryable = status == 429 || status >= 500
        let text = message.flatMap { $0.isEmpty ? nil : $0 } ?? "\(provider) answered HTTP \(status)"
        return ProviderError(
            kind: retryable ? .retryable : .final, cause: .status, httpStatus: status, code: code, message: text,
            retryAfter: retryable ? Self.retryAfter(answer.headers) : nil)
    }

    /// A success status whose body could not be read.
    func malformed(_ answer: Answer, _ what: String) -> ProviderError {
        ProviderError(
            kind: .retryable, cause: .malformedResponse, httpStatus: answer.status,
            message: "\(provider) answered HTTP \(answer.status) without \(what)")
    }

    /// `Retry-After` (seconds, or an HTTP date), else SendGrid's `X-RateLimit-Reset` (a Unix time).
    static func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
        if let value = headers.first(name: "Retry-After")?.trimmingCharacters(in: .whitespaces) {
            if let seconds = Int(value) { return .seconds(max(0, seconds)) }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            if let date = formatter.date(from: value) {
                return .seconds(max(0, Int(date.timeIntervalSince(now).rounded(.up))))
            }
        }
        if let value = headers.first(name: "X-RateLimit-Reset"), let reset = Double(value) {
            return .seconds(max(0, Int((reset - now.timeIntervalSince1970).rounded(.up))))
        }
        return nil
    }

    /// `base` + `path`, without a doubled slash.
    static func url(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + path
    }
}
