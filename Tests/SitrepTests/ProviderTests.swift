import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ProviderStandIn
import Synchronization
import Testing
import Twilio

// MARK: - Fixtures

enum ProviderFixtures {
    static let logger = Logger(label: "sitrep.provider.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    static let whatsAppNumber = "+971501234567"
    static let smsNumber = "+971509876543"
    static let contentSid = "HX0123456789abcdef0123456789abcdef"
    static let configuration = ProviderStandInConfiguration(
        accountSid: "AC" + String(repeating: "5", count: 32), authToken: "t0ken-for-the-stand-in",
        sendGridAPIKey: "SG.key-for-the-stand-in", callbackDelay: .milliseconds(15))

    /// `name=value` for each pair, to compare forms (tuples are not Equatable).
    static func text(_ pairs: [(String, String)]) -> [String] { pairs.map { "\($0.0)=\($0.1)" } }
}

/// A loopback receiver for status callbacks at `POST /twilio/status`, recording the URL as
/// requested (path and query), the decoded form and the signature.
final class CallbackReceiver: Sendable {
    struct Received: Sendable {
        var url: String
        var parameters: [(String, String)]
        var signature: String
        func value(_ name: String) -> String? { parameters.first { $0.0 == name }?.1 }
        var status: String { value("MessageStatus") ?? "" }
    }

    final class Inbox: Sendable {
        let items = Mutex<[Received]>([])
        /// `http://127.0.0.1:<port>`, known once the server runs.
        let origin = Mutex("")
    }

    let baseURL: String
    let inbox: Inbox
    private let server: Task<Void, any Error>

    private init(baseURL: String, inbox: Inbox, server: Task<Void, any Error>) {
        self.baseURL = baseURL
        self.inbox = inbox
        self.server = server
    }

    static func start() async throws -> CallbackReceiver {
        let inbox = Inbox()
        let router = Router()
        let signatureHeader = HTTPFields.Element.Name(TwilioSignature.header)!
        router.post("/twilio/status") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            let received = Received(
                url: inbox.origin.withLock { $0 } + request.uri.description, parameters: FormEncoding.decode(String(buffer: body)),
                signature: request.headers[signatureHeader] ?? "")
            inbox.items.withLock { $0.append(received) }
            return .noContent
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                inbox.origin.withLock { $0 = "http://127.0.0.1:\(port)" }
                continuation.yield(port)
                continuation.finish()
            }, logger: ProviderFixtures.logger)
        let server = Task {
            defer { continuation.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        return CallbackReceiver(baseURL: "http://127.0.0.1:\(port)", inbox: inbox, server: server)
    }

    var received: [Received] { inbox.items.withLock { $0 } }

    /// What arrived once `count` callbacks did, or after `timeout` whatever arrived.
    func wait(for count: Int, timeout: Duration = .seconds(5)) async throws -> [Received] {
        let deadline = ContinuousClock.now + timeout
        while received.count < count && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return received
    }

    func stop() async {
        server.cancel()
        _ = await server.result
    }
}

/// A running stand-in, a callback receiver, an HTTP client and the two provider clients over
/// them, all stopped by ``run(_:_:)`` whatever the test does.
struct ProviderSession {
    let standIn: ProviderStandIn
    let receiver: CallbackReceiver
    let client: HTTPClient
    let twilio: TwilioClient
    let sendGrid: SendGridClient

    static func run(
        _ configuration: ProviderStandInConfiguration = ProviderFixtures.configuration, _ body: (ProviderSession) async throws -> Void
    ) async throws {
        let standIn = try await ProviderStandIn.start(configuration: configuration, logger: ProviderFixtures.logger)
        let receiver = try await CallbackReceiver.start()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let session = ProviderSession(
            standIn: standIn, receiver: receiver, client: client,
            twilio: TwilioClient(configuration: standIn.twilioConfiguration(), httpClient: client, logger: ProviderFixtures.logger),
            sendGrid: SendGridClient(
                configuration: standIn.sendGridConfiguration(), httpClient: client, logger: ProviderFixtures.logger))
        do {
            try await body(session)
        } catch {
            await session.stop()
            throw error
        }
        await session.stop()
    }

    func stop() async {
        await standIn.shutdown()
        await receiver.stop()
        try? await client.shutdown()
    }

    /// The status callback URL, with a query as the dispatch worker's will have.
    func callbackURL(_ delivery: String) -> String { receiver.baseURL + "/twilio/status?delivery=\(delivery)&v=1" }

    /// A Twilio client over the same HTTP client with other settings.
    func twilio(_ edit: (inout TwilioConfiguration) -> Void) -> TwilioClient {
        var configuration = standIn.twilioConfiguration()
        edit(&configuration)
        return TwilioClient(configuration: configuration, httpClient: client, logger: ProviderFixtures.logger)
    }

    func sendGrid(_ edit: (inout SendGridConfiguration) -> Void) -> SendGridClient {
        var configuration = standIn.sendGridConfiguration()
        edit(&configuration)
        return SendGridClient(configuration: configuration, httpClient: client, logger: ProviderFixtures.logger)
    }

    /// A create request the client would not make (free-form WhatsApp text), straight over HTTP.
    func postMessage(_ form: [(String, String)]) async throws -> (status: Int, json: [String: Any]) {
        let configuration = standIn.configuration
        var request = HTTPClientRequest(url: standIn.baseURL + "/2010-04-01/Accounts/\(configuration.accountSid)/Messages.json")
        request.method = .POST
        let credentials = Data("\(configuration.accountSid):\(configuration.authToken)".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic " + credentials)
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        return (Int(response.status.code), json)
    }

    /// The error `operation` throws (a failure of the test when it succeeds).
    static func failure<T>(_ operation: () async throws(ProviderError) -> T) async -> ProviderError? {
        do {
            let value = try await operation()
            Issue.record("expected a ProviderError, got \(value)")
            return nil
        } catch {
            return error
        }
    }

    /// Every callback arrived at `url`, for the message `sid`, and carries a valid signature.
    func expectSigned(_ received: [CallbackReceiver.Received], url: String, sid: String) {
        for callback in received {
            #expect(callback.url == url)
            #expect(callback.value("MessageSid") == sid)
            #expect(callback.value("AccountSid") == standIn.configuration.accountSid)
            #expect(
                TwilioSignature.isValid(
                    signature: callback.signature, url: callback.url, parameters: callback.parameters,
                    authToken: standIn.configuration.authToken))
        }
    }
}

/// The Twilio and SendGrid clients driven against ``ProviderStandIn``, status callbacks received
/// on loopback, and the signature and form encoding they rest on.
@Suite("Providers")
struct ProviderTests {}

// MARK: - Twilio

extension ProviderTests {
    @Suite("Twilio messages against the stand-in")
    struct TwilioMessages {
        @Test func whatsAppTemplateIsSentAndCalledBackSigned() async throws {
            try await ProviderSession.run { s in
                s.standIn.script("whatsapp:" + ProviderFixtures.whatsAppNumber, .acceptAndRead)
                let url = s.callbackURL("d-42")
                let message = try await s.twilio.sendWhatsAppTemplate(
                    to: ProviderFixtures.whatsAppNumber, contentSid: ProviderFixtures.contentSid,
                    contentVariables: ["1": "Ahmed", "2": "REF-7Q2X"], statusCallback: url)
                #expect(message.sid.hasPrefix("SM") && message.sid.count == 34)
                #expect(message.sid.dropFirst(2).allSatisfy { $0.isHexDigit })
                #expect(message.status == .queued)
                #expect(message.to == "whatsapp:" + ProviderFixtures.whatsAppNumber)
                #expect(message.from == "whatsapp:+97140000000")
                #expect(message.body?.contains("REF-7Q2X") == true)
                #expect(message.errorCode == nil)

                let recorded = try #require(s.standIn.messages().first)
                #expect(
                    ProviderFixtures.text(recorded.form) == [
                        "To=whatsapp:+971501234567", "From=whatsapp:+97140000000", "ContentSid=\(ProviderFixtures.contentSid)",
                        #"ContentVariables={"1":"Ahmed","2":"REF-7Q2X"}"#, "StatusCallback=\(url)",
                    ])
                #expect(recorded.contentVariables == ["1": "Ahmed", "2": "REF-7Q2X"])
                #expect(recorded.channel == .whatsapp)

                let received = try await s.receiver.wait(for: 4)
                #expect(received.map(\.status) == ["queued", "sent", "delivered", "read"])
                #expect(received.allSatisfy { $0.value("ErrorCode") == nil })
                s.expectSigned(received, url: url, sid: message.sid)

                // A changed parameter, URL or key breaks the signature.
                let last = try #require(received.last)
                let token = s.standIn.configuration.authToken
                let tampered = last.parameters.map { $0.0 == "MessageStatus" ? ($0.0, "failed") : $0 }
                #expect(!TwilioSignature.isValid(signature: last.signature, url: last.url, parameters: tampered, authToken: token))
                let added = last.parameters + [("ErrorCode", "30008")]
                #expect(!TwilioSignature.isValid(signature: last.signature, url: last.url, parameters: added, authToken: token))
                let otherURL = last.url.replacingOccurrences(of: "d-42", with: "d-43")
                #expect(!TwilioSignature.isValid(signature: last.signature, url: otherURL, parameters: last.parameters, authToken: token))
                #expect(!TwilioSignature.isValid(signature: last.signature, url: last.url, parameters: last.parameters, authToken: "other"))

                #expect(try await s.twilio.fetchMessage(sid: message.sid).status == .read)
            }
        }

        @Test func smsIsSentAndDelivered() async throws {
            try await ProviderSession.run { s in
                let url = s.callbackURL("d-7")
                let text = "Sitrep: the daily briefing is ready. Ref B-0907-1 — مرحبا"
                let message = try await s.twilio.sendSMS(to: ProviderFixtures.smsNumber, body: text, statusCallback: url)
                #expect(message.status == .queued)
                #expect(message.to == ProviderFixtures.smsNumber)
                #expect(message.body == text)
                let recorded = try #require(s.standIn.messages().first)
                #expect(
                    ProviderFixtures.text(recorded.form) == [
                        "To=+971509876543", "From=+97140000000", "Body=\(text)", "StatusCallback=\(url)",
                    ])
                #expect(recorded.channel == .sms)

                // SMS has no read receipts, even when scripted.
                let received = try await s.receiver.wait(for: 3)
                #expect(received.map(\.status) == ["queued", "sent", "delivered"])
                s.expectSigned(received, url: url, sid: message.sid)
                let fetched = try await s.twilio.fetchMessage(sid: message.sid)
                #expect(fetched.status == .delivered)
                #expect(fetched.body == text)
                #expect(fetched.dateSent != nil)
            }
        }

        @Test func listFindsMessagesToReconcile() async throws {
            try await ProviderSession.run { s in
                let url = s.callbackURL("d-list")
                let first = try await s.twilio.sendSMS(to: ProviderFixtures.smsNumber, body: "Briefing ready. Ref R-1", statusCallback: url)
                let second = try await s.twilio.sendSMS(to: ProviderFixtures.smsNumber, body: "Briefing ready. Ref R-2", statusCallback: url)
                _ = try await s.twilio.sendSMS(to: "+971500000001", body: "Briefing ready. Ref R-3", statusCallback: url)
                let template = try await s.twilio.sendWhatsAppTemplate(
                    to: ProviderFixtures.smsNumber, contentSid: ProviderFixtures.contentSid, contentVariables: ["1": "R-4"],
                    statusCallback: url)

                let yesterday = Date().addingTimeInterval(-86_400)
                let listed = try await s.twilio.listMessages(to: ProviderFixtures.smsNumber, sentAfter: yesterday)
                #expect(listed.map(\.sid) == [second.sid, first.sid])
                #expect(listed.first { $0.body?.contains("Ref R-1") == true }?.sid == first.sid)

                // Every page is followed.
                let requestsBefore = s.standIn.requests().count
                let paged = try await s.twilio.listMessages(to: ProviderFixtures.smsNumber, sentAfter: yesterday, pageSize: 1)
                #expect(paged.map(\.sid) == [second.sid, first.sid])
                let pageRequests = s.standIn.requests().dropFirst(requestsBefore)
                #expect(pageRequests.count == 2)
                #expect(pageRequests.allSatisfy { $0.path.contains("DateSent%3E=") && $0.path.contains("To=%2B971509876543") })

                let whatsApp = try await s.twilio.listMessages(to: TwilioClient.whatsAppAddress(ProviderFixtures.smsNumber), sentAfter: yesterday)
                #expect(whatsApp.map(\.sid) == [template.sid])
                #expect(whatsApp.first?.body?.contains("R-4") == true)

                let tomorrow = Date().addingTimeInterval(86_400)
                #expect(try await s.twilio.listMessages(to: ProviderFixtures.smsNumber, sentAfter: tomorrow).isEmpty)
            }
        }

        struct FailureCase: Sendable, CustomTestStringConvertible {
            var behaviour: ProviderStandIn.Behaviour
            var kind: ProviderError.Kind
            var httpStatus: Int?
            var code: Int?
            var retryAfter: Duration?
            var testDescription: String { "\(behaviour)" }
        }

        @Test(arguments: [
            FailureCase(
                behaviour: .failOnCreate(httpStatus: 400, code: 21211, message: "Invalid 'To' Phone Number"), kind: .final, httpStatus: 400,
                code: 21211),
            FailureCase(behaviour: .tooManyRequests(retryAfterSeconds: 7), kind: .retryable, httpStatus: 429, code: 20429, retryAfter: .seconds(7)),
            FailureCase(behaviour: .serverError, kind: .retryable, httpStatus: 500, code: 20500),
        ])
        func scriptedRefusalsMapToProviderErrors(_ failure: FailureCase) async throws {
            try await ProviderSession.run { s in
                s.standIn.script(ProviderFixtures.whatsAppNumber, failure.behaviour)
                let url = s.callbackURL("d-fail")
                let sms = await ProviderSession.failure { () async throws(ProviderError) in
                    try await s.twilio.sendSMS(to: ProviderFixtures.whatsAppNumber, body: "Ref F-1", statusCallback: url)
                }
                let template = await ProviderSession.failure { () async throws(ProviderError) in
                    try await s.twilio.sendWhatsAppTemplate(
                        to: ProviderFixtures.whatsAppNumber, contentSid: ProviderFixtures.contentSid, contentVariables: [:], statusCallback: url)
                }
                for error in [try #require(sms), try #require(template)] {
                    #expect(error.kind == failure.kind)
                    #expect(error.cause == .status)
                    #expect(error.httpStatus == failure.httpStatus)
                    #expect(error.code == failure.code)
                    #expect(error.retryAfter == failure.retryAfter)
                    #expect(error.mayHaveBeenAccepted == ((failure.httpStatus ?? 0) >= 500))
                }
                #expect(s.standIn.messages().isEmpty)
            }
        }

        @Test func timeoutIsRetryableAndTheMessageCanBeReconciled() async throws {
            try await ProviderSession.run { s in
                s.standIn.script(ProviderFixtures.smsNumber, .delay(.milliseconds(1500)))
                let impatient = s.twilio { $0.requestTimeout = .milliseconds(300) }
                let attempted = Date()
                let started = ContinuousClock.now
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await impatient.sendSMS(to: ProviderFixtures.smsNumber, body: "Briefing. Ref T-9", statusCallback: s.callbackURL("d-t"))
                    })
                #expect(ContinuousClock.now - started < .seconds(1))
                #expect(error.kind == .retryable)
                #expect(error.cause == .timeout)
                #expect(error.httpStatus == nil)
                #expect(error.mayHaveBeenAccepted)

                // The stand-in goes on and creates it: the lost answer is found by its reference.
                let deadline = ContinuousClock.now + .seconds(5)
                while s.standIn.messages().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                let listed = try await s.twilio.listMessages(to: ProviderFixtures.smsNumber, sentAfter: attempted)
                #expect(listed.count == 1)
                #expect(listed.first?.body?.contains("Ref T-9") == true)
            }
        }

        @Test func sequenceFailsThenAccepts() async throws {
            try await ProviderSession.run { s in
                s.standIn.script(ProviderFixtures.smsNumber, sequence: [.serverError, .tooManyRequests(retryAfterSeconds: 1)])
                let url = s.callbackURL("d-seq")
                let send = { () async throws(ProviderError) -> ProviderMessage in
                    try await s.twilio.sendSMS(to: ProviderFixtures.smsNumber, body: "Ref S-1", statusCallback: url)
                }
                #expect(await ProviderSession.failure(send)?.httpStatus == 500)
                #expect(await ProviderSession.failure(send)?.httpStatus == 429)
                let accepted = try await send()
                #expect(accepted.status == .queued)
                #expect(s.standIn.requests().map(\.status) == [500, 429, 201])
            }
        }

        @Test func invalidRequestsAreRefusedLikeTwilio() async throws {
            try await ProviderSession.run { s in
                let url = s.callbackURL("d-bad")
                let badNumber = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.twilio.sendSMS(to: "0501234567", body: "x", statusCallback: url)
                    })
                #expect(badNumber.kind == .final)
                #expect(badNumber.httpStatus == 400)
                #expect(badNumber.code == 21211)
                #expect(badNumber.message.contains("Invalid 'To' Phone Number"))

                let badTemplate = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.twilio.sendWhatsAppTemplate(
                            to: ProviderFixtures.whatsAppNumber, contentSid: "HX123", contentVariables: [:], statusCallback: url)
                    })
                #expect(badTemplate.kind == .final)
                #expect(badTemplate.code == 21655)

                let mixed = s.twilio { $0.smsFrom = "whatsapp:+97140000000" }
                let badPair = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await mixed.sendSMS(to: ProviderFixtures.smsNumber, body: "x", statusCallback: url)
                    })
                #expect(badPair.code == 21910)

                let unknown = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.twilio.fetchMessage(sid: "SM" + String(repeating: "0", count: 32))
                    })
                #expect(unknown.kind == .final)
                #expect(unknown.httpStatus == 404)
                #expect(unknown.code == 20404)
                #expect(s.standIn.messages().isEmpty)
            }
        }

        @Test func wrongCredentialsAreFinalAndNotRepeated() async throws {
            try await ProviderSession.run { s in
                let secret = "not-the-right-token-4711"
                let wrong = s.twilio { $0.authToken = secret }
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await wrong.sendSMS(to: ProviderFixtures.smsNumber, body: "x", statusCallback: s.callbackURL("d-401"))
                    })
                #expect(error.kind == .final)
                #expect(error.httpStatus == 401)
                #expect(error.code == 20003)
                #expect(!error.description.contains(secret))
                #expect(s.standIn.requests().map(\.status) == [401])

                let otherAccount = s.twilio { $0.accountSid = "AC" + String(repeating: "6", count: 32) }
                let listError = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await otherAccount.listMessages(to: ProviderFixtures.smsNumber, sentAfter: Date())
                    })
                #expect(listError.httpStatus == 401)
                #expect(listError.kind == .final)
            }
        }

        @Test func unreachableProviderIsRetryable() async throws {
            try await ProviderSession.run { s in
                // Bind and release a port, so nothing listens there.
                let closed = try await ProviderStandIn.start(logger: ProviderFixtures.logger)
                let port = closed.port
                await closed.shutdown()
                let unreachable = s.twilio {
                    $0.baseURL = "http://127.0.0.1:\(port)"
                    $0.requestTimeout = .seconds(1)
                }
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await unreachable.sendSMS(to: ProviderFixtures.smsNumber, body: "x", statusCallback: s.callbackURL("d-x"))
                    })
                #expect(error.kind == .retryable)
                #expect(error.cause == .unreachable, "\(error)")
                #expect(!error.mayHaveBeenAccepted)
                #expect(error.httpStatus == nil)
                #expect(!error.message.contains(s.standIn.configuration.authToken))
            }
        }

        struct AfterSendCase: Sendable, CustomTestStringConvertible {
            var destination: String
            var status: MessageStatus
            var code: Int
            var expected: [String]
            var testDescription: String { "\(status) \(code) to \(destination)" }
        }

        @Test(arguments: [
            AfterSendCase(destination: ProviderFixtures.smsNumber, status: .undelivered, code: 30008, expected: ["queued", "sent", "undelivered"]),
            AfterSendCase(destination: "whatsapp:" + ProviderFixtures.whatsAppNumber, status: .failed, code: 30003, expected: ["queued", "failed"]),
        ])
        func failureAfterSendIsCalledBack(_ c: AfterSendCase) async throws {
            let (destination, status, code, expected) = (c.destination, c.status, c.code, c.expected)
            try await ProviderSession.run { s in
                s.standIn.script(destination, .failAfterSend(status: status, code: code))
                let url = s.callbackURL("d-after")
                let message =
                    destination.hasPrefix("whatsapp:")
                    ? try await s.twilio.sendWhatsAppTemplate(
                        to: ProviderFixtures.whatsAppNumber, contentSid: ProviderFixtures.contentSid, contentVariables: ["1": "x"],
                        statusCallback: url)
                    : try await s.twilio.sendSMS(to: destination, body: "Ref A-1", statusCallback: url)
                #expect(message.status == .queued)
                let received = try await s.receiver.wait(for: expected.count)
                #expect(received.map(\.status) == expected)
                #expect(received.last?.value("ErrorCode") == String(code))
                #expect(received.dropLast().allSatisfy { $0.value("ErrorCode") == nil })
                s.expectSigned(received, url: url, sid: message.sid)
                let fetched = try await s.twilio.fetchMessage(sid: message.sid)
                #expect(fetched.status == status)
                #expect(fetched.errorCode == code)
                #expect(fetched.errorMessage?.isEmpty == false)
            }
        }

        @Test func freeFormWhatsAppOutsideTheSessionFailsWith63016() async throws {
            try await ProviderSession.run { s in
                let url = s.callbackURL("d-free")
                let form = [
                    ("To", "whatsapp:" + ProviderFixtures.whatsAppNumber), ("From", "whatsapp:+97140000000"), ("Body", "Hello, free text"),
                    ("StatusCallback", url),
                ]
                let created = try await s.postMessage(form)
                #expect(created.status == 201)
                #expect(created.json["status"] as? String == "queued")
                let sid = try #require(created.json["sid"] as? String)
                let received = try await s.receiver.wait(for: 2)
                #expect(received.map(\.status) == ["queued", "failed"])
                #expect(received.last?.value("ErrorCode") == "63016")
                s.expectSigned(received, url: url, sid: sid)
                let fetched = try await s.twilio.fetchMessage(sid: sid)
                #expect(fetched.status == .failed)
                #expect(fetched.errorCode == 63016)

                // Once the recipient has written in, free text goes through.
                s.standIn.openWhatsAppSession(ProviderFixtures.whatsAppNumber)
                let second = try await s.postMessage(form)
                #expect(second.status == 201)
                let all = try await s.receiver.wait(for: 5)
                #expect(all.dropFirst(2).map(\.status) == ["queued", "sent", "delivered"])
            }
        }

        @Test func droppedCallbacksNeverArriveButTheMessageIsDelivered() async throws {
            try await ProviderSession.run { s in
                s.standIn.script(ProviderFixtures.smsNumber, .dropCallbacks)
                let message = try await s.twilio.sendSMS(to: ProviderFixtures.smsNumber, body: "Ref D-1", statusCallback: s.callbackURL("d-drop"))
                try await Task.sleep(for: .milliseconds(300))
                #expect(s.receiver.received.isEmpty)
                #expect(s.standIn.callbacks().isEmpty)
                #expect(try await s.twilio.fetchMessage(sid: message.sid).status == .delivered)
            }
        }

        @Test func outOfOrderCallbacksSendDeliveredBeforeSent() async throws {
            try await ProviderSession.run { s in
                s.standIn.script(ProviderFixtures.smsNumber, .outOfOrderCallbacks)
                let url = s.callbackURL("d-ooo")
                let message = try await s.twilio.sendSMS(to: ProviderFixtures.smsNumber, body: "Ref O-1", statusCallback: url)
                let received = try await s.receiver.wait(for: 3)
                #expect(received.map(\.status) == ["queued", "delivered", "sent"])
                s.expectSigned(received, url: url, sid: message.sid)
                // The late `sent` does not move the message back.
                #expect(try await s.twilio.fetchMessage(sid: message.sid).status == .delivered)
                // The stand-in records a callback's answer after the receiver has sent it, so the
                // last one may still be on its way back.
                try await eventually("the stand-in to record the third answer") { s.standIn.callbacks().count == 3 }
                #expect(s.standIn.callbacks().map(\.answeredStatus) == [204, 204, 204])
            }
        }
    }
}

// MARK: - SendGrid

extension ProviderTests {
    @Suite("SendGrid mail send against the stand-in")
    struct SendGridMail {
        static let pdf: [UInt8] = Array("%PDF-1.7\n".utf8) + (0...255).map { UInt8($0) } + Array("\n%%EOF\n".utf8)

        @Test func mailWithPDFAttachmentIsRecordedByteForByte() async throws {
            try await ProviderSession.run { s in
                let id = try await s.sendGrid.send(
                    to: "Office.Of.The.Minister@gov.test", name: "Office of the Minister", subject: "Daily briefing — 7 September / الموجز",
                    text: "The approved briefing is attached. Ref M-1", html: "<p>The approved briefing is attached. Ref M-1</p>",
                    attachment: (filename: "briefing-2024-09-07.pdf", contentType: "application/pdf", bytes: Self.pdf),
                    customArgs: ["delivery": "d-9", "attempt": "3"])
                let mail = try #require(s.standIn.mails().first)
                #expect(id == mail.messageId)
                #expect(id.count == 22)
                #expect(mail.recipients == ["Office.Of.The.Minister@gov.test"])
                #expect(mail.from == "briefings@sitrep.test")
                #expect(mail.fromName == "Sitrep")
                #expect(mail.subject == "Daily briefing — 7 September / الموجز")
                #expect(mail.text == "The approved briefing is attached. Ref M-1")
                #expect(mail.html == "<p>The approved briefing is attached. Ref M-1</p>")
                #expect(mail.customArgs == ["delivery": "d-9", "attempt": "3"])
                #expect(
                    mail.attachments == [
                        StandInAttachment(
                            filename: "briefing-2024-09-07.pdf", contentType: "application/pdf", disposition: "attachment", bytes: Self.pdf)
                    ])

                // The v3 shape, as sent.
                let json = mail.json
                let personalizations = try #require(json["personalizations"] as? [[String: Any]])
                let to = try #require(personalizations.first?["to"] as? [[String: Any]])
                #expect(to.first?["email"] as? String == "Office.Of.The.Minister@gov.test")
                #expect(to.first?["name"] as? String == "Office of the Minister")
                let content = try #require(json["content"] as? [[String: String]])
                #expect(content.map { $0["type"] } == ["text/plain", "text/html"])
                let attachments = try #require(json["attachments"] as? [[String: String]])
                #expect(attachments.first?["content"] == Data(Self.pdf).base64EncodedString())
                #expect(mail.rawJSON.contains(#""custom_args":{"attempt":"3","delivery":"d-9"}"#))
            }
        }

        @Test func plainMailWithoutExtras() async throws {
            try await ProviderSession.run { s in
                _ = try await s.sendGrid.send(
                    to: "reader@gov.test", name: nil, subject: "Briefing", text: "Text only", html: nil, attachment: nil, customArgs: [:])
                let mail = try #require(s.standIn.mails().first)
                #expect(mail.html == nil)
                #expect(mail.attachments.isEmpty)
                #expect(mail.json["attachments"] == nil)
                #expect(mail.json["custom_args"] == nil)
            }
        }

        struct FailureCase: Sendable, CustomTestStringConvertible {
            var behaviour: ProviderStandIn.Behaviour
            var kind: ProviderError.Kind
            var httpStatus: Int
            var message: String
            var retryAfter: ClosedRange<Int>?
            var testDescription: String { "\(behaviour)" }
        }

        @Test(arguments: [
            FailureCase(
                behaviour: .failOnCreate(httpStatus: 400, code: 0, message: "The to email does not contain a valid address."), kind: .final,
                httpStatus: 400, message: "The to email does not contain a valid address."),
            FailureCase(
                behaviour: .tooManyRequests(retryAfterSeconds: 30), kind: .retryable, httpStatus: 429, message: "too many requests",
                retryAfter: 29...31),
            FailureCase(behaviour: .serverError, kind: .retryable, httpStatus: 500, message: "Internal Server Error"),
        ])
        func scriptedFailuresMapToProviderErrors(_ failure: FailureCase) async throws {
            try await ProviderSession.run { s in
                s.standIn.script("READER@gov.test", failure.behaviour)
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.sendGrid.send(
                            to: "reader@gov.test", name: nil, subject: "Briefing", text: "x", html: nil, attachment: nil, customArgs: [:])
                    })
                #expect(error.kind == failure.kind)
                #expect(error.httpStatus == failure.httpStatus)
                #expect(error.code == nil)
                #expect(error.message == failure.message)
                if let range = failure.retryAfter {
                    let seconds = Int(try #require(error.retryAfter).components.seconds)
                    #expect(range.contains(seconds))
                } else {
                    #expect(error.retryAfter == nil)
                }
                #expect(s.standIn.mails().isEmpty)
            }
        }

        @Test func invalidMailAndWrongKeyAreFinal() async throws {
            try await ProviderSession.run { s in
                let invalid = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.sendGrid.send(
                            to: "not-an-address", name: nil, subject: "Briefing", text: "x", html: nil, attachment: nil, customArgs: [:])
                    })
                #expect(invalid.kind == .final)
                #expect(invalid.httpStatus == 400)
                #expect(invalid.message == "personalizations.0.to.0.email: Does not contain a valid address.")

                let noSubject = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.sendGrid.send(
                            to: "reader@gov.test", name: nil, subject: "", text: "x", html: nil, attachment: nil, customArgs: [:])
                    })
                #expect(noSubject.httpStatus == 400)
                #expect(noSubject.message.hasPrefix("subject: "))

                let secret = "SG.wrong-key-0815"
                let wrong = s.sendGrid { $0.apiKey = secret }
                let unauthorized = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await wrong.send(to: "reader@gov.test", name: nil, subject: "B", text: "x", html: nil, attachment: nil, customArgs: [:])
                    })
                #expect(unauthorized.kind == .final)
                #expect(unauthorized.httpStatus == 401)
                #expect(!unauthorized.description.contains(secret))
                #expect(s.standIn.mails().isEmpty)
            }
        }

        @Test func slowSendGridTimesOut() async throws {
            try await ProviderSession.run { s in
                s.standIn.script("reader@gov.test", .delay(.seconds(2)))
                let impatient = s.sendGrid { $0.requestTimeout = .milliseconds(300) }
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await impatient.send(
                            to: "reader@gov.test", name: nil, subject: "B", text: "x", html: nil, attachment: nil, customArgs: [:])
                    })
                #expect(error.kind == .retryable)
                #expect(error.cause == .timeout)
            }
        }
    }
}

// MARK: - SendGrid Email Activity

extension ProviderTests {
    @Suite("SendGrid email activity against the stand-in")
    struct SendGridActivityLookup {
        static let attempt = "1F0C7A2E-5B3D-4E8A-9C61-2D4B7E0A9F13"

        /// A mail to `to` carrying `sitrep_attempt=attempt`; its `X-Message-Id`.
        static func send(_ s: ProviderSession, to: String = "reader@gov.test", attempt: String) async throws -> String {
            try await s.sendGrid.send(
                to: to, name: nil, subject: "Briefing \(attempt.prefix(4))", text: "x", html: nil, attachment: nil,
                customArgs: ["sitrep_attempt": attempt, "delivery": "d-1"])
        }

        /// `GET /v3/messages?<query>` straight over HTTP, with the stand-in's key.
        static func get(_ s: ProviderSession, _ query: [(String, String)]) async throws -> (status: Int, json: [String: Any]) {
            var request = HTTPClientRequest(url: s.standIn.baseURL + "/v3/messages?" + FormEncoding.encode(query))
            request.headers.add(name: "Authorization", value: "Bearer " + s.standIn.configuration.sendGridAPIKey)
            let response = try await s.client.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            return (Int(response.status.code), json)
        }

        @Test func mailSentWithAnAttemptArgIsFound() async throws {
            try await ProviderSession.run { s in
                let id = try await Self.send(s, attempt: Self.attempt)
                _ = try await Self.send(s, to: "other@gov.test", attempt: "another-attempt")
                let found = try await s.sendGrid.findMessages(customArg: "sitrep_attempt", value: Self.attempt)
                #expect(found.count == 1)
                let activity = try #require(found.first)
                #expect(activity.msgId.hasPrefix(id + "."))
                #expect(activity.toEmail == "reader@gov.test")
                #expect(activity.subject == "Briefing 1F0C")
                #expect(activity.status == "delivered")

                // The query is sent URL-encoded, with the limit.
                let request = try #require(s.standIn.requests().last)
                #expect(request.method == "GET" && request.status == 200)
                let query = FormEncoding.decode(try #require(request.path.split(separator: "?", maxSplits: 1).last))
                #expect(ProviderFixtures.text(query) == ["limit=10", #"query=unique_args['sitrep_attempt']="\#(Self.attempt)""#])
                #expect(!request.path.contains("'") && !request.path.contains("\""))

                // Every mail with the arg, newest first.
                let again = try await Self.send(s, attempt: Self.attempt)
                let both = try await s.sendGrid.findMessages(customArg: "sitrep_attempt", value: Self.attempt)
                #expect(both.map { $0.msgId.prefix(22) } == [again.prefix(22), id.prefix(22)])
                let one = try await s.sendGrid.findMessages(customArg: "sitrep_attempt", value: Self.attempt, limit: 1)
                #expect(one.map { $0.msgId.hasPrefix(again) } == [true])
            }
        }

        @Test func valueNobodySentFindsNothing() async throws {
            try await ProviderSession.run { s in
                _ = try await Self.send(s, attempt: Self.attempt)
                #expect(try await s.sendGrid.findMessages(customArg: "sitrep_attempt", value: "never-sent").isEmpty)
                #expect(try await s.sendGrid.findMessages(customArg: "delivery", value: Self.attempt).isEmpty)
                #expect(try await s.sendGrid.findMessages(customArg: "other_arg", value: "d-1").isEmpty)
            }
        }

        @Test func wrongKeyIsFinal() async throws {
            try await ProviderSession.run { s in
                _ = try await Self.send(s, attempt: Self.attempt)
                let secret = "SG.wrong-key-4711"
                let wrong = s.sendGrid { $0.apiKey = secret }
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await wrong.findMessages(customArg: "sitrep_attempt", value: Self.attempt)
                    })
                #expect(error.kind == .final)
                #expect(error.cause == .status)
                #expect(error.httpStatus == 401)
                #expect(!error.mayHaveBeenAccepted)
                #expect(!error.description.contains(secret))
            }
        }

        @Test(arguments: [("", "x"), ("sitrep-attempt", "x"), ("sitrep_attempt']", "x"), ("é", "x"), ("sitrep_attempt", #"a"b"#)])
        func invalidLookupIsRefusedWithoutARequest(name: String, value: String) async throws {
            try await ProviderSession.run { s in
                let error = try #require(
                    await ProviderSession.failure { () async throws(ProviderError) in
                        try await s.sendGrid.findMessages(customArg: name, value: value)
                    })
                #expect(error.kind == .final)
                #expect(error.cause == .invalidRequest)
                #expect(s.standIn.requests().isEmpty)
            }
        }

        @Test func standInAnswersTheOtherQueryFormsAndRefusesTheRest() async throws {
            try await ProviderSession.run { s in
                let id = try await Self.send(s, to: "Reader@Gov.test", attempt: Self.attempt)
                let byId = try await Self.get(s, [("query", #"msg_id="\#(id).filter0001p1""#)])
                #expect(byId.status == 200)
                let row = try #require((byId.json["messages"] as? [[String: Any]])?.first)
                #expect(row["msg_id"] as? String == id + ".filter0001p1")
                #expect(row["from_email"] as? String == "briefings@sitrep.test")
                #expect(row["to_email"] as? String == "Reader@Gov.test")
                #expect(row["opens_count"] as? Int == 0 && row["clicks_count"] as? Int == 0)
                let time = try #require(row["last_event_time"] as? String)
                #expect(ISO8601DateFormatter().date(from: time) != nil)

                let byEmail = try await Self.get(s, [("limit", "5"), ("query", #"to_email="reader@gov.test""#)])
                #expect((byEmail.json["messages"] as? [[String: Any]])?.count == 1)
                #expect(s.standIn.requests().last?.destination == "reader@gov.test")

                let unsupported: [[(String, String)]] = [
                    [("query", #"subject="Briefing""#)], [("query", #"unique_args['sitrep_attempt']='x'"#)],
                    [("query", #"msg_id="\#(id)" AND to_email="reader@gov.test""#)], [],
                    [("limit", "0"), ("query", #"msg_id="x""#)], [("limit", "1001"), ("query", #"msg_id="x""#)],
                ]
                for query in unsupported {
                    let refused = try await Self.get(s, query)
                    #expect(refused.status == 400)
                    let errors = try #require(refused.json["errors"] as? [[String: Any]])
                    #expect(errors.first?["field"] as? String == (query.contains { $0.0 == "limit" } ? "limit" : "query"))
                }
            }
        }
    }
}

// MARK: - Signatures and form encoding

extension ProviderTests {
    @Suite("Twilio signatures and form encoding")
    struct SignaturesAndForms {
        // Twilio's published example (docs "Webhooks security", twilio-php/twilio-node samples), both
        // versions of it; checked independently with `openssl dgst -sha1 -hmac 12345 -binary | base64`.
        static let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
        static let token = "12345"
        static func parameters(caller: String) -> [(String, String)] {
            [("CallSid", "CA1234567890ABCDE"), ("Caller", caller), ("Digits", "1234"), ("From", caller), ("To", "+18005551212")]
        }

        @Test(arguments: [("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="), ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc=")])
        func documentedExample(caller: String, signature: String) {
            let parameters = Self.parameters(caller: caller)
            #expect(TwilioSignature.compute(url: Self.url, parameters: parameters, authToken: Self.token) == signature)
            #expect(TwilioSignature.isValid(signature: signature, url: Self.url, parameters: parameters, authToken: Self.token))
            // The order parameters arrive in does not matter.
            #expect(TwilioSignature.isValid(signature: signature, url: Self.url, parameters: parameters.reversed(), authToken: Self.token))
            // Twilio may sign an https URL with or without :443.
            #expect(
                TwilioSignature.isValid(
                    signature: signature, url: "https://mycompany.com:443/myapp.php?foo=1&bar=2", parameters: parameters,
                    authToken: Self.token))
        }

        @Test func tamperingInvalidates() {
            let parameters = Self.parameters(caller: "+14158675309")
            func valid(
                url: String = Self.url, _ parameters: [(String, String)], token: String = Self.token,
                signature: String = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
            ) -> Bool {
                TwilioSignature.isValid(signature: signature, url: url, parameters: parameters, authToken: token)
            }
            #expect(valid(parameters))
            #expect(!valid(parameters.map { $0.0 == "Digits" ? ($0.0, "1235") : $0 }))
            #expect(!valid(parameters.map { $0.0 == "To" ? ("TO", $0.1) : $0 }))
            #expect(!valid(Array(parameters.dropLast())))
            #expect(!valid(parameters + [("Extra", "")]))
            #expect(!valid(url: "https://mycompany.com/myapp.php?foo=1&bar=3", parameters))
            #expect(!valid(url: "http://mycompany.com/myapp.php?foo=1&bar=2", parameters))
            #expect(!valid(url: "https://mycompany.com/myapp.php", parameters))
            #expect(!valid(parameters, token: "12346"))
            #expect(!valid(parameters, signature: ""))
            #expect(!valid(parameters, signature: "not base64!"))
            #expect(!valid(parameters, signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8"))
            #expect(!valid(parameters, signature: "SSOYDt4T1cUTdK1PDd93/VVr8B8="))
        }

        @Test func formEncodingRoundTrips() {
            let pairs: [(String, String)] = [
                ("To", "+971501234567"), ("Body", "Hello world + more 100%"), ("Text", "مرحبا ✓ é 😀"), ("Empty", ""),
                ("Symbols", "a&b=c/d?e#f"), ("ContentVariables", #"{"1":"Ahmed"}"#), ("Body", "repeated"),
            ]
            let encoded = FormEncoding.encode(pairs)
            #expect(!encoded.contains(" ") && !encoded.contains("+"))
            #expect(encoded.hasPrefix("To=%2B971501234567&Body=Hello%20world%20%2B%20more%20100%25&"))
            #expect(ProviderFixtures.text(FormEncoding.decode(encoded)) == ProviderFixtures.text(pairs))

            // As browsers and Twilio send it: `+` is a space, `%2B` a plus.
            #expect(
                ProviderFixtures.text(FormEncoding.decode("Body=hi+there%2Bplus&To=%2B971&Dup=1&Dup=2&Flag&Empty=&Ar=%D9%85%D8%B1"))
                    == ["Body=hi there+plus", "To=+971", "Dup=1", "Dup=2", "Flag=", "Empty=", "Ar=مر"])
            // Malformed escapes are kept as they came, not dropped.
            #expect(ProviderFixtures.text(FormEncoding.decode("A=%ZZ&B=%E2%82")) == ["A=%ZZ", "B=%E2%82"])
            #expect(FormEncoding.decode("").isEmpty)
        }
    }
}
