import ArgumentParser
import AsyncHTTPClient
import DeliveryWorker
import ERPStandIn
import Foundation
import Handlers
import Logging
import PostgresNIO
import ProviderStandIn
import ServiceLifecycle
import Storage
import Twilio

extension Configuration.Dispatch {
    /// The webhook's keys, when Twilio is configured.
    var webhook: TwilioWebhookSettings? {
        guard let sid = twilioAccountSid, let token = twilioAuthToken, let url = statusCallbackURL else { return nil }
        return TwilioWebhookSettings(accountSid: sid, authToken: token, statusCallbackURL: url)
    }

    /// The worker, when at least one provider is configured.
    func worker(db: PostgresClient, httpClient: HTTPClient, logger: Logger) -> DispatchWorker? {
        let timeout = Duration.seconds(providerTimeoutSeconds)
        var twilio: TwilioClient?
        if let sid = twilioAccountSid, let token = twilioAuthToken {
            twilio = TwilioClient(
                configuration: TwilioConfiguration(
                    accountSid: sid, authToken: token, baseURL: twilioBaseURL, whatsappFrom: whatsAppFrom ?? "", smsFrom: smsFrom ?? "",
                    requestTimeout: timeout),
                httpClient: httpClient, logger: logger)
        }
        var sendGrid: SendGridClient?
        if let key = sendGridAPIKey, let from = sendGridFrom {
            sendGrid = SendGridClient(
                configuration: SendGridConfiguration(
                    apiKey: key, baseURL: sendGridBaseURL, fromEmail: from, fromName: sendGridFromName, requestTimeout: timeout),
                httpClient: httpClient, logger: logger)
        }
        guard twilio != nil || sendGrid != nil else { return nil }
        let settings = DispatchSettings(
            statusCallbackURL: statusCallbackURL ?? "", whatsAppContentSids: contentSids,
            channelTimeout: .seconds(channelTimeoutSeconds), policy: DispatchPlan.Policy(triesPerChannel: triesPerChannel),
            retryBase: .milliseconds(retryBaseMilliseconds), retryCap: .seconds(300), concurrency: concurrency,
            pollInterval: .milliseconds(pollMilliseconds),
            // Outlasts a call and the look-up after it, so no two workers hold one delivery.
            lease: timeout * 2 + .seconds(5))
        return DispatchWorker(db: db, twilio: twilio, sendGrid: sendGrid, settings: settings, logger: logger)
    }
}

/// Runs the dispatch worker until shutdown; deliveries in hand are finished first.
struct DispatchWorkerService: Service {
    let worker: DispatchWorker
    func run() async throws {
        await worker.run(stopRequested: { Task.isShuttingDownGracefully })
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only the dispatch worker (any number of them share the work safely; graceful stop on SIGTERM/SIGINT).")

    func run() async throws {
        let config = loadConfiguration(needs: .database)
        bootstrapLogging(config)
        let logger = Logger(label: "sitrep.dispatch")
        let tracing = bootstrapTracing(logger: logger)
        let database: DatabaseConfiguration
        do {
            database = try DatabaseConfiguration(url: config.databaseURL)
        } catch {
            die("\(error)")
        }
        let pgConfig = database.clientConfiguration(
            poolSize: max(4, config.dispatch.concurrency + 2),
            keepAlive: config.databaseKeepAliveSeconds > 0 ? .seconds(config.databaseKeepAliveSeconds) : nil)
        let postgres = PostgresClient(configuration: pgConfig, backgroundLogger: logger)
        let httpClient = makeHTTPClient(connectionsPerHost: config.dispatch.concurrency)
        guard let worker = config.dispatch.worker(db: postgres, httpClient: httpClient, logger: logger) else {
            try? await httpClient.shutdown()
            die("no provider is configured: set SITREP_TWILIO_ACCOUNT_SID/AUTH_TOKEN or SITREP_SENDGRID_API_KEY")
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First, so it stops last and exports the worker's last spans.
        if let tracing { services.append(.init(service: tracing.service)) }
        services += [
            .init(service: postgres),
            .init(service: DispatchWorkerService(worker: worker), successTerminationBehavior: .gracefullyShutdownGroup),
        ]
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("the dispatch worker stopped with an error", metadata: ["error": "\(error)"])
        }
        try? await httpClient.shutdown()
    }
}

struct DevProviders: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-providers",
        abstract: "Run the local Twilio and SendGrid stand-in for development (refused in production).",
        discussion: """
            Accepts every message and mail and calls back delivered (signed like Twilio). Prints the \
            settings that point Sitrep at it, one SITREP_…=value line each (ready for `export`).
            """)

    @Option(help: "Port on 127.0.0.1 to listen on.")
    var port = 8082

    func run() async throws {
        let config = loadConfiguration(needs: [])
        bootstrapLogging(config)
        guard config.environment != .production else { die("dev-providers is refused in production") }
        let standIn = try await ProviderStandIn.start(port: port, logger: Logger(label: "dev-providers"))
        let c = standIn.configuration
        // Unbuffered: Tools/run waits for these lines.
        let settings = [
            ("SITREP_TWILIO_BASE_URL", standIn.baseURL), ("SITREP_TWILIO_ACCOUNT_SID", c.accountSid), ("SITREP_TWILIO_AUTH_TOKEN", c.authToken),
            ("SITREP_SENDGRID_BASE_URL", standIn.baseURL), ("SITREP_SENDGRID_API_KEY", c.sendGridAPIKey),
        ]
        FileHandle.standardOutput.write(Data(settings.map { "\($0.0)=\($0.1)\n" }.joined().utf8))
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(3600))
        }
        await standIn.shutdown()
    }
}

struct DevERP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-erp",
        abstract: "Run the local ERP stand-in (api/erp.yaml, seeded cost centres CC-1001, CC-2040, CC-3300) for development (refused in production).",
        discussion: "Prints the settings that point Sitrep at it, one SITREP_…=value line each (ready for `export`).")

    @Option(help: "Port on 127.0.0.1 to listen on.")
    var port = 8083

    func run() async throws {
        let config = loadConfiguration(needs: [])
        bootstrapLogging(config)
        guard config.environment != .production else { die("dev-erp is refused in production") }
        let standIn = try await ERPStandIn.start(port: port, logger: Logger(label: "dev-erp"))
        // Unbuffered: Tools/run waits for these lines.
        let settings = [("SITREP_ERP_BASE_URL", standIn.baseURL), ("SITREP_ERP_API_KEY", standIn.configuration.apiKey)]
        FileHandle.standardOutput.write(Data(settings.map { "\($0.0)=\($0.1)\n" }.joined().utf8))
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(3600))
        }
        await standIn.shutdown()
    }
}
