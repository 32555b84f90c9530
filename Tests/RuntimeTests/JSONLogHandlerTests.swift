import Foundation
import Logging
import Testing

@testable import SitrepRuntime

/// The log lines `sitrep` writes: one JSON object per line, every piece of metadata on it.
@Suite("JSON log handler")
struct JSONLogHandlerTests {
    static func decode(_ bytes: [UInt8]) throws -> [String: String] {
        #expect(bytes.last == UInt8(ascii: "\n"))
        let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        return (object ?? [:]).compactMapValues { $0 as? String }
    }

    /// Hummingbird's per-request id lives in its own slot; it reads back, shows in `metadata`,
    /// and is written on the line like any other key.
    @Test func hummingbirdsRequestIdIsKeptAndWrittenLikeAnyKey() throws {
        var handler = JSONLogHandler(label: "sitrep.test", level: .info)
        handler[metadataKey: "hb.request.id"] = "hb-1"
        handler[metadataKey: "component"] = "worker"
        #expect(handler[metadataKey: "hb.request.id"] == "hb-1")
        #expect(handler.metadata == ["hb.request.id": "hb-1", "component": "worker"])
        let line = try Self.decode(handler.line(level: .info, message: "hello", metadata: ["extra": "1"], at: Date(timeIntervalSince1970: 0)))
        #expect(line["hb.request.id"] == "hb-1" && line["component"] == "worker" && line["extra"] == "1")
        #expect(line["message"] == "hello" && line["level"] == "info" && line["logger"] == "sitrep.test")
        #expect(line["time"]?.hasPrefix("1970-01-01T00:00:00") == true)

        // Replacing the whole metadata replaces the slot too; removing the key empties it.
        handler.metadata = ["hb.request.id": "hb-2"]
        #expect(handler[metadataKey: "hb.request.id"] == "hb-2" && handler[metadataKey: "component"] == nil)
        handler[metadataKey: "hb.request.id"] = nil
        #expect(handler.metadata.isEmpty)
        let bare = try Self.decode(handler.line(level: .warning, message: "m", metadata: nil, at: Date()))
        #expect(bare["hb.request.id"] == nil && bare["level"] == "warning")
    }

    /// The metadata provider (the request's id, operation, principal) and a line's own metadata
    /// are merged over the handler's, the line's winning.
    @Test func providedAndExplicitMetadataWinInThatOrder() throws {
        var handler = JSONLogHandler(
            label: "l", level: .info, metadataProvider: Logger.MetadataProvider { ["requestId": "r-1", "k": "provided"] })
        handler[metadataKey: "k"] = "stored"
        handler[metadataKey: "hb.request.id"] = "hb-1"
        let line = try Self.decode(handler.line(level: .error, message: "m", metadata: ["k": "explicit"], at: Date()))
        #expect(line["k"] == "explicit" && line["requestId"] == "r-1" && line["hb.request.id"] == "hb-1")
        let without = try Self.decode(handler.line(level: .error, message: "m", metadata: nil, at: Date()))
        #expect(without["k"] == "provided")
    }
}
