// An async Redis client over hiredis' blocking API.
//
//     let redis = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
//     try await redis.send(["SET", "k", "v", "PX", "5000"])
//     let value = try await redis.send(["GET", "k"]).string
//     await redis.shutdown()
//
// How a call runs: take a lease from the pool (an idle connection, a permit to
// open one, or a wait of at most `commandTimeout`), then run one work item on
// the NIOThreadPool that (re)connects if needed and does the blocking
// write+read, then give the lease back. hiredis is never called on a Swift
// concurrency cooperative thread.
//
// Recovery: a connection that errors (I/O, EOF, timeout, protocol) is freed
// instead of going back to the pool, and an idle connection is checked with a
// non-blocking poll before reuse, so after Redis restarts the next call simply
// connects again — no client restart, no call wasted on a dead socket.
//
// Thread pool sizing: at most `min(poolSize, threadPool threads)` commands run
// at once. `NIOThreadPool.singleton` has one thread per core and is shared with
// file I/O; a server that leans on Redis should pass its own
// `NIOThreadPool(numberOfThreads: poolSize)` (started, and shut down after
// `shutdown()`).
//
// Not covered: pub/sub (SUBSCRIBE turns a connection into a push stream and
// needs a dedicated connection API) and blocking commands longer than
// `commandTimeout` (BLPOP with a long timeout would hit the socket timeout).

import CHiredis
import Logging
import NIOPosix

public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let logger: Logger
    private let threadPool: NIOThreadPool
    package let pool: ConnectionPool  // package: visible to the tests

    public init(configuration: RedisConfiguration, logger: Logger, threadPool: NIOThreadPool = .singleton) {
        _ = sigpipeIgnored
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "redis"] = "\(configuration.host):\(configuration.port)/\(configuration.database)"
        self.logger = logger
        self.threadPool = threadPool
        self.pool = ConnectionPool(capacity: configuration.poolSize)
    }

    /// Sends one command, e.g. `["SET", "key", "value"]`. An error reply from
    /// the server is thrown as `RedisError(.server)`.
    public func send(_ arguments: [String]) async throws(RedisError) -> RedisValue {
        try await send(arguments.map { Array($0.utf8) })
    }

    /// Sends one command whose arguments are raw bytes (binary-safe).
    public func send(_ arguments: [[UInt8]]) async throws(RedisError) -> RedisValue {
        guard !arguments.isEmpty else { throw RedisError(.protocol, "empty command") }

        let lease = try await pool.lease(timeout: configuration.commandTimeout)
        let configuration = self.configuration
        let logger = self.logger
        let outcome: Outcome
        do {
            outcome = try await threadPool.runIfActive {
                Self.perform(arguments, lease: lease, configuration: configuration, logger: logger)
            }
        } catch {
            // `perform` does not throw, so the work item never ran: the task was
            // cancelled before a thread took it, or the thread pool is stopped.
            // The connection was not touched and goes back as it was.
            pool.release(lease)
            if error is CancellationError {
                throw RedisError(.timeout, "cancelled before the command was sent")
            }
            throw RedisError(.poolClosed, "the thread pool is not running (\(error))")
        }
        pool.release(outcome.connection)
        return try outcome.result.get()
    }

    /// `PING`, expecting `PONG`. Use it for readiness checks.
    public func ping() async throws(RedisError) {
        let reply = try await send(["PING"])
        guard reply == .status("PONG") else {
            throw RedisError(.protocol, "unexpected reply to PING: \(reply)")
        }
    }

    /// Closes idle connections, fails waiting callers with `.poolClosed`, waits
    /// for in-flight commands to finish and closes their connections. Later
    /// calls fail with `.poolClosed`. Idempotent.
    public func shutdown() async {
        await pool.close()
        logger.debug("Redis client shut down")
    }

    // MARK: - the work item (runs on the thread pool)

    private struct Outcome: Sendable {
        /// The connection to give back, `nil` when it was dropped.
        var connection: RedisConnection?
        var result: Result<RedisValue, RedisError>
    }

    private static func perform(
        _ arguments: [[UInt8]], lease: RedisConnection?, configuration: RedisConfiguration, logger: Logger
    ) -> Outcome {
        var connection = lease
        if let idle = connection, !idle.looksAlive() {
            logger.debug("Redis closed an idle connection; reconnecting")
            idle.close()
            connection = nil
        }
        if connection == nil {
            do throws(RedisError) {
                connection = try RedisConnection.connect(configuration)
                logger.debug("Redis connection opened")
            } catch {
                logger.debug("Redis connect failed", metadata: ["error": "\(error)"])
                return Outcome(connection: nil, result: .failure(error))
            }
        }
        let active = connection!
        do throws(RedisError) {
            return Outcome(connection: active, result: .success(try active.command(arguments)))
        } catch {
            guard active.isBroken else {
                return Outcome(connection: active, result: .failure(error))  // error reply: connection fine
            }
            logger.warning("Redis connection dropped", metadata: ["error": "\(error)"])
            active.close()
            return Outcome(connection: nil, result: .failure(error))
        }
    }
}

/// hiredis writes with `write(2)`, so a write to a socket the server already
/// closed raises SIGPIPE, whose default action kills the process. Ignore it
/// process-wide, as SwiftNIO itself does on Linux the first time it opens a
/// socket; the write then fails with EPIPE and the connection is dropped.
private let sigpipeIgnored: Bool = {
    _ = signal(SIGPIPE, SIG_IGN)
    return true
}()
