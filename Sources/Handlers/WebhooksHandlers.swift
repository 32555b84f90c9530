import DeliveryWorker
import Foundation
import Generated
import SitrepRuntime
import Twilio

/// What the Twilio status callback checks: the account and its auth token (the signature key),
/// and the public callback URL Twilio signs (the service sits behind a proxy, so the URL it was
/// reached at is not the one Twilio saw).
public struct TwilioWebhookSettings: Sendable {
    public var accountSid: String
    public var authToken: String
    /// `https://sitrep.example.gov/v1/webhooks/twilio/status`, without query.
    public var statusCallbackURL: String

    public init(accountSid: String, authToken: String, statusCallbackURL: String) {
        self.accountSid = accountSid
        self.authToken = authToken
        self.statusCallbackURL = statusCallbackURL
    }
}

extension SitrepHandlers {
    /// Twilio's message status callback. Order: signature (403, nothing read before it), then the
    /// form against `TwilioStatusCallback` (422), then the account (403), then the forward-only
    /// update of the attempt (`DispatchStore.applyReport`). Unknown, repeated and out-of-order
    /// reports answer 204 so Twilio stops retrying them.
    public func receiveTwilioStatus(_ input: ReceiveTwilioStatus.Input, context: OperationContext) async throws -> ReceiveTwilioStatus.Output {
        guard let settings = twilioWebhook else {
            return .serviceUnavailable(.serviceUnavailable("Message dispatch is not configured on this server.", retryAfter: nil))
        }
        let text = String(decoding: input.body, as: UTF8.self)
        let form = FormEncoding.decode(text)
        // The URL Twilio signed: the one Sitrep gave it, which carries the attempt id.
        let url = settings.statusCallbackURL + (input.attempt.map { "?attempt=" + $0.lowercasedString } ?? "")
        guard let signature = input.xTwilioSignature,
            TwilioSignature.isValid(signature: signature, url: url, parameters: form, authToken: settings.authToken)
        else {
            context.logger.warning("Twilio callback refused: bad signature", metadata: ["client": "\(context.clientAddress ?? "?")"])
            return .forbidden(
                Problem(
                    status: 403, code: "webhook.invalid_signature", title: "Invalid webhook signature",
                    detail: "X-Twilio-Signature does not match this request."))
        }

        // The generated decoder checks the schema's constraints; the first value of a name wins.
        var members: [(String, JSONValue)] = []
        var seen = Set<String>()
        for (name, value) in form where seen.insert(name).inserted { members.append((name, .string(value))) }
        var errors = ValidationErrors()
        guard
            let callback = TwilioStatusCallback(
                json: .object(JSONObject(uniqueKeysWithValues: members)), at: "/body", errors: &errors)
        else {
            return .unprocessableContent(.validation(errors))
        }
        guard callback.accountSid == settings.accountSid else {
            return .forbidden(
                Problem(
                    status: 403, code: "webhook.unknown_account", title: "Unknown Twilio account",
                    detail: "The callback is for another Twilio account."))
        }
        guard let status = AttemptStatus(twilio: callback.messageStatus) else { return .noContent }
        let outcome = try await database {
            try await DispatchStore(db: db, logger: context.logger).applyReport(
                attemptId: input.attempt, messageId: callback.messageSid, status: status, errorCode: callback.errorCode,
                errorMessage: callback.errorMessage,
                actor: DispatchActor(id: "twilio", requestId: context.requestId, clientAddress: context.clientAddress))
        }
        context.logger.debug(
            "Twilio status callback", metadata: ["sid": "\(callback.messageSid)", "status": "\(status.rawValue)", "outcome": "\(outcome)"])
        return .noContent
    }
}
