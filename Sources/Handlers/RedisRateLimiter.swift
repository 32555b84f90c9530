import Foundation
import Redis
import SitrepRuntime

/// Fixed-window rate limits in Redis, shared by every instance: one counter per
/// (policy, principal, window), created with its expiry in one atomic script.
public struct RedisRateLimiter: RateLimiter {
    public struct Policy: Sendable, Equatable {
        public var limit: Int
        public var windowSeconds: Int
        public init(limit: Int, windowSeconds: Int) {
            self.limit = limit
            self.windowSeconds = windowSeconds
        }
    }

    let redis: RedisClient
    let table: [String: Policy]
    public var policies: Set<String> { Set(table.keys) }

    public init(redis: RedisClient, policies: [String: Policy]) {
        self.redis = redis
        self.table = policies
    }

    static let script = """
        local c = redis.call('INCR', KEYS[1])
        if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
        return c
        """

    public func check(policy name: String, key: String) async throws -> RateLimitDecision {
        guard let policy = table[name] else {
            throw ContractViolation("rate-limit policy '\(name)' is not configured")
        }
        let now = Int(Date().timeIntervalSince1970)
        let window = now / policy.windowSeconds
        let redisKey = "sitrep:rl:\(name):\(key):\(window)"
        let reply = try await redis.send(["EVAL", Self.script, "1", redisKey, String(policy.windowSeconds + 1)])
        guard case .integer(let count) = reply else {
            throw RedisError(.protocol, "unexpected reply to rate-limit script")
        }
        let remaining = max(0, policy.limit - Int(count))
        let retryAfter = max(1, policy.windowSeconds - now % policy.windowSeconds)
        return RateLimitDecision(allowed: Int(count) <= policy.limit, limit: policy.limit, remaining: remaining, retryAfter: retryAfter)
    }
}
