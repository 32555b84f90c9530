import NIOCore
import PostgresNIO
import Synchronization

/// Something that takes a result's rows one at a time, on the connection's event loop, and then
/// makes one value of them there. A class: the rows arrive in callbacks, not in the caller's
/// frame.
public protocol RowConsumer: AnyObject, SendableMetatype {
    associatedtype Output: Sendable
    func consume(_ row: PostgresRow) throws
    func finish() throws -> Output
}

/// Named statements, each prepared once per pooled connection, whose rows are handed to a
/// ``RowConsumer`` on the connection's event loop as they arrive.
///
/// postgres-nio's `execute` returns the rows as an async sequence. Taking a row from it is an
/// async call through half a dozen frames (the row sequence, the producer's lock, a cancellation
/// handler), each with its executor check and task-allocator frame: about 3,000 instructions a
/// row, over 150,000 for a 51-row page, besides waking a pool thread for the rows that
/// arrive after the first read. postgres-nio's `PreparedQuery` hands each row to a callback
/// instead, as the event loop decodes it. It is prepared per connection, so this keeps, for each
/// live connection, the statements prepared on it (a connection is leased to one task at a
/// time, so two tasks never prepare on the same one at once).
///
/// A row the consumer refuses (it throws) fails the call with that error; postgres-nio cancels
/// the rest of the result and the connection stays usable.
///
/// The rows' cells hold binary values (postgres-nio's Bind asks for every result column in
/// binary) but are labelled `.text`: `PreparedQuery` keeps the format of the statement's
/// description, which PostgreSQL gives before any Bind. Read them as binary, whatever the label
/// (`RowCallbackStatementsTests` pins both).
public final class RowCallbackStatements: Sendable {
    private struct Prepared {
        /// Held to tell when the connection has closed (its entry is then dropped), and so that
        /// its address, the entry's key, is not reused while the entry exists.
        let connection: PostgresConnection
        var statements: [String: PreparedQuery] = [:]
    }

    /// By connection object: connection IDs are numbered per pool, so two pools' would collide.
    private let prepared = Mutex<[ObjectIdentifier: Prepared]>([:])

    public init() {}

    /// Runs `sql` with `binds` on `connection`, preparing it there first if it is new to that
    /// connection, and returns what `consumer` made of the rows.
    ///
    /// Throws what the consumer threw for a row it refused; ``ConnectionLost`` when the
    /// connection failed under the call; else postgres-nio's error (a `PostgresError` for one
    /// PostgreSQL reported).
    public func execute<Consumer: RowConsumer>(
        _ sql: String, binds: [PostgresData] = [], on connection: PostgresConnection, into consumer: sending Consumer
    ) async throws -> Consumer.Output {
        let statement: PreparedQuery
        do {
            statement = try await self.statement(sql, on: connection)
        } catch {
            throw Self.restored(error)
        }
        let box = NIOLoopBoundBox.makeBoxSendingValue(Run(consumer), as: Run<Consumer>.self, eventLoop: connection.eventLoop)
        // The closures run on the connection's event loop (the box checks it).
        do {
            return try await statement.execute(binds) { row in try box.value.consume(row) }
                .flatMapThrowing { try box.value.consumer.finish() }
                .flatMapErrorThrowing { error in throw box.value.refusal ?? error }
                .get()
        } catch {
            throw Self.restored(error)
        }
    }

    /// A call's consumer, and the error it refused a row with. postgres-nio cancels the query
    /// when a row is refused, and the cancellation's error reaches the call's future before the
    /// consumer's own does.
    private final class Run<Consumer: RowConsumer> {
        let consumer: Consumer
        var refusal: (any Error)?
        init(_ consumer: Consumer) { self.consumer = consumer }
        func consume(_ row: PostgresRow) throws {
            do {
                try consumer.consume(row)
            } catch {
                refusal = error
                throw error
            }
        }
    }

    /// The connection under a call failed (closed, reset, or PostgreSQL shutting down).
    public struct ConnectionLost: Error, CustomStringConvertible {
        public let description: String
    }

    /// postgres-nio reports errors on this path (its `PostgresDatabase` API) as `PostgresError`s
    /// and NIO's errors rather than the `PSQLError`s its other calls throw: a lost connection
    /// becomes ``ConnectionLost`` again, so callers tell it from a failed statement.
    static func restored(_ error: any Error) -> any Error {
        switch error {
        case let error as PostgresError:
            switch error {
            case .connectionClosed:
                return ConnectionLost(description: "connection closed")
            case .protocol(let message) where message == "Unexpected connection close":
                return ConnectionLost(description: message)
            case .server(let server):
                if let state = server.fields[.sqlState], SQLState.meansConnectionLost(state) {
                    return ConnectionLost(description: "server: SQLSTATE \(state)")
                }
                return error
            case .protocol:
                return error
            }
        case is PSQLError, is ConnectionLost:
            return error
        default:
            // What `PSQLError.connectionError` carried: the channel's own error (reset, refused).
            if error is IOError || error is ChannelError { return ConnectionLost(description: "\(error)") }
            return error
        }
    }

    /// How many connections have statements prepared here (for tests).
    public var connectionCount: Int { prepared.withLock { $0.count } }

    private func statement(_ sql: String, on connection: PostgresConnection) async throws -> PreparedQuery {
        let key = ObjectIdentifier(connection)
        if let known = prepared.withLock({ $0[key]?.statements[sql] }) { return known }
        let statement = try await connection.prepare(query: sql).get()
        prepared.withLock { all in
            if all[key] == nil {
                // A connection new to this map: drop the ones that have closed since.
                all = all.filter { !$0.value.connection.isClosed }
                all[key] = Prepared(connection: connection)
            }
            all[key]?.statements[sql] = statement
        }
        return statement
    }
}
