import Hummingbird
import NIOCore

/// A request body the handler reads as it arrives, for operations whose spec marks the body
/// `x-streaming: true` (a file upload): memory stays bounded by one chunk, whatever the size.
///
/// At most ``limit`` bytes are handed out; reading past it throws a `413` problem
/// (`request.too_large`), which the runtime answers like any other problem. A declared
/// `Content-Length` above the limit is refused before the handler runs.
public struct RequestBodyStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private let body: RequestBody?
    /// The most bytes this body may have.
    public let limit: Int
    /// The `Content-Length` the client declared, if any (for progress reports).
    public let declaredLength: Int?

    /// A body read from `body`, at most `limit` bytes.
    public init(_ body: RequestBody, limit: Int, declaredLength: Int? = nil) {
        self.body = body
        self.limit = limit
        self.declaredLength = declaredLength
    }

    /// A body with these bytes (tests, and callers that already hold the file).
    public init(bytes: [UInt8], limit: Int = .max) {
        self.init(RequestBody(buffer: ByteBuffer(bytes: bytes)), limit: limit, declaredLength: bytes.count)
    }

    /// No body at all.
    public static let empty = RequestBodyStream(body: nil)

    private init(body: RequestBody?) {
        self.body = body
        self.limit = 0
        self.declaredLength = 0
    }

    /// The `413` problem for a body over `limit` bytes.
    public static func tooLarge(limit: Int) -> Problem {
        Problem(status: 413, code: "request.too_large", detail: "The body is larger than the limit of \(limit) bytes.")
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: body?.makeAsyncIterator(), limit: limit)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator?
        let limit: Int
        /// Bytes handed out so far.
        public private(set) var received = 0

        public mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base?.next() else {
                base = nil
                return nil
            }
            received += chunk.readableBytes
            if received > limit {
                base = nil
                throw ProblemError(RequestBodyStream.tooLarge(limit: limit))
            }
            return chunk
        }
    }
}
