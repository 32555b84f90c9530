import Foundation

/// A channel a briefing can go out on, in the recipient's fallback order.
public enum DispatchChannel: String, Sendable, CaseIterable {
    case whatsapp
    case sms
    case email
}

/// The state of one attempt (`delivery_attempts.status`).
public enum AttemptStatus: String, Sendable, CaseIterable {
    /// Recorded, the provider call not yet answered: after a crash, its outcome is unknown.
    case queued
    /// Accepted by the provider.
    case sent
    case delivered
    /// WhatsApp read receipt (after `delivered`).
    case read
    case undelivered
    case failed
    /// No confirmation within the channel's time-out; the next channel was tried.
    case timedOut = "timed_out"

    /// Twilio's `MessageStatus` in our terms (`canceled` counts as `failed`); nil for statuses that
    /// say nothing new (`accepted`, `scheduled`, `sending`, `receiving`, `received`, unknown ones).
    public init?(twilio status: String) {
        switch status {
        case "queued": self = .queued
        case "sent": self = .sent
        case "delivered": self = .delivered
        case "read": self = .read
        case "undelivered": self = .undelivered
        case "failed", "canceled": self = .failed
        default: return nil
        }
    }

    /// Whether an attempt in this state may move to `next` (the same rule as the
    /// `delivery_attempts_forward_only` trigger of migration 0009): forward only, so repeated
    /// and out-of-order reports change nothing.
    public func mayMove(to next: AttemptStatus) -> Bool {
        switch (self, next) {
        case (.queued, .queued): return false
        case (.queued, _): return true
        case (.sent, .delivered), (.sent, .read), (.sent, .undelivered), (.sent, .failed), (.sent, .timedOut): return true
        case (.delivered, .read): return true
        case (.timedOut, .delivered), (.timedOut, .read): return true
        default: return false
        }
    }

    /// The message reached the person.
    public var isDelivered: Bool { self == .delivered || self == .read }
    /// The attempt is over without reaching the person.
    public var isFailure: Bool { self == .undelivered || self == .failed || self == .timedOut }
}

/// What the worker knows about one attempt.
public struct AttemptView: Sendable, Equatable {
    public var id: UUID
    public var channel: DispatchChannel
    public var status: AttemptStatus
    public var providerMessageId: String?
    /// A failure that may be tried again on the same channel (429, 5xx, time-out of the call).
    public var retryable: Bool
    public var errorCode: String?
    public var errorMessage: String?
    public var attemptedAt: Date

    public init(
        id: UUID, channel: DispatchChannel, status: AttemptStatus, providerMessageId: String? = nil, retryable: Bool = false,
        errorCode: String? = nil, errorMessage: String? = nil, attemptedAt: Date
    ) {
        self.id = id
        self.channel = channel
        self.status = status
        self.providerMessageId = providerMessageId
        self.retryable = retryable
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.attemptedAt = attemptedAt
    }
}

/// The next thing to do for one delivery: a pure function of its attempts, so the whole
/// fallback policy (WhatsApp → SMS → e-mail, retries, time-outs) is tested without a database
/// or a provider.
public enum DispatchPlan {
    public enum Step: Sendable, Equatable {
        /// Record a new attempt on this channel, then call the provider.
        case send(DispatchChannel)
        /// This attempt was recorded but its call never answered (a crash, a lost answer): look
        /// it up at the provider before anything is sent again.
        case reconcile(AttemptView)
        /// This attempt was accepted and not confirmed yet: ask the provider, and time it out
        /// once its channel's time-out has passed.
        case check(AttemptView)
        /// A channel confirmed delivery.
        case delivered(AttemptView)
        /// Every channel failed; the reasons, one per channel, oldest first.
        case failed(reasons: [String])
    }

    public struct Policy: Sendable, Equatable {
        /// Tries per channel after retryable failures (429, 5xx, call time-outs), the first included.
        public var triesPerChannel: Int
        public init(triesPerChannel: Int = 5) { self.triesPerChannel = max(1, triesPerChannel) }
    }

    /// The next step for a delivery that is not final, given its `channels` (fallback order) and
    /// its `attempts` (oldest first).
    public static func next(channels listed: [DispatchChannel], attempts: [AttemptView], policy: Policy = Policy()) -> Step {
        // Any confirmed attempt (even a late one on an earlier channel) means it arrived.
        if let done = attempts.last(where: { $0.status.isDelivered }) { return .delivered(done) }
        // Each channel once, in the listed order, so a repeated channel cannot loop.
        var channels: [DispatchChannel] = []
        for c in listed where !channels.contains(c) { channels.append(c) }
        guard let first = channels.first else { return .failed(reasons: ["the recipient has no channel"]) }
        guard let last = attempts.last else { return .send(first) }
        switch last.status {
        case .queued:
            return last.providerMessageId == nil ? .reconcile(last) : .check(last)
        case .sent:
            // SendGrid's acceptance is the last word we get for e-mail (no event webhook).
            return last.channel == .email ? .delivered(last) : .check(last)
        case .delivered, .read:
            return .delivered(last)
        case .undelivered, .failed, .timedOut:
            if last.retryable {
                var tries = 0
                for a in attempts.reversed() {
                    guard a.channel == last.channel, a.retryable, a.status.isFailure else { break }
                    tries += 1
                }
                if tries < policy.triesPerChannel { return .send(last.channel) }
            }
            guard let index = channels.firstIndex(of: last.channel), index + 1 < channels.count else {
                return .failed(reasons: reasons(attempts))
            }
            return .send(channels[index + 1])
        }
    }

    /// One line per channel tried: its last failure.
    static func reasons(_ attempts: [AttemptView]) -> [String] {
        var seen: [DispatchChannel] = []
        var last: [DispatchChannel: AttemptView] = [:]
        for a in attempts {
            if last[a.channel] == nil { seen.append(a.channel) }
            last[a.channel] = a
        }
        return seen.compactMap { channel in
            guard let a = last[channel] else { return nil }
            let code = a.errorCode.map { " (\($0))" } ?? ""
            return "\(channel.rawValue): \(a.status.rawValue)\(code)" + (a.errorMessage.map { ": \($0)" } ?? "")
        }
    }

    /// Exponential backoff with full jitter: a random wait in [0, min(cap, base · 2^(try−1))],
    /// never less than `floor`. `random` is in [0, 1).
    public static func backoff(try attempt: Int, base: Duration, cap: Duration, floor: Duration = .milliseconds(200), random: Double)
        -> Duration
    {
        let exponent = min(max(attempt, 1) - 1, 30)
        let ceiling = min(cap, base * (1 << exponent))
        let wait = ceiling * min(max(random, 0), 1)
        return max(floor, wait)
    }
}
