import ERPClient
import Foundation
import Generated
import Logging
import PostgresNIO
import Redis
import SitrepRuntime
import Storage

/// The handwritten implementation of the generated protocols: domain rules over PostgreSQL and
/// Redis. Handlers never see raw HTTP; the generated router decoded and authorised the call.
public struct SitrepHandlers: SitrepAPI {
    let db: PostgresClient
    let redis: RedisClient
    /// Names of migrations present on disk but not applied (readiness: "migrations current").
    let pendingMigrations: @Sendable () async throws -> [String]
    let stepUpContext: String
    let dashboardCache: DashboardCache
    /// Browser sign-in and sessions; nil when the deployment has no OIDC client configured.
    let sessions: BrowserSessions?
    /// The live signal stream's fan-out; nil: `streamSignals` answers 503.
    let signalHub: SignalStreamHub?
    /// The Twilio status callback's keys; nil: `receiveTwilioStatus` answers 503.
    let twilioWebhook: TwilioWebhookSettings?
    /// Unfiltered signal pages kept while nothing changed (``SignalPageCache``).
    let signalPages: SignalPageCache
    /// The unfiltered page's statements, prepared per connection (``latestPage(_:_:limit:after:logger:)``).
    let pageStatements = RowCallbackStatements()
    /// Treasury uploads this instance takes at a time.
    let uploadSlots: UploadSlots
    /// How long one database operation may take before the request is answered 503.
    let databaseDeadline: Duration
    /// The ERP's generated client; nil: `getBudgetSummary` answers 503.
    let erp: ERPClient?

    /// `dashboardTTL`: how long one computed dashboard aggregate is served (and its ETag valid).
    public init(
        db: PostgresClient, redis: RedisClient, stepUpContext: String, dashboardTTL: Duration = .seconds(2),
        sessions: BrowserSessions? = nil, signalHub: SignalStreamHub? = nil, twilioWebhook: TwilioWebhookSettings? = nil,
        listCacheMaxAge: Duration = .zero, maxConcurrentUploads: Int = 2, databaseDeadline: Duration = DatabaseDeadline.standard,
        erp: ERPClient? = nil, pendingMigrations: @escaping @Sendable () async throws -> [String]
    ) {
        self.erp = erp
        self.databaseDeadline = databaseDeadline
        self.uploadSlots = UploadSlots(capacity: maxConcurrentUploads)
        self.sessions = sessions
        self.signalHub = signalHub
        self.twilioWebhook = twilioWebhook
        self.signalPages = SignalPageCache(maxAge: signalHub == nil ? .zero : listCacheMaxAge)
        self.db = db
        self.redis = redis
        self.stepUpContext = stepUpContext
        self.dashboardCache = DashboardCache(ttl: dashboardTTL)
        self.pendingMigrations = pendingMigrations
    }
}

extension SitrepHandlers {
    /// A database operation under this instance's deadline (see the free `database`).
    func database<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Handlers.database(deadline: databaseDeadline, body)
    }
}

extension OperationContext {
    /// How a person is shown in `setBy`/`triagedBy`: the display name at write time, else the id.
    var actorLabel: String { principal?.displayName ?? principal?.id ?? "anonymous" }
}
