/// Where and as whom ``TwilioClient`` sends.
public struct TwilioConfiguration: Sendable {
    /// `AC…`; also the user name of HTTP Basic authentication.
    public var accountSid: String
    /// The account's auth token: the Basic password, and the key of ``TwilioSignature``.
    public var authToken: String
    /// `https://api.twilio.com`, or a stand-in's base URL. No trailing slash needed.
    public var baseURL: String
    /// The approved WhatsApp sender, `whatsapp:+971…`.
    public var whatsappFrom: String
    /// The SMS sender, `+971…` (or an alphanumeric sender id where allowed).
    public var smsFrom: String
    /// The longest a single request may take, connection included.
    public var requestTimeout: Duration

    public init(
        accountSid: String, authToken: String, baseURL: String = "https://api.twilio.com", whatsappFrom: String, smsFrom: String,
        requestTimeout: Duration = .seconds(15)
    ) {
        self.accountSid = accountSid
        self.authToken = authToken
        self.baseURL = baseURL
        self.whatsappFrom = whatsappFrom
        self.smsFrom = smsFrom
        self.requestTimeout = requestTimeout
    }
}

/// Where and as whom ``SendGridClient`` sends.
public struct SendGridConfiguration: Sendable {
    /// The API key (`SG.…`), sent as a Bearer token.
    public var apiKey: String
    /// `https://api.sendgrid.com`, or a stand-in's base URL. No trailing slash needed.
    public var baseURL: String
    /// A verified sender address.
    public var fromEmail: String
    /// The sender's display name.
    public var fromName: String
    /// The longest a single request may take, connection included.
    public var requestTimeout: Duration

    public init(
        apiKey: String, baseURL: String = "https://api.sendgrid.com", fromEmail: String, fromName: String,
        requestTimeout: Duration = .seconds(15)
    ) {
        self.apiKey = apiKey
        self.baseURL = baseURL
        self.fromEmail = fromEmail
        self.fromName = fromName
        self.requestTimeout = requestTimeout
    }
}
