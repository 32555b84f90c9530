import Foundation
import Logging

/// swift-log handler writing one JSON object per line to stdout: time, level, message, label and
/// metadata (request id, operation, principal id — never tokens).
public struct JSONLogHandler: LogHandler {
    /// Metadata set on the logger, apart from Hummingbird's per-request id.
    private var stored: Logger.Metadata = [:]
    /// Hummingbird's per-request id (`hb.request.id`), set on a copy of the logger for every
    /// request: kept in its own slot so that setting it does not allocate a dictionary per request.
    private var hummingbirdRequestId: Logger.Metadata.Value?
    static let hummingbirdRequestIdKey = "hb.request.id"
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    let label: String

    public init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    public var metadata: Logger.Metadata {
        get {
            var m = stored
            if let hummingbirdRequestId { m[Self.hummingbirdRequestIdKey] = hummingbirdRequestId }
            return m
        }
        set {
            var m = newValue
            hummingbirdRequestId = m.removeValue(forKey: Self.hummingbirdRequestIdKey)
            stored = m
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { key == Self.hummingbirdRequestIdKey ? hummingbirdRequestId : stored[key] }
        set {
            if key == Self.hummingbirdRequestIdKey {
                hummingbirdRequestId = newValue
            } else {
                stored[key] = newValue
            }
        }
    }

    public func log(event: LogEvent) {
        let bytes = self.line(level: event.level, message: event.message, metadata: event.metadata, at: Date())
        // One write(2) per line: lines from concurrent requests never interleave.
        bytes.withUnsafeBufferPointer { buf in
            _ = write(STDOUT_FILENO, buf.baseAddress, buf.count)
        }
    }

    /// The line `log` writes: one JSON object and a newline.
    func line(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, at time: Date) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.raw("{\"time\":")
        w.dateTime(time)
        w.raw(",\"level\":")
        w.string(level.rawValue)
        w.raw(",\"message\":")
        w.string(message.description)
        w.raw(",\"logger\":")
        w.string(label)
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { $1 } }
        if let explicit { all.merge(explicit) { $1 } }
        for key in all.keys.sorted() {
            w.raw(",")
            w.string(key)
            w.raw(":")
            w.string(all[key]!.description)
        }
        w.raw("}\n")
        return w.bytes
    }
}
