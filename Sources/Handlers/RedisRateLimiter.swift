import Foundation
import Logging
import Redis
import SitrepRuntime
import Synchronization

/// Rate limits shared by every instance: GCRA (the generic cell rate algorithm) in one atomic
/// Redis script on Redis's own clock, one round trip per call. A policy of `limit` requests per
/// `windowSeconds` lets a quiet caller burst up to `limit` at once and then refills one request
/// every `windowSeconds / limit` — no window edge where twice the limit gets through.
///
/// When Redis cannot be reached, policies marked `failClosed` (sign-in, anything that sends
/// messages) answer 503; the others fall back to the same algorithm in this process's memory
/// (so one instance still limits) and log a warning.
public struct RedisRateLimiter: RateLimiter {
    public struct Policy: Sendable, Equatable {
        public var limit: Int
        public var windowSeconds: Int
        public var failClosed: Bool
        public init(limit: Int, windowSeconds: Int, failClosed: Bool = false) {
            self.limit = limit
            self.windowSeconds = windowSeconds
            self.failClosed = failClosed
        }

        /// Milliseconds between two requests at the sustained rate.
        var interval: Int64 { max(1, Int64(windowSeconds) * 1000 / Int64(max(1, limit))) }
    }

    let redis: RedisClient
    let table: [String: Policy]
    let local = LocalGCRA()
    let logger: Logger
    public var policies: Set<String> { Set(table.keys) }

    public init(redis: RedisClient, policies: [String: Policy], logger: Logger = Logger(label: "sitrep.ratelimit")) {
        self.redis = redis
        self.table = policies
        self.logger = logger
    }

    /// KEYS[1] = the bucket; ARGV = interval ms, burst tolerance ms. Returns
    /// {allowed, remaining, retry-after ms, reset ms}.
    static let script = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local interval = tonumber(ARGV[1])
        local tolerance = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or now)
        if tat < now then tat = now end
        if tat - now > tolerance then
            return {0, 0, tat - now - tolerance, tat - now}
        end
        local new = tat + interval
        redis.call('SET', KEYS[1], new, 'PX', new - now)
        return {1, math.floor((tolerance - (new - now - interval)) / interval), 0, new - now}
        """

    public func check(policy name: String, key: String) async throws -> RateLimitDecision {
        guard let policy = table[name] else {
            throw ContractViolation("rate-limit policy '\(name)' is not configured")
        }
        let tolerance = policy.interval * Int64(policy.limit - 1)
        do {
            let reply = try await redis.send([
                "EVAL", Self.script, "1", "sitrep:rl:\(name):\(key)", String(policy.interval), String(tolerance),
            ])
            guard case .array(let parts) = reply, parts.count == 4, case .integer(let allowed) = parts[0],
                case .integer(let remaining) = parts[1], case .integer(let retryMs) = parts[2], case .integer(let resetMs) = parts[3]
            else {
                throw RedisError(.protocol, "unexpected reply to the rate-limit script: \(reply)")
            }
            return Self.decision(policy, allowed: allowed == 1, remaining: remaining, retryMs: retryMs, resetMs: resetMs)
        } catch let error as RedisError {
            if policy.failClosed { throw error }
            logger.warning(
                "rate-limit store unavailable; limiting in this instance only", metadata: ["policy": "\(name)", "error": "\(error)"])
            let r = local.take("\(name):\(key)", interval: policy.interval, tolerance: tolerance)
            return Self.decision(policy, allowed: r.allowed, remaining: r.remaining, retryMs: r.retryMs, resetMs: r.resetMs)
        }
    }

    static func decision(_ policy: Policy, allowed: Bool, remaining: Int64, retryMs: Int64, resetMs: Int64) -> RateLimitDecision {
        RateLimitDecision(
            allowed: allowed, limit: policy.limit, remaining: Int(max(0, remaining)), retryAfter: Int(max(1, (retryMs + 999) / 1000)),
            windowSeconds: policy.windowSeconds, resetSeconds: Int(max(0, (resetMs + 999) / 1000)))
    }
}

/// The same GCRA in this process's memory: the fallback while Redis is unreachable. Bounded:
/// buckets whose time has passed carry no information and are dropped when it grows.
final class LocalGCRA: Sendable {
    private let buckets = Mutex<[String: Int64]>([:])

    func take(_ key: String, interval: Int64, tolerance: Int64, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> (
        allowed: Bool, remaining: Int64, retryMs: Int64, resetMs: Int64
    ) {
        buckets.withLock { b in
            if b.count > 10_000 { b = b.filter { $0.value > now } }
            let tat = max(b[key] ?? now, now)
            if tat - now > tolerance { return (false, 0, tat - now - tolerance, tat - now) }
            let new = tat + interval
            b[key] = new
            return (true, (tolerance - (new - now - interval)) / interval, 0, new - now)
        }
    }
}
