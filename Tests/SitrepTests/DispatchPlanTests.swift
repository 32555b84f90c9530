import DeliveryWorker
import Foundation
import Testing

/// The dispatch state machine without a database or a provider: `DispatchPlan.next`, the
/// forward-only rule of attempts, Twilio's statuses and the retry backoff.
@Suite("DispatchPlanTests")
struct DispatchPlanTests {
    static let all: [DispatchChannel] = [.whatsapp, .sms, .email]
    static let start = Date(timeIntervalSince1970: 1_750_000_000)

    /// One attempt; ids and times follow the order of creation.
    static func attempt(
        _ channel: DispatchChannel, _ status: AttemptStatus, id providerMessageId: String? = nil, retryable: Bool = false,
        code: String? = nil, message: String? = nil, at second: Int = 0
    ) -> AttemptView {
        AttemptView(
            id: UUID(), channel: channel, status: status, providerMessageId: providerMessageId, retryable: retryable, errorCode: code,
            errorMessage: message, attemptedAt: start + Double(second))
    }

    static func retryableFailure(_ channel: DispatchChannel = .whatsapp) -> AttemptView {
        attempt(channel, .failed, retryable: true, code: "http_503")
    }

    static func finalFailure(_ channel: DispatchChannel = .whatsapp) -> AttemptView {
        attempt(channel, .failed, retryable: false, code: "63016")
    }

    // MARK: - next: the first steps

    @Test func noAttemptsSendsOnTheFirstChannel() {
        #expect(DispatchPlan.next(channels: Self.all, attempts: []) == .send(.whatsapp))
        #expect(DispatchPlan.next(channels: [.email, .sms], attempts: []) == .send(.email))
        #expect(DispatchPlan.next(channels: [.sms], attempts: []) == .send(.sms))
    }

    @Test func noChannelsFails() {
        #expect(DispatchPlan.next(channels: [], attempts: []) == .failed(reasons: ["the recipient has no channel"]))
        #expect(
            DispatchPlan.next(channels: [], attempts: [Self.finalFailure()]) == .failed(reasons: ["the recipient has no channel"]))
    }

    @Test func aQueuedAttemptWithoutAMessageIdIsReconciledAndWithOneChecked() {
        let lost = Self.attempt(.whatsapp, .queued)
        #expect(DispatchPlan.next(channels: Self.all, attempts: [lost]) == .reconcile(lost))
        let known = Self.attempt(.sms, .queued, id: "SM0001")
        #expect(DispatchPlan.next(channels: Self.all, attempts: [Self.finalFailure(), known]) == .check(known))
        let mail = Self.attempt(.email, .queued)
        #expect(DispatchPlan.next(channels: Self.all, attempts: [mail]) == .reconcile(mail))
    }

    @Test func aSentMessageIsCheckedButASentMailIsDelivered() {
        for channel in [DispatchChannel.whatsapp, .sms] {
            let sent = Self.attempt(channel, .sent, id: "SM\(channel.rawValue)")
            #expect(DispatchPlan.next(channels: Self.all, attempts: [sent]) == .check(sent))
        }
        let mail = Self.attempt(.email, .sent, id: "sg-1")
        #expect(
            DispatchPlan.next(channels: Self.all, attempts: [Self.finalFailure(.whatsapp), Self.finalFailure(.sms), mail])
                == .delivered(mail))
    }

    @Test func anyDeliveredOrReadAttemptMeansDelivered() {
        for status in [AttemptStatus.delivered, .read] {
            let done = Self.attempt(.whatsapp, status, id: "SM1")
            #expect(DispatchPlan.next(channels: Self.all, attempts: [done]) == .delivered(done))
            // A late WhatsApp delivery report after the time-out, while SMS is under way.
            for smsStatus in [AttemptStatus.queued, .sent, .failed, .undelivered, .timedOut] {
                let sms = Self.attempt(.sms, smsStatus, id: smsStatus == .queued ? nil : "SM2", at: 600)
                #expect(DispatchPlan.next(channels: Self.all, attempts: [done, sms]) == .delivered(done))
            }
            // Also when every later channel failed.
            let later = [done, Self.finalFailure(.sms), Self.finalFailure(.email)]
            #expect(DispatchPlan.next(channels: Self.all, attempts: later) == .delivered(done))
        }
    }

    // MARK: - next: fallback and retries

    @Test func aFinalFailureFallsBackToTheNextChannel() {
        #expect(DispatchPlan.next(channels: Self.all, attempts: [Self.finalFailure(.whatsapp)]) == .send(.sms))
        #expect(DispatchPlan.next(channels: Self.all, attempts: [Self.finalFailure(.whatsapp), Self.finalFailure(.sms)]) == .send(.email))
        #expect(
            DispatchPlan.next(channels: Self.all, attempts: [Self.attempt(.whatsapp, .undelivered, id: "SM1", code: "63024")]) == .send(.sms))
        // The channel list decides the order, not a fixed one.
        #expect(DispatchPlan.next(channels: [.email, .whatsapp], attempts: [Self.finalFailure(.email)]) == .send(.whatsapp))
    }

    @Test func aFinalFailureOnTheLastChannelFailsWithOneReasonPerChannelInOrder() {
        let attempts = [
            Self.attempt(.whatsapp, .failed, retryable: true, code: "http_503", message: "service unavailable"),
            Self.attempt(.whatsapp, .undelivered, id: "SM1", code: "63016", message: "outside the 24-hour window"),
            Self.attempt(.sms, .timedOut, id: "SM2"),
            Self.attempt(.email, .failed, code: "http_400", message: "invalid address"),
        ]
        #expect(
            DispatchPlan.next(channels: Self.all, attempts: attempts)
                == .failed(reasons: [
                    "whatsapp: undelivered (63016): outside the 24-hour window",
                    "sms: timed_out",
                    "email: failed (http_400): invalid address",
                ]))
        let sms = [Self.attempt(.sms, .failed, code: "21211")]
        #expect(DispatchPlan.next(channels: [.sms], attempts: sms) == .failed(reasons: ["sms: failed (21211)"]))
    }

    @Test func retryableFailuresStayOnTheChannelUntilTheTriesAreUsed() {
        let policy = DispatchPlan.Policy(triesPerChannel: 3)
        let r = Self.retryableFailure
        #expect(DispatchPlan.next(channels: Self.all, attempts: [r(.whatsapp)], policy: policy) == .send(.whatsapp))
        #expect(DispatchPlan.next(channels: Self.all, attempts: [r(.whatsapp), r(.whatsapp)], policy: policy) == .send(.whatsapp))
        #expect(DispatchPlan.next(channels: Self.all, attempts: [r(.whatsapp), r(.whatsapp), r(.whatsapp)], policy: policy) == .send(.sms))
        // The tries are counted per channel: the SMS channel starts afresh.
        let onSMS = [r(.whatsapp), r(.whatsapp), r(.whatsapp), r(.sms), r(.sms)]
        #expect(DispatchPlan.next(channels: Self.all, attempts: onSMS, policy: policy) == .send(.sms))
        #expect(DispatchPlan.next(channels: Self.all, attempts: onSMS + [r(.sms)], policy: policy) == .send(.email))
        // Retries used up on the last channel: failed, with the last failure of each channel.
        let exhausted = [r(.email), r(.email), r(.email)]
        #expect(DispatchPlan.next(channels: [.email], attempts: exhausted, policy: policy) == .failed(reasons: ["email: failed (http_503)"]))
    }

    @Test func onlyTheTrailingRunOfRetryableFailuresOnTheChannelCounts() {
        let policy = DispatchPlan.Policy(triesPerChannel: 3)
        let r = Self.retryableFailure
        let n = Self.finalFailure
        // A final failure ends the channel, whatever came before.
        #expect(DispatchPlan.next(channels: Self.all, attempts: [r(.whatsapp), n(.whatsapp)], policy: policy) == .send(.sms))
        // Retryable failures after a final one on the same channel count from the final one on:
        // the run before it is not added in.
        #expect(
            DispatchPlan.next(channels: Self.all, attempts: [r(.whatsapp), r(.whatsapp), n(.whatsapp), r(.whatsapp)], policy: policy)
                == .send(.whatsapp))
        #expect(
            DispatchPlan.next(channels: Self.all, attempts: [r(.whatsapp), r(.whatsapp), n(.whatsapp), r(.whatsapp), r(.whatsapp)], policy: policy)
                == .send(.whatsapp))
        #expect(
            DispatchPlan.next(
                channels: Self.all, attempts: [r(.whatsapp), r(.whatsapp), n(.whatsapp), r(.whatsapp), r(.whatsapp), r(.whatsapp)], policy: policy)
                == .send(.sms))
        // So does an attempt on another channel, or one that is not a failure.
        #expect(DispatchPlan.next(channels: Self.all, attempts: [r(.sms), r(.sms), r(.whatsapp)], policy: policy) == .send(.whatsapp))
        let sentThenRetry = [r(.whatsapp), r(.whatsapp), Self.attempt(.whatsapp, .sent, id: "SM1", retryable: true), r(.whatsapp)]
        #expect(DispatchPlan.next(channels: Self.all, attempts: sentThenRetry, policy: policy) == .send(.whatsapp))
        // A retryable undelivered or timed-out attempt counts like a failed one.
        let mixed = [r(.whatsapp), Self.attempt(.whatsapp, .undelivered, retryable: true), Self.attempt(.whatsapp, .timedOut, retryable: true)]
        #expect(DispatchPlan.next(channels: Self.all, attempts: mixed, policy: policy) == .send(.sms))
    }

    @Test func oneTryPerChannelMovesOnAtOnce() {
        #expect(DispatchPlan.Policy(triesPerChannel: 0).triesPerChannel == 1)
        #expect(DispatchPlan.Policy(triesPerChannel: -4).triesPerChannel == 1)
        #expect(DispatchPlan.Policy().triesPerChannel == 5)
        let once = DispatchPlan.Policy(triesPerChannel: 1)
        #expect(DispatchPlan.next(channels: Self.all, attempts: [Self.retryableFailure(.whatsapp)], policy: once) == .send(.sms))
        let five = Array(repeating: Self.retryableFailure(.whatsapp), count: 4)
        #expect(DispatchPlan.next(channels: Self.all, attempts: five) == .send(.whatsapp))
        #expect(DispatchPlan.next(channels: Self.all, attempts: five + [Self.retryableFailure(.whatsapp)]) == .send(.sms))
    }

    @Test func aTimeOutMovesToTheNextChannel() {
        let timedOut = Self.attempt(.whatsapp, .timedOut, id: "SM1")
        #expect(DispatchPlan.next(channels: Self.all, attempts: [timedOut]) == .send(.sms))
        let smsTimedOut = Self.attempt(.sms, .timedOut, id: "SM2")
        #expect(DispatchPlan.next(channels: Self.all, attempts: [timedOut, smsTimedOut]) == .send(.email))
        #expect(
            DispatchPlan.next(channels: [.whatsapp, .sms], attempts: [timedOut, smsTimedOut])
                == .failed(reasons: ["whatsapp: timed_out", "sms: timed_out"]))
    }

    // MARK: - AttemptStatus

    static let allowedMoves: Set<String> = [
        "queued→sent", "queued→delivered", "queued→read", "queued→undelivered", "queued→failed", "queued→timed_out",
        "sent→delivered", "sent→read", "sent→undelivered", "sent→failed", "sent→timed_out",
        "delivered→read",
        "timed_out→delivered", "timed_out→read",
    ]

    @Test(arguments: AttemptStatus.allCases, AttemptStatus.allCases)
    func mayMoveIsForwardOnly(from: AttemptStatus, to: AttemptStatus) {
        let move = "\(from.rawValue)→\(to.rawValue)"
        #expect(from.mayMove(to: to) == Self.allowedMoves.contains(move), "\(move)")
    }

    @Test func theMoveTableCoversEveryPair() {
        #expect(AttemptStatus.allCases.count == 7)
        let allowed = AttemptStatus.allCases.flatMap { from in
            AttemptStatus.allCases.filter { from.mayMove(to: $0) }.map { "\(from.rawValue)→\($0.rawValue)" }
        }
        #expect(Set(allowed) == Self.allowedMoves)
        #expect(allowed.count == 14)
    }

    @Test func deliveredAndFailureAreDisjoint() {
        #expect(AttemptStatus.allCases.filter(\.isDelivered) == [.delivered, .read])
        #expect(AttemptStatus.allCases.filter(\.isFailure) == [.undelivered, .failed, .timedOut])
    }

    @Test func twilioStatuses() {
        let mapped: [String: AttemptStatus] = [
            "queued": .queued, "sent": .sent, "delivered": .delivered, "read": .read, "undelivered": .undelivered, "failed": .failed,
            "canceled": .failed,
        ]
        for (twilio, status) in mapped {
            #expect(AttemptStatus(twilio: twilio) == status, "\(twilio)")
        }
        for twilio in ["accepted", "sending", "scheduled", "receiving", "received", "timed_out", "Delivered", "", "partially_delivered"] {
            #expect(AttemptStatus(twilio: twilio) == nil, "\(twilio)")
        }
    }

    // MARK: - backoff

    static let base = Duration.seconds(1)
    static let cap = Duration.seconds(60)
    static let floor = Duration.milliseconds(200)

    static func backoff(_ attempt: Int, _ random: Double) -> Duration {
        DispatchPlan.backoff(try: attempt, base: base, cap: cap, floor: floor, random: random)
    }

    @Test func backoffStaysBetweenTheFloorAndTheCap() {
        var rng = SplitMix64(seed: 7)
        for attempt in Array(-3...64) + [1000, Int.max / 2, Int.max] {
            for random in [0, 0.0001, 0.25, 0.5, 0.999, 0.999_999] + (0..<20).map({ _ in Double.random(in: 0..<1, using: &rng) }) {
                let wait = Self.backoff(attempt, random)
                #expect(wait >= Self.floor, "try \(attempt), random \(random)")
                #expect(wait <= Self.cap, "try \(attempt), random \(random)")
            }
        }
    }

    @Test func backoffIsTheFloorForRandomZero() {
        for attempt in [1, 2, 5, 30, 31, 100, Int.max] {
            #expect(Self.backoff(attempt, 0) == Self.floor)
        }
        #expect(DispatchPlan.backoff(try: 3, base: .seconds(2), cap: .seconds(10), random: 0) == .milliseconds(200))
    }

    @Test func backoffGrowsWithTheTriesUpToTheCap() {
        let waits = (1...12).map { Self.backoff($0, 0.999) }
        // 1 s, 2 s, 4 s, 8 s, 16 s, 32 s (× 0.999), then the cap of 60 s (× 0.999).
        for i in 1..<7 {
            #expect(waits[i] > waits[i - 1], "try \(i + 1)")
        }
        for i in 7..<12 {
            #expect(waits[i] == waits[6], "try \(i + 1)")
        }
        #expect(waits[0] > .milliseconds(990) && waits[0] < .seconds(1))
        #expect(waits[5] > .milliseconds(31_900) && waits[5] < .seconds(32))
        #expect(waits[6] > .milliseconds(59_900) && waits[6] < .seconds(60))
    }

    @Test func hugeTryNumbersDoNotOverflow() {
        let capped = Self.backoff(40, 0.999)
        #expect(Self.backoff(Int.max, 0.999) == capped)
        #expect(Self.backoff(Int.max - 1, 0.5) == Self.backoff(64, 0.5))
        // Even with a long base and a cap far away, the exponent is bounded.
        let long = DispatchPlan.backoff(try: Int.max, base: .seconds(3600), cap: .seconds(Int64.max / 4), random: 0.5)
        #expect(long == DispatchPlan.backoff(try: 31, base: .seconds(3600), cap: .seconds(Int64.max / 4), random: 0.5))
        #expect(long > .seconds(3600))
    }

    // MARK: - properties over random histories

    @Test func nextIsConsistentOverRandomHistories() {
        var rng = SplitMix64(seed: 0x5117_4E9D)
        var seen: Set<String> = []
        for round in 0..<500 {
            var channels = Self.all.shuffled(using: &rng)
            channels.removeLast(Int.random(in: 0...2, using: &rng))
            let attempts = (0..<Int.random(in: 0...8, using: &rng)).map { i in
                let status = AttemptStatus.allCases.randomElement(using: &rng)!
                return Self.attempt(
                    channels.randomElement(using: &rng)!, status, id: Bool.random(using: &rng) ? "SM\(i)" : nil,
                    retryable: Bool.random(using: &rng), code: Bool.random(using: &rng) ? "c\(i)" : nil, at: i)
            }
            let policy = DispatchPlan.Policy(triesPerChannel: Int.random(in: 1...4, using: &rng))
            let step = DispatchPlan.next(channels: channels, attempts: attempts, policy: policy)
            let context = "round \(round): \(channels) \(attempts.map { "\($0.channel.rawValue):\($0.status.rawValue)" }) → \(step)"
            let last = attempts.last
            let delivered = attempts.contains { $0.status.isDelivered } || (last?.status == .sent && last?.channel == .email)
            switch step {
            case .send(let channel):
                seen.insert("send")
                #expect(channels.contains(channel), "\(context)")
                if let last {
                    #expect(channels.firstIndex(of: channel)! >= channels.firstIndex(of: last.channel)!, "\(context)")
                    #expect(last.status.isFailure, "\(context)")
                } else {
                    #expect(channel == channels.first, "\(context)")
                }
            case .delivered(let attempt):
                seen.insert("delivered")
                #expect(attempts.contains(attempt), "\(context)")
            case .reconcile(let attempt), .check(let attempt):
                seen.insert("reconcile/check")
                #expect(attempt == last, "\(context)")
            case .failed(let reasons):
                seen.insert("failed")
                #expect(last?.status.isFailure == true && last?.channel == channels.last, "\(context)")
                let tried = attempts.map(\.channel).reduce(into: [DispatchChannel]()) { if !$0.contains($1) { $0.append($1) } }
                #expect(reasons.map { String($0.prefix { $0 != ":" }) } == tried.map(\.rawValue), "\(context)")
            }
            if case .delivered = step {
                #expect(delivered, "\(context)")
            } else {
                #expect(!delivered, "\(context)")
            }
        }
        // The generator reaches every kind of step.
        #expect(seen == ["send", "delivered", "reconcile/check", "failed"])
    }
}
