import Auth
import Foundation
import Redis

/// Everything `sitrep` reads from its environment, validated at start: one clear line per bad
/// or missing value, then exit code 2.
struct Configuration: Sendable {
    enum Environment: String, Sendable { case development, test, production }

    var environment: Environment
    var host: String
    var port: Int
    var databaseURL: String
    var redisURL: String
    /// PEM file of the CA certificates a `rediss://` server is checked against, instead of the
    /// system roots; nil: the system roots.
    var redisCAFile: String? = nil
    var dataDirectory: String
    var migrationsDirectory: String
    var oidcIssuer: String?
    var oidcAudience: String?
    var oidcTenantId: String?
    var oidcJWKSURL: String?
    /// Which token claims carry the user id, roles and MFA.
    var claims: ClaimMapping = .entra
    var devIssuerKeyPath: String?
    var maxBodyBytes: Int
    var maxUploadBytes: Int
    var idleTimeoutSeconds: Int
    var databaseTimeoutMilliseconds: Int
    /// The ERP (api/erp.yaml): base URL, API key, per-attempt timeout; nil base URL: none.
    var erpBaseURL: String? = nil
    var erpAPIKey: String? = nil
    var erpTimeoutSeconds = 10
    var concurrentUploads: Int
    var rateLimits: [String: RateLimitPolicy]
    var idempotencyRetentionHours: Int
    var rateLimitFailClosed: Set<String>
    var stepUpContext: String
    var logLevel: String
    var validateResponses: Bool
    var databasePoolSize: Int
    /// Seconds between keep-alive pings of idle PostgreSQL connections; 0 for none.
    var databaseKeepAliveSeconds: Int
    var dashboardTTLMilliseconds: Int
    var listCacheMilliseconds: Int
    var metricsToken: String?
    var oidcClientId: String?
    var oidcClientSecret: String?
    var oidcScope: String?
    var publicURL: String?
    var allowedOrigins: [String]
    var sessionIdleMinutes: Int
    var sessionAbsoluteHours: Int
    var dispatch: Dispatch

    /// Message dispatch: the providers, the public callback URL and the worker's pace.
    struct Dispatch: Sendable {
        var twilioAccountSid: String?
        var twilioAuthToken: String?
        var twilioBaseURL: String
        var whatsAppFrom: String?
        var smsFrom: String?
        var contentSids: [String: String]
        var statusCallbackURL: String?
        var sendGridAPIKey: String?
        var sendGridBaseURL: String
        var sendGridFrom: String?
        var sendGridFromName: String
        var providerTimeoutSeconds: Int
        var inServe: Bool
        var concurrency: Int
        var channelTimeoutSeconds: Int
        var triesPerChannel: Int
        var retryBaseMilliseconds: Int
        var pollMilliseconds: Int

        /// Twilio is configured (account, token, a sender): WhatsApp/SMS can go out and callbacks be checked.
        var twilioConfigured: Bool { twilioAccountSid != nil && twilioAuthToken != nil }
        var sendGridConfigured: Bool { sendGridAPIKey != nil && sendGridFrom != nil }
    }

    struct RateLimitPolicy: Sendable, Equatable {
        var limit: Int
        var windowSeconds: Int
    }

    struct Errors: Error {
        var lines: [String]
    }

    /// The variables, their defaults and meaning (also rendered in the README's table).
    static let documented: [(String, String, String)] = [
        ("SITREP_ENV", "development", "development, test or production; production refuses the local dev issuer"),
        ("SITREP_HOST", "0.0.0.0", "address to listen on"),
        ("SITREP_PORT", "8080", "port to listen on"),
        ("SITREP_DATABASE_URL", "(required)", "postgres://user:pass@host:port/db?sslmode=disable|require|verify-full"),
        (
            "SITREP_REDIS_URL", "(required)",
            "redis://[[user]:password@]host:port/db, or rediss://… for TLS (certificate and host name verified); port 6379 unless given"
        ),
        ("SITREP_REDIS_CA_FILE", "(system trust roots)", "PEM file of the CA certificates trusted for rediss:// instead of the system roots"),
        ("SITREP_DATA_DIR", ".data/dev", "local state for development (the dev issuer key)"),
        ("SITREP_MIGRATIONS_DIR", "./migrations", "where `sitrep migrate` finds NNNN_name.sql files"),
        ("SITREP_OIDC_ISSUER", "(dev issuer)", "exact token issuer, e.g. https://login.microsoftonline.com/{tenant}/v2.0; required in production"),
        ("SITREP_OIDC_AUDIENCE", "api://sitrep", "the API's client id; tokens must carry it in aud; required in production"),
        ("SITREP_OIDC_TENANT_ID", "(none)", "when set, tokens' tid must equal it"),
        ("SITREP_OIDC_JWKS_URL", "(discovered)", "JWKS URL; default from the issuer's /.well-known/openid-configuration"),
        (
            "SITREP_OIDC_CLAIMS", "entra",
            "token claim profile: entra (oid, roles, acrs) or standard (sub, realm_access.roles, acr: Keycloak and other OIDC issuers)"
        ),
        ("SITREP_OIDC_USER_ID_CLAIM", "(from the profile)", "oid or sub: the claim that identifies the caller"),
        ("SITREP_OIDC_ROLES_CLAIM", "(from the profile)", "roles, realm_access.roles or resource_access.<client>.roles"),
        ("SITREP_OIDC_MFA_CLAIM", "(from the profile)", "acrs, acr or amr: where SITREP_MFA_CONTEXT must appear for x-mfa operations"),
        ("SITREP_DEV_ISSUER_KEY", "$SITREP_DATA_DIR/dev-issuer-key.pem", "private key of the local dev issuer (not in production)"),
        ("SITREP_MAX_BODY_BYTES", "1048576", "largest accepted request body"),
        ("SITREP_MAX_UPLOAD_BYTES", "52428800", "largest accepted streamed upload (treasury CSV files)"),
        (
            "SITREP_IDLE_TIMEOUT_SECONDS", "30",
            "a connection that sends nothing for this long (no request, or a request's head or body stalled) is closed"
        ),
        ("SITREP_CONCURRENT_UPLOADS", "2", "treasury uploads one instance takes at a time (each holds a database connection)"),
        (
            "SITREP_RATE_LIMITS", "writes=60/60,ingest=600/60,auth=20/60,messaging=30/60,webhook=600/60",
            "policy=requests/seconds, per principal (GCRA: bursts up to the quota, steady refill)"
        ),
        ("SITREP_IDEMPOTENCY_RETENTION_HOURS", "24", "how long an Idempotency-Key and its saved answer are kept"),
        ("SITREP_RATE_LIMIT_FAIL_CLOSED", "auth,messaging", "policies that answer 503 while Redis is down (the others limit per instance)"),
        ("SITREP_MFA_CONTEXT", "c1", "Conditional Access authentication context id required by x-mfa operations"),
        ("SITREP_LOG_LEVEL", "info", "trace, debug, info, notice, warning, error, critical"),
        ("SITREP_VALIDATE_RESPONSES", "true except in production", "check every JSON response against its schema"),
        ("SITREP_DB_POOL_SIZE", "20", "PostgreSQL connections per instance (a fixed pool, opened at start and kept)"),
        (
            "SITREP_DB_KEEPALIVE_S", "0",
            "ping idle PostgreSQL connections this often (0: off; for networks that drop idle connections; costs heap per query)"
        ),
        (
            "SITREP_DB_TIMEOUT_MS", "5000",
            "longest one database operation may take (waiting for a connection included) before the request answers 503"
        ),
        ("SITREP_DASHBOARD_TTL_MS", "2000", "how long one computed dashboard aggregate (and its ETag) is served; 0: every request computes its own"),
        ("SITREP_ERP_BASE_URL", "(none: no ERP figures)", "the ERP's API (contract api/erp.yaml), e.g. https://erp.example.gov/api"),
        ("SITREP_ERP_API_KEY", "(none)", "bearer token the ERP issued to Sitrep"),
        ("SITREP_ERP_TIMEOUT_SECONDS", "10", "longest one ERP call may take, per attempt (3 attempts with backoff, then a circuit breaker)"),
        ("SITREP_METRICS_TOKEN", "(none: /metrics is open)", "bearer token a Prometheus scrape of /metrics must send"),
        (
            "SITREP_LIST_CACHE_MS", "1000",
            "longest an unfiltered signal page is served from memory; dropped at once when this instance learns of a change (0: off)"
        ),
        (
            "SITREP_OIDC_CLIENT_ID", "(none: no browser sign-in)",
            "the backend-for-frontend's client id at the issuer; enables /v1/auth/* cookie sessions"
        ),
        ("SITREP_OIDC_CLIENT_SECRET", "(none)", "its client secret, when the issuer requires one (confidential client)"),
        ("SITREP_OIDC_SCOPE", "openid profile offline_access, plus <audience>/access_as_user with entra claims", "scopes asked for at sign-in"),
        ("SITREP_PUBLIC_URL", "(required with a client id)", "public base URL behind the proxy; the callback is <url>/v1/auth/callback"),
        ("SITREP_ALLOWED_ORIGINS", "the public URL's origin", "comma-separated origins allowed to write with a session cookie"),
        ("SITREP_SESSION_IDLE_MINUTES", "15", "a browser session unused this long ends"),
        ("SITREP_SESSION_ABSOLUTE_HOURS", "8", "a browser session ends this long after sign-in"),
        (
            "SITREP_TWILIO_ACCOUNT_SID", "(none: no WhatsApp/SMS)",
            "Twilio account (AC…); with the auth token, enables WhatsApp, SMS and the status webhook"
        ),
        ("SITREP_TWILIO_AUTH_TOKEN", "(none)", "Twilio auth token: API password and the key of X-Twilio-Signature"),
        ("SITREP_TWILIO_BASE_URL", "https://api.twilio.com", "Twilio API; a local stand-in's URL in development (refused in production)"),
        ("SITREP_TWILIO_WHATSAPP_FROM", "(required with Twilio)", "approved WhatsApp sender, whatsapp:+971…"),
        ("SITREP_TWILIO_SMS_FROM", "(required with Twilio)", "SMS sender, +971… or an alphanumeric sender id"),
        (
            "SITREP_TWILIO_CONTENT_SIDS", "(required with Twilio)",
            "approved WhatsApp templates per language, en=HX…,ar=HX…; variables {{1}} name, {{2}} date, {{3}} title, {{4}} reference"
        ),
        (
            "SITREP_TWILIO_STATUS_CALLBACK_URL", "<SITREP_PUBLIC_URL>/v1/webhooks/twilio/status",
            "the public URL Twilio calls back (and signs); must be what Twilio sees behind the proxy"
        ),
        ("SITREP_SENDGRID_API_KEY", "(none: no e-mail)", "SendGrid API key (SG.…); enables the e-mail channel"),
        ("SITREP_SENDGRID_BASE_URL", "https://api.sendgrid.com", "SendGrid API; a local stand-in's URL in development (refused in production)"),
        ("SITREP_SENDGRID_FROM", "(required with SendGrid)", "verified sender address of briefing mails"),
        ("SITREP_SENDGRID_FROM_NAME", "Sitrep", "sender display name"),
        ("SITREP_PROVIDER_TIMEOUT_SECONDS", "15", "longest Twilio or SendGrid call"),
        (
            "SITREP_DISPATCH_IN_SERVE", "true",
            "run the dispatch worker inside `sitrep serve` (when a provider is configured); `sitrep worker` runs it alone"
        ),
        ("SITREP_DISPATCH_CONCURRENCY", "8", "deliveries one worker handles at once"),
        ("SITREP_DISPATCH_CHANNEL_TIMEOUT_SECONDS", "600", "how long WhatsApp or SMS may stay unconfirmed before the next channel"),
        ("SITREP_DISPATCH_TRIES_PER_CHANNEL", "5", "tries on one channel after 429/5xx/time-outs before the next channel"),
        ("SITREP_DISPATCH_RETRY_BASE_MS", "2000", "first retry backoff (exponential with full jitter, at most 5 minutes)"),
        ("SITREP_DISPATCH_POLL_MS", "1000", "how often an idle worker looks for due deliveries"),
    ]

    /// What a command uses, so it is not refused for settings it never reads (`migrate` needs
    /// the database only, `serve` everything).
    struct Needs: OptionSet, Sendable {
        let rawValue: Int
        static let database = Needs(rawValue: 1)
        static let redis = Needs(rawValue: 2)
        /// The token issuer (production requires the real one).
        static let identity = Needs(rawValue: 4)
        static let all: Needs = [.database, .redis, .identity]
    }

    static func load(_ env: [String: String] = ProcessInfo.processInfo.environment, needs: Needs = .all) throws(Errors) -> Configuration {
        var errors: [String] = []
        func value(_ key: String) -> String? {
            guard let v = env[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func int(_ key: String, default d: Int, range: ClosedRange<Int>) -> Int {
            guard let raw = value(key) else { return d }
            guard let v = Int(raw), range.contains(v) else {
                errors.append("\(key)=\(raw) is not valid: expected an integer in \(range.lowerBound)...\(range.upperBound)")
                return d
            }
            return v
        }

        var environment = Environment.development
        if let raw = value("SITREP_ENV") {
            if let e = Environment(rawValue: raw) {
                environment = e
            } else {
                errors.append("SITREP_ENV=\(raw) is not valid: expected development, test or production")
            }
        }
        let port = int("SITREP_PORT", default: 8080, range: 1...65535)
        let databaseURL = value("SITREP_DATABASE_URL") ?? ""
        let redisURL = value("SITREP_REDIS_URL") ?? ""
        if needs.contains(.database) && databaseURL.isEmpty {
            errors.append("SITREP_DATABASE_URL is missing: set it to postgres://user:pass@host:port/db")
        }
        if needs.contains(.redis) && redisURL.isEmpty { errors.append("SITREP_REDIS_URL is missing: set it to redis://host:port/0") }
        if !databaseURL.isEmpty, !(databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://")) {
            errors.append("SITREP_DATABASE_URL is not valid: it must start with postgres://")
        }
        if !redisURL.isEmpty, !(redisURL.hasPrefix("redis://") || redisURL.hasPrefix("rediss://")) {
            errors.append("SITREP_REDIS_URL is not valid: it must start with redis:// (or rediss:// for TLS)")
        }
        let redisCAFile = value("SITREP_REDIS_CA_FILE")
        if let redisCAFile, needs.contains(.redis) {
            if redisURL.hasPrefix("redis://") {
                errors.append(
                    "SITREP_REDIS_CA_FILE is set but SITREP_REDIS_URL is redis:// (no TLS): use rediss:// or unset SITREP_REDIS_CA_FILE")
            } else {
                do {
                    try RedisTLS(caFile: redisCAFile).prepare()
                } catch {
                    errors.append("SITREP_REDIS_CA_FILE=\(redisCAFile) is not valid: \(error)")
                }
            }
        }
        let dataDirectory = value("SITREP_DATA_DIR") ?? ".data/dev"
        let issuer = value("SITREP_OIDC_ISSUER")
        let devKey = value("SITREP_DEV_ISSUER_KEY")
        if environment == .production && needs.contains(.identity) {
            if issuer == nil { errors.append("SITREP_OIDC_ISSUER is missing: production needs the real token issuer") }
            if value("SITREP_OIDC_AUDIENCE") == nil { errors.append("SITREP_OIDC_AUDIENCE is missing: production needs the API's client id") }
        }
        if environment == .production, devKey != nil {
            errors.append("SITREP_DEV_ISSUER_KEY is set: the local dev issuer is refused in production")
        }
        if let issuer, URL(string: issuer)?.scheme == nil {
            errors.append("SITREP_OIDC_ISSUER=\(issuer) is not valid: expected an https URL")
        }
        var claims = ClaimMapping.entra
        if let raw = value("SITREP_OIDC_CLAIMS") {
            switch raw {
            case "entra": claims = .entra
            case "standard": claims = .standard
            default: errors.append("SITREP_OIDC_CLAIMS=\(raw) is not valid: expected entra (Entra ID) or standard (Keycloak and other OIDC issuers)")
            }
        }
        if let raw = value("SITREP_OIDC_USER_ID_CLAIM") {
            if let v = ClaimMapping.UserID(rawValue: raw) {
                claims.userId = v
            } else {
                errors.append("SITREP_OIDC_USER_ID_CLAIM=\(raw) is not valid: expected oid or sub")
            }
        }
        if let raw = value("SITREP_OIDC_ROLES_CLAIM") {
            if let problem = ClaimMapping.rolesPathProblem(raw) {
                errors.append("SITREP_OIDC_ROLES_CLAIM=\(raw) is not valid: \(problem)")
            } else {
                claims.roles = raw
            }
        }
        if let raw = value("SITREP_OIDC_MFA_CLAIM") {
            if let v = ClaimMapping.MFA(rawValue: raw) {
                claims.mfa = v
            } else {
                errors.append("SITREP_OIDC_MFA_CLAIM=\(raw) is not valid: expected acrs, acr or amr")
            }
        }
        var limits: [String: RateLimitPolicy] = [:]
        let rawLimits = value("SITREP_RATE_LIMITS") ?? "writes=60/60,ingest=600/60,auth=20/60,messaging=30/60,webhook=600/60"
        for part in rawLimits.split(separator: ",") {
            let kv = part.split(separator: "=")
            let nums = kv.count == 2 ? kv[1].split(separator: "/") : []
            guard kv.count == 2, nums.count == 2, let n = Int(nums[0]), let w = Int(nums[1]), n > 0, w > 0 else {
                errors.append("SITREP_RATE_LIMITS entry '\(part)' is not valid: expected policy=requests/seconds")
                continue
            }
            limits[String(kv[0]).trimmingCharacters(in: .whitespaces)] = RateLimitPolicy(limit: n, windowSeconds: w)
        }
        let logLevel = value("SITREP_LOG_LEVEL") ?? "info"
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) {
            errors.append("SITREP_LOG_LEVEL=\(logLevel) is not valid: expected trace, debug, info, notice, warning, error or critical")
        }
        var validate = environment != .production
        if let raw = value("SITREP_VALIDATE_RESPONSES") {
            switch raw {
            case "true", "1": validate = true
            case "false", "0": validate = false
            default: errors.append("SITREP_VALIDATE_RESPONSES=\(raw) is not valid: expected true or false")
            }
        }
        let clientId = value("SITREP_OIDC_CLIENT_ID")
        let publicURL = value("SITREP_PUBLIC_URL").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        var allowedOrigins: [String] = []
        if let publicURL {
            if let u = URL(string: publicURL), let scheme = u.scheme, let host = u.host, u.path.isEmpty {
                allowedOrigins.append("\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? ""))
                if environment == .production && scheme != "https" {
                    errors.append("SITREP_PUBLIC_URL=\(publicURL) is not valid: production needs https")
                }
            } else {
                errors.append("SITREP_PUBLIC_URL=\(publicURL) is not valid: expected scheme://host[:port] with no path")
            }
        } else if clientId != nil {
            errors.append("SITREP_PUBLIC_URL is missing: browser sign-in (SITREP_OIDC_CLIENT_ID) needs the public base URL for its callback")
        }
        if let raw = value("SITREP_ALLOWED_ORIGINS") {
            allowedOrigins = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if clientId != nil && issuer == nil && environment == .production {
            errors.append("SITREP_OIDC_CLIENT_ID is set without SITREP_OIDC_ISSUER")
        }
        var dispatchErrors: [String] = []
        let dispatch = Self.loadDispatch(value: value, int: int, environment: environment, publicURL: publicURL, errors: &dispatchErrors)
        errors += dispatchErrors
        var config = Configuration(
            environment: environment, host: value("SITREP_HOST") ?? "0.0.0.0", port: port, databaseURL: databaseURL,
            redisURL: redisURL, dataDirectory: dataDirectory, migrationsDirectory: value("SITREP_MIGRATIONS_DIR") ?? "migrations",
            oidcIssuer: issuer, oidcAudience: value("SITREP_OIDC_AUDIENCE"), oidcTenantId: value("SITREP_OIDC_TENANT_ID"),
            oidcJWKSURL: value("SITREP_OIDC_JWKS_URL"),
            devIssuerKeyPath: environment == .production ? nil : (devKey ?? dataDirectory + "/dev-issuer-key.pem"),
            maxBodyBytes: int("SITREP_MAX_BODY_BYTES", default: 1 << 20, range: 1024...(1 << 30)),
            maxUploadBytes: int("SITREP_MAX_UPLOAD_BYTES", default: 50 << 20, range: 1024...(1 << 34)),
            idleTimeoutSeconds: int("SITREP_IDLE_TIMEOUT_SECONDS", default: 30, range: 1...3600),
            databaseTimeoutMilliseconds: int("SITREP_DB_TIMEOUT_MS", default: 5000, range: 100...600_000),
            concurrentUploads: int("SITREP_CONCURRENT_UPLOADS", default: 2, range: 1...64), rateLimits: limits,
            idempotencyRetentionHours: int("SITREP_IDEMPOTENCY_RETENTION_HOURS", default: 24, range: 1...720),
            rateLimitFailClosed: Set(
                (value("SITREP_RATE_LIMIT_FAIL_CLOSED") ?? "auth,messaging").split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }),
            stepUpContext: value("SITREP_MFA_CONTEXT") ?? "c1", logLevel: logLevel, validateResponses: validate,
            databasePoolSize: int("SITREP_DB_POOL_SIZE", default: 20, range: 1...500),
            databaseKeepAliveSeconds: int("SITREP_DB_KEEPALIVE_S", default: 0, range: 0...3600),
            dashboardTTLMilliseconds: int("SITREP_DASHBOARD_TTL_MS", default: 2000, range: 0...600_000),
            listCacheMilliseconds: int("SITREP_LIST_CACHE_MS", default: 1000, range: 0...60_000),
            metricsToken: value("SITREP_METRICS_TOKEN"), oidcClientId: clientId,
            oidcClientSecret: value("SITREP_OIDC_CLIENT_SECRET"), oidcScope: value("SITREP_OIDC_SCOPE"), publicURL: publicURL,
            allowedOrigins: allowedOrigins, sessionIdleMinutes: int("SITREP_SESSION_IDLE_MINUTES", default: 15, range: 1...1440),
            sessionAbsoluteHours: int("SITREP_SESSION_ABSOLUTE_HOURS", default: 8, range: 1...168), dispatch: dispatch)
        config.claims = claims
        config.redisCAFile = redisCAFile
        if let erp = value("SITREP_ERP_BASE_URL") {
            if let url = URL(string: erp), let scheme = url.scheme, url.host != nil, scheme == "https" || scheme == "http" {
                if environment == .production && (scheme != "https" || ["127.0.0.1", "localhost", "::1"].contains(url.host ?? "")) {
                    errors.append("SITREP_ERP_BASE_URL=\(erp) is not valid in production: it must be https and not loopback")
                }
                config.erpBaseURL = erp
            } else {
                errors.append("SITREP_ERP_BASE_URL=\(erp) is not valid: expected an http(s) URL")
            }
            config.erpAPIKey = value("SITREP_ERP_API_KEY")
            if config.erpAPIKey == nil { errors.append("SITREP_ERP_API_KEY is missing: the ERP needs its API key") }
        }
        config.erpTimeoutSeconds = int("SITREP_ERP_TIMEOUT_SECONDS", default: 10, range: 1...300)
        if !errors.isEmpty { throw Errors(lines: errors) }
        return config
    }

    static func loadDispatch(
        value: (String) -> String?, int: (String, Int, ClosedRange<Int>) -> Int, environment: Environment, publicURL: String?,
        errors: inout [String]
    ) -> Dispatch {
        /// A provider base URL: https in production, and never a loopback stand-in there.
        func baseURL(_ key: String, default d: String) -> String {
            let raw = value(key).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? d
            guard let u = URL(string: raw), let scheme = u.scheme, let host = u.host, scheme == "https" || scheme == "http" else {
                errors.append("\(key)=\(raw) is not valid: expected an http(s) URL")
                return raw
            }
            if environment == .production {
                let local = ["localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"].contains(host) || host.hasSuffix(".localhost")
                if scheme != "https" || local {
                    errors.append("\(key)=\(raw) is not valid in production: a local stand-in (or plain http) is refused")
                }
            }
            return raw
        }
        let sid = value("SITREP_TWILIO_ACCOUNT_SID")
        let token = value("SITREP_TWILIO_AUTH_TOKEN")
        if (sid == nil) != (token == nil) {
            errors.append("SITREP_TWILIO_ACCOUNT_SID and SITREP_TWILIO_AUTH_TOKEN must be set together")
        }
        if let sid, sid.range(of: "^AC[0-9a-f]{32}$", options: .regularExpression) == nil {
            errors.append("SITREP_TWILIO_ACCOUNT_SID=\(sid) is not valid: expected AC followed by 32 lower-case hex digits")
        }
        var contentSids: [String: String] = [:]
        if let raw = value("SITREP_TWILIO_CONTENT_SIDS") {
            for part in raw.split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, ["en", "ar"].contains(kv[0]), kv[1].range(of: "^HX[0-9a-f]{32}$", options: .regularExpression) != nil else {
                    errors.append("SITREP_TWILIO_CONTENT_SIDS entry '\(part)' is not valid: expected en=HX… or ar=HX… (HX + 32 hex digits)")
                    continue
                }
                contentSids[kv[0]] = kv[1]
            }
        }
        let callback = value("SITREP_TWILIO_STATUS_CALLBACK_URL") ?? publicURL.map { $0 + "/v1/webhooks/twilio/status" }
        if sid != nil {
            if value("SITREP_TWILIO_WHATSAPP_FROM") == nil && value("SITREP_TWILIO_SMS_FROM") == nil {
                errors.append("SITREP_TWILIO_WHATSAPP_FROM or SITREP_TWILIO_SMS_FROM is missing: Twilio needs a sender")
            }
            if value("SITREP_TWILIO_WHATSAPP_FROM") != nil && contentSids["en"] == nil && contentSids["ar"] == nil {
                errors.append("SITREP_TWILIO_CONTENT_SIDS is missing: WhatsApp sends approved templates only")
            }
            if callback == nil {
                errors.append("SITREP_TWILIO_STATUS_CALLBACK_URL is missing (or SITREP_PUBLIC_URL): Twilio needs a URL to report status to")
            }
        }
        if let callback {
            if let u = URL(string: callback), u.scheme != nil, u.host != nil, u.query == nil {
                if environment == .production && u.scheme != "https" {
                    errors.append("SITREP_TWILIO_STATUS_CALLBACK_URL=\(callback) is not valid: production needs https")
                }
            } else {
                errors.append("SITREP_TWILIO_STATUS_CALLBACK_URL=\(callback) is not valid: expected an absolute URL without query")
            }
        }
        let apiKey = value("SITREP_SENDGRID_API_KEY")
        if apiKey != nil && value("SITREP_SENDGRID_FROM") == nil {
            errors.append("SITREP_SENDGRID_FROM is missing: SendGrid needs a verified sender address")
        }
        var inServe = true
        if let raw = value("SITREP_DISPATCH_IN_SERVE") {
            switch raw {
            case "true", "1": inServe = true
            case "false", "0": inServe = false
            default: errors.append("SITREP_DISPATCH_IN_SERVE=\(raw) is not valid: expected true or false")
            }
        }
        return Dispatch(
            twilioAccountSid: sid, twilioAuthToken: token, twilioBaseURL: baseURL("SITREP_TWILIO_BASE_URL", default: "https://api.twilio.com"),
            whatsAppFrom: value("SITREP_TWILIO_WHATSAPP_FROM").map { $0.hasPrefix("whatsapp:") ? $0 : "whatsapp:" + $0 },
            smsFrom: value("SITREP_TWILIO_SMS_FROM"), contentSids: contentSids, statusCallbackURL: callback, sendGridAPIKey: apiKey,
            sendGridBaseURL: baseURL("SITREP_SENDGRID_BASE_URL", default: "https://api.sendgrid.com"),
            sendGridFrom: value("SITREP_SENDGRID_FROM"), sendGridFromName: value("SITREP_SENDGRID_FROM_NAME") ?? "Sitrep",
            providerTimeoutSeconds: int("SITREP_PROVIDER_TIMEOUT_SECONDS", 15, 1...120), inServe: inServe,
            concurrency: int("SITREP_DISPATCH_CONCURRENCY", 8, 1...256),
            channelTimeoutSeconds: int("SITREP_DISPATCH_CHANNEL_TIMEOUT_SECONDS", 600, 1...86_400),
            triesPerChannel: int("SITREP_DISPATCH_TRIES_PER_CHANNEL", 5, 1...20),
            retryBaseMilliseconds: int("SITREP_DISPATCH_RETRY_BASE_MS", 2000, 10...600_000),
            pollMilliseconds: int("SITREP_DISPATCH_POLL_MS", 1000, 10...60_000))
    }
}
