// One hiredis connection and the blocking calls made on it.
//
// Everything in this file blocks (DNS, connect, the TLS handshake of a
// `rediss://` connection, socket reads and writes) and is only ever called
// from inside a `NIOThreadPool` work item — see RedisClient and
// RedisSubscriber — never from a Swift concurrency cooperative thread. The
// one exception is `close()` when the pool is torn down, which only calls
// `redisFree`: that closes a file descriptor and frees memory, it never waits
// on the network (with TLS, SwiftNIO then closes the TLS connection on its
// event loop).

import CHiredis
import NIOPosix  // re-exports Glibc (poll, errno, timeval)

/// A `redisContext*` plus what we learned about its health.
///
/// `@unchecked Sendable` because the pointer is not thread-safe, and hiredis
/// requires one thread at a time per context. The pool enforces that by
/// ownership rather than by a lock: an instance is reachable from exactly one
/// place at any moment — the pool's idle list (read and written only under the
/// pool's mutex) or one in-flight `send` call, which hands it to exactly one
/// thread-pool work item and gets it back in that work item's result. Each
/// hand-over goes through the mutex, the thread pool's queue or a continuation,
/// all of which order memory, so consecutive users on different threads see a
/// consistent context. Nothing keeps a second reference while it is in use.
package final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>
    /// Set when the context hit an I/O, protocol or timeout error: hiredis
    /// cannot be used again after that, the connection must be dropped.
    private(set) var isBroken = false
    private var isClosed = false
    let endpoint: String

    private init(context: UnsafeMutablePointer<redisContext>, endpoint: String) {
        self.context = context
        self.endpoint = endpoint
    }

    deinit {
        close()
    }

    /// Connects (with `configuration.tls`, through a TLS tunnel: see
    /// RedisTLSTunnel.swift), sets the socket timeouts, authenticates and
    /// selects the database. Blocking: call on the thread pool.
    ///
    /// The one place hiredis connections are opened: RedisClient's pool and
    /// RedisSubscriber's reader both come here.
    static func connect(_ configuration: RedisConfiguration) throws(RedisError) -> RedisConnection {
        let endpoint = "\(configuration.host):\(configuration.port)"
        let context: UnsafeMutablePointer<redisContext>
        if let tls = configuration.tls {
            // Returns once the TLS handshake succeeded; hiredis then talks
            // plain RESP over its end of the socketpair, and owns it.
            let descriptor = try RedisTLSTunnel.open(configuration, tls: tls, endpoint: endpoint)
            guard let adopted = redisConnectFd(descriptor) else {
                Glibc.close(descriptor)
                throw RedisError(.connection, "connect to \(endpoint): could not allocate a hiredis context")
            }
            context = adopted
        } else {
            guard
                let connected = redisConnectWithTimeout(
                    configuration.host, Int32(clamping: configuration.port), configuration.connectTimeout.hiredisTimeval)
            else {
                throw RedisError(.connection, "connect to \(endpoint): could not allocate a hiredis context")
            }
            context = connected
        }
        let savedErrno = errno
        if context.pointee.err != 0 {
            let text = errorText(context)
            let timedOut = savedErrno == ETIMEDOUT || text.lowercased().contains("timed out")
            redisFree(context)
            throw RedisError(
                .connection,
                timedOut
                    ? "connect to \(endpoint) timed out after \(configuration.connectTimeout)"
                    : "connect to \(endpoint) failed: \(text)")
        }
        let connection = RedisConnection(context: context, endpoint: endpoint)
        guard redisSetTimeout(context, configuration.commandTimeout.hiredisTimeval) == REDIS_OK else {
            throw RedisError(.connection, "connect to \(endpoint): cannot set the socket timeout: \(errorText(context))")
        }
        do {
            if let password = configuration.password {
                var auth: [[UInt8]] = [Array("AUTH".utf8)]
                if let user = configuration.username { auth.append(Array(user.utf8)) }
                auth.append(Array(password.utf8))
                _ = try connection.command(auth)
            }
            if configuration.database != 0 {
                _ = try connection.command([Array("SELECT".utf8), Array(String(configuration.database).utf8)])
            }
        } catch {
            // The server refused AUTH or SELECT, or the connection broke during
            // them: either way this connection is not usable.
            throw RedisError(
                error.kind == .server ? .connection : error.kind,
                "connect to \(endpoint): \(error.message)")
        }
        return connection
    }

    /// Sends one command and reads its reply. Blocking: call on the thread pool.
    /// After an error other than `.server`, `isBroken` is true.
    func command(_ arguments: [[UInt8]]) throws(RedisError) -> RedisValue {
        precondition(!isClosed, "RedisConnection used after close()")
        guard !isBroken else { throw RedisError(.connection, "connection to \(endpoint) is broken") }

        let context = self.context
        let replyPointer: UnsafeMutableRawPointer? = Self.withArgv(arguments) { argc, argv, argvlen in
            redisCommandArgv(context, argc, argv, argvlen)
        }
        let savedErrno = errno

        guard let replyPointer else {
            isBroken = true
            throw Self.contextError(context, errno: savedErrno, endpoint: endpoint)
        }
        let reply = replyPointer.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(replyPointer) }
        return try Self.value(of: reply, endpoint: endpoint)
    }

    /// True when the idle socket shows nothing to read: a server that restarted,
    /// shut down or dropped us (idle `timeout`) has closed it, which makes the
    /// socket readable (EOF). In RESP2 request/response nothing else arrives
    /// unasked, so any readable state means "do not reuse". One non-blocking
    /// `poll`; run it before reusing an idle connection so a restart of Redis
    /// costs no failed call.
    func looksAlive() -> Bool {
        guard !isBroken, !isClosed, context.pointee.err == 0 else { return false }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return ready == 0
    }

    // MARK: - push replies (pub/sub)
    //
    // A subscribed connection receives replies nobody asked for, so instead of
    // `command` (write, then block until one reply) the subscriber writes with
    // `append` and reads with `poll` on `fileDescriptor` + `readAvailable` +
    // `bufferedReply`. Nothing here blocks while the socket is idle, so waiting
    // for a quiet channel never trips the socket timeout that would leave the
    // context unusable.

    /// The socket, for `poll`.
    var fileDescriptor: Int32 { context.pointee.fd }

    /// Writes a command without reading its reply (SUBSCRIBE, PING on a
    /// subscribed connection). Blocking, bounded by the socket send timeout.
    /// After an error, `isBroken` is true.
    func append(_ arguments: [[UInt8]]) throws(RedisError) {
        precondition(!isClosed, "RedisConnection used after close()")
        guard !isBroken else { throw RedisError(.connection, "connection to \(endpoint) is broken") }
        let context = self.context
        let queued = Self.withArgv(arguments) { argc, argv, argvlen in
            redisAppendCommandArgv(context, argc, argv, argvlen)
        }
        guard queued == REDIS_OK else {
            isBroken = true
            throw Self.contextError(context, errno: errno, endpoint: endpoint)
        }
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else {
                let savedErrno = errno
                isBroken = true
                throw Self.contextError(context, errno: savedErrno, endpoint: endpoint)
            }
        }
    }

    /// One `read(2)` from the socket into hiredis' reply parser. Call it when
    /// `poll` reports `fileDescriptor` readable, so it does not wait. EOF or an
    /// I/O error throws and sets `isBroken`.
    func readAvailable() throws(RedisError) {
        precondition(!isClosed, "RedisConnection used after close()")
        guard !isBroken else { throw RedisError(.connection, "connection to \(endpoint) is broken") }
        guard redisBufferRead(context) == REDIS_OK else {
            let savedErrno = errno
            isBroken = true
            throw Self.contextError(context, errno: savedErrno, endpoint: endpoint)
        }
    }

    /// The next reply already received and parsed, without touching the
    /// socket; `nil` when no complete reply is buffered. An error reply is
    /// thrown as `.server` (the connection stays usable); malformed input
    /// throws `.protocol` and sets `isBroken`.
    func bufferedReply() throws(RedisError) -> RedisValue? {
        precondition(!isClosed, "RedisConnection used after close()")
        guard !isBroken else { throw RedisError(.connection, "connection to \(endpoint) is broken") }
        var replyPointer: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &replyPointer) == REDIS_OK else {
            isBroken = true
            throw Self.contextError(context, errno: 0, endpoint: endpoint)
        }
        guard let replyPointer else { return nil }
        defer { freeReplyObject(replyPointer) }
        return try Self.value(of: replyPointer.assumingMemoryBound(to: redisReply.self), endpoint: endpoint)
    }

    /// Frees the context (closes the socket). Idempotent.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        redisFree(context)
    }

    // MARK: - helpers

    /// hiredis wants `argc`, `const char **argv`, `const size_t *argvlen`.
    /// Copies every argument into one buffer (plus a trailing byte so that an
    /// empty last argument still points inside it) and points into it.
    private static func withArgv<Result>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?) -> Result
    ) -> Result {
        let lengths = arguments.map(\.count)
        var flat: [UInt8] = []
        flat.reserveCapacity(lengths.reduce(1, +))
        for argument in arguments { flat.append(contentsOf: argument) }
        flat.append(0)

        return flat.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!)
            var argv: [UnsafePointer<CChar>?] = []
            argv.reserveCapacity(arguments.count)
            var offset = 0
            for length in lengths {
                argv.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    body(Int32(arguments.count), argvBuffer.baseAddress, lengthBuffer.baseAddress)
                }
            }
        }
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        // `errstr` is `char[128]`, imported as a tuple of 128 CChar.
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    private static func contextError(
        _ context: UnsafeMutablePointer<redisContext>, errno savedErrno: Int32, endpoint: String
    ) -> RedisError {
        let text = errorText(context)
        switch context.pointee.err {
        case REDIS_ERR_IO where savedErrno == EAGAIN || savedErrno == EWOULDBLOCK || savedErrno == ETIMEDOUT:
            // SO_RCVTIMEO/SO_SNDTIMEO from redisSetTimeout expired.
            return RedisError(.timeout, "command on \(endpoint) timed out (\(text))")
        case REDIS_ERR_PROTOCOL:
            return RedisError(.protocol, "protocol error from \(endpoint): \(text)")
        case REDIS_ERR_EOF:
            return RedisError(.connection, "\(endpoint) closed the connection: \(text)")
        default:
            return RedisError(.connection, "connection to \(endpoint) failed: \(text.isEmpty ? "unknown error" : text)")
        }
    }

    private static func value(of reply: UnsafePointer<redisReply>, endpoint: String) throws(RedisError) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_STRING:
            return .bulk(bytes(r))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(r), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            // Also for an error nested in an array (a failed command inside
            // EXEC): RedisValue has no error case, so the whole reply fails.
            throw RedisError(.server, String(decoding: bytes(r), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                guard let element = r.element[index] else {
                    throw RedisError(.protocol, "reply from \(endpoint) has a missing array element")
                }
                items.append(try value(of: element, endpoint: endpoint))
            }
            return .array(items)
        default:
            throw RedisError(.protocol, "reply from \(endpoint) has unknown type \(r.type)")
        }
    }

    private static func bytes(_ reply: redisReply) -> [UInt8] {
        guard let str = reply.str, reply.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: str, count: reply.len))
    }
}

extension Duration {
    /// For hiredis' `struct timeval` arguments; at least 1 ms, since a zero
    /// timeval means "no timeout" to hiredis.
    var hiredisTimeval: timeval {
        let (seconds, attoseconds) = self.components
        let micros = max(0, attoseconds / 1_000_000_000_000)
        if seconds < 0 || (seconds == 0 && micros < 1000) {
            return timeval(tv_sec: 0, tv_usec: 1000)
        }
        return timeval(tv_sec: Int(seconds), tv_usec: Int(micros))
    }
}
