import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore
import SitrepRuntime
import Twilio

/// A local stand-in for Twilio's Messages API and SendGrid's Mail Send, for development and
/// tests: the same clients and the same code paths as production, only the base URL differs.
///
/// Twilio (HTTP Basic with the configured account sid and auth token):
/// - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: checks `To`, `From`, `ContentSid`
///   or `Body` (with Twilio's error codes), answers 201 with the message (`SM…`, `queued`), then
///   POSTs signed status callbacks (`X-Twilio-Signature`) to its `StatusCallback`. Free-form text
///   on WhatsApp fails with 63016 unless ``openWhatsAppSession(_:)`` was called for the number.
/// - `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`
/// - `GET /2010-04-01/Accounts/{AccountSid}/Messages.json` with `To`, `From`, `DateSent>=`,
///   `DateSent<=`, `PageSize`, `Page`.
///
/// SendGrid (`Authorization: Bearer <key>`): `POST /v3/mail/send`, checking the v3 JSON shape,
/// 202 with `X-Message-Id`; `GET /v3/messages` (Email Activity) with `query=unique_args['…']="…"`,
/// `msg_id="…"` or `to_email="…"`.
///
/// Behaviour is scripted per destination with ``script(_:_:)``. Everything is held in memory and
/// lost on ``shutdown()``. Plain HTTP, meant for loopback; production configuration must refuse it.
/// Dates are real: a message's `date_sent` is its creation time.
public final class ProviderStandIn: Sendable {
    /// The configuration it was started with.
    public let configuration: ProviderStandInConfiguration
    /// The port it listens on (the one bound when started with port 0).
    public let port: Int
    /// `http://<host>:<port>`: the base URL of both the Twilio and the SendGrid API.
    public let baseURL: String

    let core: StandInCore
    private let server: Task<Void, any Error>

    private init(configuration: ProviderStandInConfiguration, port: Int, baseURL: String, core: StandInCore, server: Task<Void, any Error>) {
        self.configuration = configuration
        self.port = port
        self.baseURL = baseURL
        self.core = core
        self.server = server
    }

    /// Starts a stand-in listening on `host`:`port` (0 picks a free port) and returns once it
    /// accepts connections. Throws ``ProviderStandInError`` when the address cannot be bound. Call
    /// ``shutdown()`` when done.
    public static func start(
        configuration: ProviderStandInConfiguration = ProviderStandInConfiguration(), host: String = "127.0.0.1", port: Int = 0,
        logger: Logger
    ) async throws -> ProviderStandIn {
        // Twilio calls back from a fleet, not over a handful of pooled connections: a callback
        // should wait on the receiver, not in this client's queue for a connection.
        var callbackConfiguration = HTTPClient.Configuration()
        callbackConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        let callbackClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: callbackConfiguration)
        let core = StandInCore(configuration: configuration, logger: logger, callbackClient: callbackClient)
        let router = Router()
        core.addRoutes(to: router)
        let started: (port: Int, baseURL: String, server: Task<Void, any Error>)
        do {
            started = try await LocalServer.start(router: router, host: host, port: port, logger: logger)
        } catch {
            try? await callbackClient.shutdown()
            throw ProviderStandInError("the provider stand-in \(error)")
        }
        let standIn = ProviderStandIn(
            configuration: configuration, port: started.port, baseURL: started.baseURL, core: core, server: started.server)
        logger.info("provider stand-in (Twilio, SendGrid) listening", metadata: ["baseURL": "\(standIn.baseURL)"])
        return standIn
    }

    /// Stops calling back and listening, and waits for both. Safe to call more than once.
    public func shutdown() async {
        await core.stop()
        server.cancel()
        _ = await server.result
        try? await core.callbackClient.shutdown()
    }

    // MARK: Client settings pointing here

    /// Settings under which ``TwilioClient`` talks to this stand-in.
    public func twilioConfiguration(
        whatsappFrom: String = "whatsapp:+97140000000", smsFrom: String = "+97140000000", requestTimeout: Duration = .seconds(10)
    ) -> TwilioConfiguration {
        TwilioConfiguration(
            accountSid: configuration.accountSid, authToken: configuration.authToken, baseURL: baseURL, whatsappFrom: whatsappFrom,
            smsFrom: smsFrom, requestTimeout: requestTimeout)
    }

    /// Settings under which ``SendGridClient`` talks to this stand-in.
    public func sendGridConfiguration(
        fromEmail: String = "briefings@sitrep.test", fromName: String = "Sitrep", requestTimeout: Duration = .seconds(10)
    ) -> SendGridConfiguration {
        SendGridConfiguration(
            apiKey: configuration.sendGridAPIKey, baseURL: baseURL, fromEmail: fromEmail, fromName: fromName,
            requestTimeout: requestTimeout)
    }

    // MARK: Scripting (thread-safe, effective for the next request)

    /// From now on, every request for `destination` gets `behaviour`. `destination` is an E.164
    /// number, a `whatsapp:`-prefixed one, or an e-mail address: `whatsapp:+971…` applies to
    /// WhatsApp only, a bare `+971…` to both WhatsApp and SMS (the prefixed script wins when both
    /// are set). E-mail addresses match without regard to case.
    public func script(_ destination: String, _ behaviour: Behaviour) {
        core.script(destination, StandInCore.Script(sequence: [], then: behaviour))
    }

    /// The next requests for `destination` get `behaviours`, one each, in order; after that,
    /// ``Behaviour/accept``. For "fails twice, then works".
    public func script(_ destination: String, sequence behaviours: [Behaviour]) {
        core.script(destination, StandInCore.Script(sequence: behaviours, then: nil))
    }

    /// Forgets every script: all destinations are accepted again.
    public func clearScripts() {
        core.state.withLock { $0.scripts.removeAll() }
    }

    /// Records that `number` (E.164, with or without `whatsapp:`) wrote in on WhatsApp, so
    /// free-form text to it is allowed (the 24-hour session window).
    public func openWhatsAppSession(_ number: String) {
        let bare = number.hasPrefix("whatsapp:") ? String(number.dropFirst("whatsapp:".count)) : number
        core.state.withLock { _ = $0.sessions.insert(bare) }
    }

    // MARK: What it received

    /// The messages created, oldest first, with their current status.
    public func messages() -> [StandInMessage] { core.state.withLock { $0.messages } }

    /// The mails accepted, oldest first.
    public func mails() -> [StandInMail] { core.state.withLock { $0.mails } }

    /// The status callbacks made so far (delivered or not), in the order they finished.
    public func callbacks() -> [StandInCallback] { core.state.withLock { $0.callbacks } }

    /// Every request answered, refused ones included, oldest first.
    public func requests() -> [StandInRequest] { core.state.withLock { $0.requests } }
}
