import AsyncHTTPClient
import BriefingPDF
import Foundation
import Logging
import PostgresNIO
import SitrepRuntime
import Tracing
import Twilio

/// How the dispatch worker behaves.
public struct DispatchSettings: Sendable {
    /// The public URL of `POST /v1/webhooks/twilio/status` (behind the proxy), without query.
    public var statusCallbackURL: String
    /// The approved WhatsApp content template per language (`en`, `ar`): a `ContentSid` (`HX…`).
    /// Its variables are `{{1}}` the recipient's name, `{{2}}` the briefing date, `{{3}}` the
    /// title and `{{4}}` the reference the worker looks a message up by after a crash.
    public var whatsAppContentSids: [String: String]
    /// How long a WhatsApp or SMS message may stay unconfirmed before the next channel is tried.
    public var channelTimeout: Duration
    public var policy: DispatchPlan.Policy
    /// Backoff between retries on one channel: full jitter up to `retryBase · 2^n`, at most `retryCap`.
    public var retryBase: Duration
    public var retryCap: Duration
    /// Deliveries worked on at once by this worker.
    public var concurrency: Int
    /// How often to look for due work when there was none.
    public var pollInterval: Duration
    /// How long a claim lasts; must outlast the longest provider call (with its look-up).
    public var lease: Duration

    public init(
        statusCallbackURL: String, whatsAppContentSids: [String: String], channelTimeout: Duration = .seconds(600),
        policy: DispatchPlan.Policy = DispatchPlan.Policy(), retryBase: Duration = .seconds(2), retryCap: Duration = .seconds(300),
        concurrency: Int = 8, pollInterval: Duration = .seconds(1), lease: Duration = .seconds(60)
    ) {
        self.statusCallbackURL = statusCallbackURL
        self.whatsAppContentSids = whatsAppContentSids
        self.channelTimeout = channelTimeout
        self.policy = policy
        self.retryBase = retryBase
        self.retryCap = retryCap
        self.concurrency = max(1, concurrency)
        self.pollInterval = pollInterval
        self.lease = lease
    }
}

/// The dispatch worker: claims due deliveries and walks each through WhatsApp → SMS → e-mail
/// (in the recipient's order) until a channel confirms or every channel failed.
///
/// Crash safety: every attempt is recorded before its provider call, and a claim is a lease.
/// If the process dies anywhere, the lease runs out, another worker (or this one restarted)
/// claims the delivery, finds the attempt whose call never answered and looks it up at the
/// provider (Twilio's message list by recipient and day, matched on the attempt id carried in
/// the message; SendGrid's activity feed by custom argument) before sending anything again.
public final class DispatchWorker: Sendable {
    public let store: DispatchStore
    let twilio: TwilioClient?
    let sendGrid: SendGridClient?
    let settings: DispatchSettings
    let logger: Logger
    let content: BriefingContentCache

    public init(db: PostgresClient, twilio: TwilioClient?, sendGrid: SendGridClient?, settings: DispatchSettings, logger: Logger) {
        self.store = DispatchStore(db: db, logger: logger)
        self.twilio = twilio
        self.sendGrid = sendGrid
        self.settings = settings
        self.logger = logger
        self.content = BriefingContentCache(db: db, logger: logger)
    }

    /// Works until the task is cancelled or `stopRequested` says so (checked between batches,
    /// so deliveries in hand are finished first).
    public func run(stopRequested: @Sendable () -> Bool = { false }) async {
        logger.info("dispatch worker started", metadata: ["concurrency": "\(settings.concurrency)"])
        while !Task.isCancelled && !stopRequested() {
            let worked: Int
            do {
                worked = try await runOnce()
            } catch {
                logger.warning("dispatch: claiming work failed", metadata: ["error": "\(String(reflecting: error))"])
                worked = 0
            }
            if worked == 0 { try? await Task.sleep(for: settings.pollInterval) }
        }
        logger.info("dispatch worker stopped")
    }

    /// Claims one batch of due deliveries and works each as far as it can go now. Returns how
    /// many were claimed.
    @discardableResult
    public func runOnce() async throws -> Int {
        let (token, ids) = try await store.claim(limit: settings.concurrency, lease: settings.lease)
        await withTaskGroup(of: Void.self) { group in
            for id in ids {
                group.addTask {
                    do {
                        // One trace per delivery step: the provider calls' client spans under it.
                        try await withSpan("dispatch delivery", ofKind: .internal) { span in
                            if span.isRecording { span.attributes["sitrep.delivery_id"] = id.lowercasedString }
                            try await self.work(id, token: token)
                        }
                    } catch {
                        // The lease runs out and the delivery is picked up again.
                        self.logger.warning(
                            "dispatch: a delivery step failed",
                            metadata: ["delivery": "\(id.lowercasedString)", "error": "\(String(reflecting: error))"])
                    }
                }
            }
        }
        return ids.count
    }

    /// Steps one claimed delivery until it is settled or has to wait.
    func work(_ id: UUID, token: UUID) async throws {
        for _ in 0..<16 {
            guard let delivery = try await store.load(id, token: token) else { return }
            switch DispatchPlan.next(channels: delivery.channels, attempts: delivery.attempts, policy: settings.policy) {
            case .delivered:
                try await store.complete(id, token: token, delivered: true, reason: nil, actor: .worker)
                return
            case .failed(let reasons):
                try await store.complete(id, token: token, delivered: false, reason: reasons.joined(separator: "; "), actor: .worker)
                return
            case .send(let channel):
                guard let wait = try await send(channel, delivery, token: token) else { continue }
                try await store.release(id, token: token, next: Date() + wait.timeInterval)
                return
            case .reconcile(let attempt):
                guard let wait = try await reconcile(attempt, delivery, token: token) else { continue }
                try await store.release(id, token: token, next: Date() + wait.timeInterval)
                return
            case .check(let attempt):
                guard let next = try await check(attempt, delivery, token: token) else { continue }
                try await store.release(id, token: token, next: next)
                return
            }
        }
        try await store.release(id, token: token, next: nil)
    }

    // MARK: Sending

    /// Records an attempt, calls the provider, records the answer. Returns how long to wait
    /// before the delivery needs attention again, or nil to go on at once.
    func send(_ channel: DispatchChannel, _ delivery: DeliveryView, token: UUID) async throws -> Duration? {
        guard let attempt = try await store.startAttempt(delivery.id, token: token, channel: channel) else { return nil }
        let reference = attempt.id.lowercasedString
        let result: Result<String, ProviderError>
        do {
            let brief = try await content.briefing(delivery.briefingId)
            result = await call(channel, delivery, brief, reference: reference)
        } catch {
            result = .failure(ProviderError(kind: .final, cause: .invalidRequest, message: "the briefing could not be read: \(error)"))
        }
        switch result {
        case .success(let messageId):
            try await store.recordAccepted(attempt, deliveryId: delivery.id, token: token, providerMessageId: messageId, status: .sent)
            // E-mail is settled by SendGrid's acceptance; WhatsApp and SMS wait for a report.
            return channel == .email ? nil : settings.channelTimeout
        case .failure(let error) where error.mayHaveBeenAccepted:
            // Maybe sent: leave the attempt open, and look it up once the call has surely ended.
            logger.notice(
                "dispatch: provider call ended without an answer; will reconcile",
                metadata: ["attempt": "\(reference)", "error": "\(error)"])
            return max(settings.retryBase, requestTimeout(channel))
        case .failure(let error):
            try await store.recordFailure(
                attempt, deliveryId: delivery.id, token: token, retryable: error.kind == .retryable, errorCode: Self.code(error),
                errorMessage: error.message)
            guard error.kind == .retryable else { return nil }
            return retryWait(delivery, channel: channel, hint: error.retryAfter)
        }
    }

    /// One provider call; the provider's message id on success.
    func call(_ channel: DispatchChannel, _ delivery: DeliveryView, _ brief: BriefingContent, reference: String) async -> Result<
        String, ProviderError
    > {
        let arabic = delivery.language == "ar"
        let title = arabic ? brief.titleAr : brief.title
        do throws(ProviderError) {
            switch channel {
            case .whatsapp:
                guard let twilio else { throw Self.notConfigured("WhatsApp (Twilio)") }
                guard let sid = settings.whatsAppContentSids[delivery.language] ?? settings.whatsAppContentSids["en"] else {
                    throw Self.notConfigured("a WhatsApp template for \(delivery.language)")
                }
                let message = try await twilio.sendWhatsAppTemplate(
                    to: delivery.phone, contentSid: sid,
                    contentVariables: ["1": delivery.recipientName, "2": brief.date, "3": title, "4": reference],
                    statusCallback: callbackURL(reference))
                return .success(message.sid)
            case .sms:
                guard let twilio else { throw Self.notConfigured("SMS (Twilio)") }
                let message = try await twilio.sendSMS(
                    to: delivery.phone, body: Self.smsBody(brief, arabic: arabic, reference: reference), statusCallback: callbackURL(reference))
                return .success(message.sid)
            case .email:
                guard let sendGrid else { throw Self.notConfigured("e-mail (SendGrid)") }
                guard let email = delivery.email else {
                    throw ProviderError(kind: .final, cause: .invalidRequest, message: "the recipient has no e-mail address")
                }
                let pdf = await content.pdf(delivery.briefingId)
                let id = try await sendGrid.send(
                    to: email, name: delivery.recipientName, subject: Self.subject(brief, arabic: arabic),
                    text: Self.mailText(brief, arabic: arabic, reference: reference), html: nil,
                    attachment: pdf.map { (filename: "briefing-\(brief.date).pdf", contentType: "application/pdf", bytes: $0) },
                    customArgs: ["sitrep_attempt": reference, "sitrep_delivery": delivery.id.lowercasedString])
                return .success(id)
            }
        } catch {
            return .failure(error)
        }
    }

    // MARK: Reconciling and checking

    /// Looks up an attempt whose call never answered. Returns a wait, or nil to go on at once.
    func reconcile(_ attempt: AttemptView, _ delivery: DeliveryView, token: UUID) async throws -> Duration? {
        let reference = attempt.id.lowercasedString
        // A call may still be in flight (another worker's, before a crash): wait it out.
        let settled = attempt.attemptedAt + (requestTimeout(attempt.channel) + .seconds(2)).timeInterval
        if Date() < settled { return .seconds(settled.timeIntervalSinceNow) }
        let found: (id: String, status: AttemptStatus, code: Int?, message: String?)?
        do {
            found = try await lookUp(attempt, delivery)
        } catch {
            logger.warning("dispatch: could not look up an interrupted send", metadata: ["attempt": "\(reference)", "error": "\(error)"])
            return retryWait(delivery, channel: attempt.channel, hint: error.retryAfter)
        }
        guard let found else {
            // Not at the provider: the call never got through. A retryable failure; sent again.
            try await store.recordFailure(
                attempt, deliveryId: delivery.id, token: token, retryable: true, errorCode: "not_sent",
                errorMessage: "the send was interrupted and the provider has no such message")
            return nil
        }
        logger.notice("dispatch: found the message of an interrupted send", metadata: ["attempt": "\(reference)", "id": "\(found.id)"])
        try await store.recordAccepted(
            attempt, deliveryId: delivery.id, token: token, providerMessageId: found.id, status: found.status.isFailure ? .sent : found.status,
            reconciled: true)
        if found.status.isFailure {
            try await store.recordFailure(
                attempt, deliveryId: delivery.id, token: token, status: found.status, retryable: false, errorCode: found.code.map(String.init),
                errorMessage: found.message ?? found.status.rawValue)
        }
        return nil
    }

    /// The provider's record of the attempt's message, matched on the attempt id it carries.
    func lookUp(_ attempt: AttemptView, _ delivery: DeliveryView) async throws(ProviderError) -> (
        id: String, status: AttemptStatus, code: Int?, message: String?
    )? {
        let reference = attempt.id.lowercasedString
        switch attempt.channel {
        case .whatsapp, .sms:
            guard let twilio else { throw Self.notConfigured("Twilio") }
            let to = attempt.channel == .whatsapp ? TwilioClient.whatsAppAddress(delivery.phone) : delivery.phone
            let messages = try await twilio.listMessages(to: to, sentAfter: attempt.attemptedAt)
            guard let m = messages.first(where: { $0.body?.contains(reference) == true }) else { return nil }
            return (m.sid, AttemptStatus(twilio: m.status.rawValue) ?? .sent, m.errorCode, m.errorMessage)
        case .email:
            guard let sendGrid else { throw Self.notConfigured("SendGrid") }
            guard let m = try await sendGrid.findMessages(customArg: "sitrep_attempt", value: reference).first else { return nil }
            return (m.msgId, .sent, nil, nil)
        }
    }

    /// Asks Twilio for an unconfirmed message (its callback may have been lost) and times it
    /// out once its channel's time-out has passed. Returns when to look again, or nil to go on.
    func check(_ attempt: AttemptView, _ delivery: DeliveryView, token: UUID) async throws -> Date? {
        let deadline = attempt.attemptedAt + settings.channelTimeout.timeInterval
        guard let sid = attempt.providerMessageId, let twilio else {
            try await store.recordFailure(
                attempt, deliveryId: delivery.id, token: token, status: .timedOut, retryable: false, errorCode: nil,
                errorMessage: "no confirmation within \(settings.channelTimeout)")
            return nil
        }
        do {
            let message = try await twilio.fetchMessage(sid: sid)
            if let status = AttemptStatus(twilio: message.status.rawValue), status.isDelivered || status.isFailure {
                let outcome = try await store.applyReport(
                    attemptId: attempt.id, messageId: sid, status: status, errorCode: message.errorCode.map(String.init),
                    errorMessage: message.errorMessage, actor: .worker)
                if case .applied = outcome { return nil }
            }
        } catch {
            logger.warning("dispatch: could not fetch a message's status", metadata: ["sid": "\(sid)", "error": "\(error)"])
        }
        guard Date() >= deadline else { return deadline }
        try await store.recordFailure(
            attempt, deliveryId: delivery.id, token: token, status: .timedOut, retryable: false, errorCode: nil,
            errorMessage: "no delivery confirmation within \(settings.channelTimeout)")
        return nil
    }

    // MARK: Support

    func callbackURL(_ reference: String) -> String { settings.statusCallbackURL + "?attempt=" + reference }

    func requestTimeout(_ channel: DispatchChannel) -> Duration {
        switch channel {
        case .whatsapp, .sms: return twilio?.configuration.requestTimeout ?? .seconds(15)
        case .email: return sendGrid?.configuration.requestTimeout ?? .seconds(15)
        }
    }

    func retryWait(_ delivery: DeliveryView, channel: DispatchChannel, hint: Duration?) -> Duration {
        let tries = delivery.attempts.reversed().prefix { $0.channel == channel }.count + 1
        let wait = DispatchPlan.backoff(try: tries, base: settings.retryBase, cap: settings.retryCap, random: Double.random(in: 0..<1))
        return max(wait, min(hint ?? .zero, settings.retryCap))
    }

    static func code(_ error: ProviderError) -> String? {
        if let code = error.code { return String(code) }
        if let status = error.httpStatus { return "http_\(status)" }
        switch error.cause {
        case .timeout: return "timeout"
        case .unreachable, .connection: return "unreachable"
        default: return nil
        }
    }

    static func notConfigured(_ what: String) -> ProviderError {
        ProviderError(kind: .final, cause: .invalidRequest, message: "\(what) is not configured")
    }

    static func subject(_ b: BriefingContent, arabic: Bool) -> String {
        arabic ? "الإحاطة اليومية \(b.date): \(b.titleAr)" : "Daily briefing \(b.date): \(b.title)"
    }

    static func smsBody(_ b: BriefingContent, arabic: Bool, reference: String) -> String {
        let head = subject(b, arabic: arabic)
        let tail = "\nRef \(reference)"
        let summary = arabic ? b.summaryAr : b.summary
        let room = 1500 - head.count - tail.count
        let text = summary.count <= room ? summary : String(summary.prefix(max(0, room - 1))) + "…"
        return head + "\n" + text + tail
    }

    static func mailText(_ b: BriefingContent, arabic: Bool, reference: String) -> String {
        var text = (arabic ? b.titleAr : b.title) + " (\(b.date))\n\n" + (arabic ? b.summaryAr : b.summary) + "\n"
        for s in b.sections {
            text += "\n" + (arabic ? s.headingAr : s.heading) + "\n" + (arabic ? s.bodyAr : s.body) + "\n"
        }
        return text + "\nRef \(reference)\n"
    }
}
