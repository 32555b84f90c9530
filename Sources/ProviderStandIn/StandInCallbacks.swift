import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Twilio

extension StandInCore {
    /// One status change of a message, and whether it is called back.
    struct Step: Sendable, Equatable {
        var status: MessageStatus
        var errorCode: Int? = nil
        var call = true
    }

    /// The status changes a new message goes through under `behaviour`.
    static func plan(
        _ behaviour: ProviderStandIn.Behaviour, channel: ProviderStandIn.Channel, freeForm: Bool, sessionOpen: Bool
    ) -> [Step] {
        let call = behaviour != .dropCallbacks
        // WhatsApp refuses free-form text outside the 24-hour window the recipient opens by
        // writing in: the message is created, then fails.
        if channel == .whatsapp && freeForm && !sessionOpen {
            return [Step(status: .queued, call: call), Step(status: .failed, errorCode: 63016, call: call)]
        }
        switch behaviour {
        case .accept, .delay:
            return [Step(status: .queued), Step(status: .sent), Step(status: .delivered)]
        case .acceptAndRead:
            let read = channel == .whatsapp ? [Step(status: .read)] : []
            return [Step(status: .queued), Step(status: .sent), Step(status: .delivered)] + read
        case .failAfterSend(let status, let code):
            if status == .failed { return [Step(status: .queued), Step(status: .failed, errorCode: code)] }
            return [Step(status: .queued), Step(status: .sent), Step(status: status, errorCode: code)]
        case .dropCallbacks:
            return [Step(status: .queued, call: false), Step(status: .sent, call: false), Step(status: .delivered, call: false)]
        case .outOfOrderCallbacks:
            return [Step(status: .queued), Step(status: .delivered), Step(status: .sent)]
        case .neverDelivered:
            return [Step(status: .queued), Step(status: .sent)]
        case .failOnCreate, .tooManyRequests, .serverError:
            return []
        }
    }

    /// Twilio's text for the error codes the stand-in reports.
    static func errorMessage(_ code: Int) -> String {
        switch code {
        case 63016:
            "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template."
        case 30003: "Unreachable destination handset"
        case 30005: "Unknown destination handset"
        case 30006: "Landline or unreachable carrier"
        case 30007: "Message filtered"
        case 30008: "Unknown error"
        default: "Message delivery failed"
        }
    }

    /// Runs `plan` for `message` in a task of its own, which ``stop()`` cancels.
    func startCallbacks(for message: StandInMessage, plan: [Step]) {
        guard !plan.isEmpty else { return }
        state.withLock { s in
            guard !s.stopping else { return }
            let id = s.nextTaskId
            s.nextTaskId += 1
            // The task removes itself under the same lock, so never before it was inserted.
            s.callbackTasks[id] = Task {
                await self.run(plan, for: message)
                self.state.withLock { _ = $0.callbackTasks.removeValue(forKey: id) }
            }
        }
    }

    func run(_ plan: [Step], for message: StandInMessage) async {
        for step in plan {
            do {
                try await Task.sleep(for: configuration.callbackDelay)
            } catch {
                return
            }
            apply(step, to: message.sid)
            guard step.call, let url = message.statusCallback else { continue }
            await callBack(url, message: message, step: step)
        }
    }

    /// Moves the stored message to `step`'s status, unless it is already further along (an
    /// out-of-order `sent` after `delivered` does not move it back).
    func apply(_ step: Step, to sid: String) {
        state.withLock { s in
            guard let index = s.messages.firstIndex(where: { $0.sid == sid }) else { return }
            guard step.status.progress >= s.messages[index].status.progress else { return }
            s.messages[index].status = step.status
            if let code = step.errorCode {
                s.messages[index].errorCode = code
                s.messages[index].errorMessage = Self.errorMessage(code)
            }
        }
    }

    /// POSTs the status callback Twilio would send, signed with the auth token over `url` and
    /// the form, and records it.
    func callBack(_ url: String, message: StandInMessage, step: Step) async {
        var parameters: [(String, String)] = [
            ("SmsSid", message.sid), ("SmsStatus", step.status.rawValue), ("MessageStatus", step.status.rawValue),
            ("To", message.to), ("MessageSid", message.sid), ("AccountSid", configuration.accountSid), ("From", message.from),
            ("ApiVersion", "2010-04-01"),
        ]
        if let code = step.errorCode { parameters.append(("ErrorCode", String(code))) }
        if message.channel == .whatsapp { parameters.append(("ChannelPrefix", "whatsapp")) }
        let signature = TwilioSignature.compute(url: url, parameters: parameters, authToken: configuration.authToken)

        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")
        request.headers.add(name: "X-Twilio-Signature", value: signature)
        request.headers.add(name: "User-Agent", value: "TwilioProxy/1.1")
        request.headers.add(name: "I-Twilio-Idempotency-Token", value: Self.randomHex(16))
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(parameters)))
        var record = StandInCallback(
            messageSid: message.sid, url: url, status: step.status, parameters: parameters, signature: signature,
            answeredStatus: nil, failure: nil)
        do {
            let response = try await callbackClient.execute(request, timeout: TimeAmount(configuration.callbackTimeout))
            _ = try? await response.body.collect(upTo: 1 << 20)
            record.answeredStatus = Int(response.status.code)
            if response.status.code >= 300 {
                logger.warning(
                    "provider stand-in's status callback was refused",
                    metadata: ["sid": "\(message.sid)", "status": "\(step.status)", "answer": "\(response.status.code)"])
            }
        } catch {
            record.failure = String(describing: error)
            // Twilio does not retry a status callback either; the receiver's reconciliation has to
            // notice. Said out loud so a run that waits for it (Tools/bench) shows why.
            logger.warning(
                "provider stand-in could not deliver a status callback",
                metadata: ["sid": "\(message.sid)", "status": "\(step.status)", "error": "\(error)"])
        }
        let done = record
        state.withLock { $0.callbacks.append(done) }
    }

    /// Stops calling back: cancels every callback task and waits for them.
    func stop() async {
        let tasks = state.withLock { s in
            s.stopping = true
            return Array(s.callbackTasks.values)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }
}
