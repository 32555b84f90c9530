import Foundation
import Handlers
import NIOCore
import PostgresNIO
import SitrepRuntime
import Testing

/// The PostgreSQL idempotency store against a real database: the key and the effect commit
/// together, racing duplicates on two connection pools (two instances) converge on one effect.
@Suite("idempotency store (PostgreSQL)", .enabled(if: TestDatabase.isConfigured))
struct IdempotencyStoreTests {
    /// The effect: one action row, written on the store's transaction; answers 201 with its id.
    static func effect(_ transaction: (any Sendable)?, title: String, status: Int = 201) async throws -> EncodedResponse {
        let conn = try #require(transaction as? PostgresConnection)
        let id = UUID()
        try await conn.query(
            "INSERT INTO actions (id, title, owner_id, assigned_by, due_date) VALUES (\(id), \(title), 'owner', 'test', current_date)",
            logger: TestDatabase.logger)
        return EncodedResponse(
            status: status, headers: [(.location, "/v1/actions/\(id)")], contentType: "application/json",
            body: Array("{\"id\":\"\(id)\"}".utf8))
    }

    static func count(_ db: TestDatabase, _ title: String) async throws -> Int {
        let rows = try await db.client.query("SELECT count(*)::int8 FROM actions WHERE title = \(title)")
        for try await n in rows.decode(Int.self) { return n }
        return 0
    }

    @Test func racingDuplicatesOnTwoInstancesHaveOneEffectAndOneAnswer() async throws {
        try await TestDatabase.with { db in
            try await db.withExtraClient { other in
                let a = PostgresIdempotencyStore(db: db.client, inFlightWait: .seconds(30), logger: TestDatabase.logger)
                let b = PostgresIdempotencyStore(db: other, inFlightWait: .seconds(30), logger: TestDatabase.logger)
                let outcomes = try await withThrowingTaskGroup(of: IdempotencyOutcome.self) { group in
                    for i in 0..<40 {
                        group.addTask {
                            try await (i % 2 == 0 ? a : b).execute(operation: "createAction", principal: "p1", key: "k1", fingerprint: "f1") {
                                try await Self.effect($0, title: "race")
                            }
                        }
                    }
                    var all: [IdempotencyOutcome] = []
                    for try await o in group { all.append(o) }
                    return all
                }
                #expect(try await Self.count(db, "race") == 1)
                var bodies = Set<[UInt8]>()
                var fresh = 0
                for o in outcomes {
                    switch o {
                    case .fresh(let r):
                        fresh += 1
                        bodies.insert(r.body)
                    case .replay(let r): bodies.insert(r.body)
                    default: Issue.record("unexpected \(o)")
                    }
                }
                #expect(fresh == 1)
                #expect(bodies.count == 1, "every answer is the first one's")

                // Same key, other request: refused. Another principal's same key: its own effect.
                let other1 = try await a.execute(operation: "createAction", principal: "p1", key: "k1", fingerprint: "f2") {
                    try await Self.effect($0, title: "race")
                }
                guard case .mismatch = other1 else { Issue.record("expected mismatch, got \(other1)"); return }
                _ = try await a.execute(operation: "createAction", principal: "p2", key: "k1", fingerprint: "f1") {
                    try await Self.effect($0, title: "race")
                }
                #expect(try await Self.count(db, "race") == 2)
            }
        }
    }

    @Test func inFlightFailuresAndExpiry() async throws {
        try await TestDatabase.with { db in
            let store = PostgresIdempotencyStore(
                db: db.client, retention: .seconds(1), inFlightWait: .milliseconds(200), logger: TestDatabase.logger)
            // A duplicate while the first is still running: 409 after the short wait.
            let (gate, open) = AsyncStream.makeStream(of: Void.self)
            let first = Task {
                try await store.execute(operation: "op", principal: "p", key: "slow", fingerprint: "f") { tx in
                    for await _ in gate { break }
                    return try await Self.effect(tx, title: "slow")
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let duplicate = try await store.execute(operation: "op", principal: "p", key: "slow", fingerprint: "f") {
                try await Self.effect($0, title: "slow")
            }
            guard case .inFlight = duplicate else { Issue.record("expected inFlight, got \(duplicate)"); return }
            open.yield()
            open.finish()
            guard case .fresh = try await first.value else { Issue.record("the first should have run"); return }
            #expect(try await Self.count(db, "slow") == 1)

            // A validation failure is answered but not kept, and its effect is rolled back.
            let invalid = try await store.execute(operation: "op", principal: "p", key: "v", fingerprint: "f") {
                try await Self.effect($0, title: "invalid", status: 422)
            }
            guard case .fresh(let r) = invalid, r.status == 422 else { Issue.record("expected a fresh 422"); return }
            #expect(try await Self.count(db, "invalid") == 0)
            // A handler that throws leaves neither key nor effect.
            struct Boom: Error {}
            await #expect(throws: (any Error).self) {
                _ = try await store.execute(operation: "op", principal: "p", key: "boom", fingerprint: "f") { tx in
                    _ = try await Self.effect(tx, title: "boom")
                    throw Boom()
                }
            }
            #expect(try await Self.count(db, "boom") == 0)

            // After the retention the same key is new again.
            try await Task.sleep(for: .milliseconds(1200))
            guard
                case .fresh = try await store.execute(
                    operation: "op", principal: "p", key: "slow", fingerprint: "f", { try await Self.effect($0, title: "slow") })
            else { Issue.record("an expired key should run again"); return }
            #expect(try await Self.count(db, "slow") == 2)
        }
    }
}
