import Foundation
import Generated
import PostgresNIO
import Redis
import SitrepRuntime

extension SitrepHandlers {
    public func getHealth(_ input: GetHealth.Input, context: OperationContext) async throws -> GetHealth.Output {
        .ok(Self.alive)
    }

    /// The liveness answer: the process answering is all it says, so it is built once.
    static let alive = Health(status: .ok, checks: [HealthCheck(name: "process", status: .ok, detail: nil)])

    public func getReadiness(_ input: GetReadiness.Input, context: OperationContext) async throws -> GetReadiness.Output {
        async let pg = checkPostgres(context)
        async let rd = checkRedis()
        let checks = await [pg, rd]
        var all = checks
        if checks[0].status == .ok {
            do {
                let pending = try await pendingMigrations()
                all.append(
                    HealthCheck(
                        name: "migrations", status: pending.isEmpty ? .ok : .down,
                        detail: pending.isEmpty ? nil : "pending: \(pending.joined(separator: ", "))"))
            } catch {
                all.append(HealthCheck(name: "migrations", status: .down, detail: "cannot read migration state"))
            }
        }
        let failing = all.filter { $0.status != .ok }
        if failing.isEmpty {
            return .ok(Health(status: .ok, checks: all))
        }
        let detail = failing.map { "\($0.name): \($0.detail ?? "down")" }.joined(separator: "; ")
        return .serviceUnavailable(.serviceUnavailable(detail, code: "dependency.unavailable"))
    }

    private func checkPostgres(_ context: OperationContext) async -> HealthCheck {
        do {
            try await withTimeout(seconds: 2) {
                _ = try await db.query("SELECT 1", logger: context.logger)
            }
            return HealthCheck(name: "postgres", status: .ok, detail: nil)
        } catch {
            return HealthCheck(name: "postgres", status: .down, detail: "unreachable")
        }
    }

    private func checkRedis() async -> HealthCheck {
        do {
            try await redis.ping()
            return HealthCheck(name: "redis", status: .ok, detail: nil)
        } catch {
            return HealthCheck(name: "redis", status: .down, detail: "\(error)")
        }
    }
}

struct TimeoutError: Error {}

/// Runs `body`, giving up after `seconds`.
func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
