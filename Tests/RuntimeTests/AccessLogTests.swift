import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SitrepRuntime
import Synchronization
import Testing

/// Log lines kept in memory.
final class CapturedLogs: Sendable {
    let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])
}

struct CapturingLogHandler: LogHandler {
    let store: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String,
        line: UInt
    ) {
        let merged = metadata.merging(explicit ?? [:]) { _, new in new }
        store.lines.withLock { $0.append((message.description, merged)) }
    }
}

/// One access-log line per request, naming the operation and the caller (never the token).
@Suite("access log")
struct AccessLogTests {
    @Test func eachRequestIsOneLineWithOperationPrincipalStatusAndDuration() async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "sitrep.test") { _ in CapturingLogHandler(store: logs) }
        try await makeApp(logger: logger).test(.router) { client in
            var auth = HTTPFields()
            auth[.authorization] = "Bearer viewer"
            auth[.xRequestID] = "trace-me-1"
            _ = try await client.execute(uri: "/v1/signals?limit=5", method: .get, headers: auth)
            _ = try await client.execute(uri: "/v1/signals?limit=5", method: .get)
            _ = try await client.execute(uri: "/nowhere", method: .get)
        }
        let lines = logs.lines.withLock { $0.filter { $0.message == "request" } }
        #expect(lines.count == 3)
        guard lines.count == 3 else { return }
        let ok = lines[0].metadata
        #expect(ok["operation"] == "listSignals" && ok["principal"] == "t:viewer" && ok["requestId"] == "trace-me-1")
        #expect(ok["status"]?.description == "200" && ok["method"] == "GET" && ok["path"] == "/v1/signals")
        #expect(ok["durationMs"].map { Double($0.description) != nil } == true)
        let refused = lines[1].metadata
        #expect(refused["operation"] == "listSignals" && refused["principal"] == nil && refused["status"]?.description == "401")
        let unknown = lines[2].metadata
        #expect(unknown["operation"] == nil && unknown["status"]?.description == "404")
        // Never a credential.
        let all = logs.lines.withLock { $0.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n") }
        #expect(!all.contains("Bearer"))
    }
}
